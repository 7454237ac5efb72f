"""The built-in world simulator: ``sim`` as VLM and as VGM, offline on a CPU.

Spec strings: ``sim`` (defaults), ``sim:weak`` / ``sim:strong`` for the VGM, ``sim:accurate`` /
``sim:noisy`` for the VLM. Any field of :class:`VGMConfig` / :class:`VLMConfig` can be overridden
through the context's ``vgm_options`` / ``vlm_options``. One more option, ``latency_s`` (either role),
makes every call sleep that many seconds first: a stand-in for a slow model or API when measuring
how episodes overlap (``benchmarks/ray_scaling.py``); it changes no result. Async callers await
that sleep (``asyncio.sleep``), as they would an API, and the work after it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from collabvr.backends.base import Around
from collabvr.backends.sim.config import (
    DEFAULT_VGM,
    DEFAULT_VLM,
    VGM_PRESETS,
    VLM_PRESETS,
    VGMConfig,
    VLMConfig,
    build,
)
from collabvr.backends.sim.vgm import SimVGM
from collabvr.backends.sim.vlm import SimVLM
from collabvr.errors import BadInput

__all__ = ["delayed", "SimVGM", "SimVLM", "VGMConfig", "VLMConfig", "VGM_PRESETS", "VLM_PRESETS", "make"]


@contextmanager
def _after(seconds: float) -> Iterator[None]:
    time.sleep(seconds)  # off the CPU: other episodes' threads and processes run meanwhile
    yield


@asynccontextmanager
async def _aafter(seconds: float) -> AsyncIterator[None]:
    await asyncio.sleep(seconds)  # holds no thread: other episodes' calls run meanwhile
    yield


def delayed(backend: Any, latency: float) -> Around:
    """The backend with every public call ``latency`` seconds later (an awaited sleep for async callers)."""
    return Around(backend, functools.partial(_after, latency), functools.partial(_aafter, latency))


def make(role: str, model: str, options: dict[str, Any]) -> SimVGM | SimVLM | Around:
    """Registry factory for the ``sim`` provider."""
    options = dict(options)
    latency = options.pop("latency_s", 0.0)
    if not isinstance(latency, int | float) or isinstance(latency, bool) or not 0 <= latency < 3600:
        raise BadInput(f"sim option latency_s must be a number of seconds >= 0, got {latency!r}")
    backend = _make(role, model, options)
    return delayed(backend, float(latency)) if latency else backend


def _make(role: str, model: str, options: dict[str, Any]) -> SimVGM | SimVLM:
    if role == "vgm":
        return SimVGM(build(VGMConfig, VGM_PRESETS, model, DEFAULT_VGM, options), name=f"sim:{model or DEFAULT_VGM}")
    seed = int(options.get("seed", 0))
    return SimVLM(build(VLMConfig, VLM_PRESETS, model, DEFAULT_VLM, options), seed=seed, name=f"sim:{model or DEFAULT_VLM}")
