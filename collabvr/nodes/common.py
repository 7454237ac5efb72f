"""What every node needs: the store, the backends, timing, and typed failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from langgraph.runtime import Runtime

from collabvr.artifacts import ArtifactStore
from collabvr.backends import registry
from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.records import Usage

T = TypeVar("T")


@lru_cache(maxsize=64)
def _store(root: str) -> ArtifactStore:
    return ArtifactStore(root)


def store_of(ctx: Context) -> ArtifactStore:
    """The artifact store of a run: ``<out_dir>/artifacts``."""
    return _store(str(Path(ctx.out_dir) / "artifacts"))


def vlm_of(ctx: Context) -> Any:
    return registry.resolve_vlm(ctx.vlm, ctx.vlm_options)


def vgm_of(ctx: Context) -> Any:
    return registry.resolve_vgm(ctx.vgm, ctx.vgm_options)


def emit(runtime: Runtime[Context], **event: Any) -> None:
    """A custom stream event (stream_mode="custom") for progress displays."""
    writer = getattr(runtime, "stream_writer", None)
    if writer is not None:
        writer(event)


def call_vlm(role: str, fn: Callable[[Any], T], request: Any, expected: type) -> tuple[T | None, dict | None, dict]:
    """Call one VLM role. Returns (record, None, compute) or (None, failure, compute).

    Anything other than a valid ``expected`` record is a failure; nothing here can turn an
    exception into an accept.
    """
    start = time.perf_counter()
    record: Any = None
    fail: dict | None = None
    try:
        record = fn(request)
        if not isinstance(record, expected):
            raise InvalidOutput(f"{role} returned {type(record).__name__}, expected {expected.__name__}")
    except Exception as exc:  # noqa: BLE001 - every backend failure becomes a typed failed attempt
        record, fail = None, failure(exc)
    ms = (time.perf_counter() - start) * 1000
    usage = getattr(record, "usage", None) or Usage()
    compute = {
        "vlm_calls": 1,
        f"vlm_{role}_calls": 1,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "vlm_ms": round(ms, 3),
    }
    return record, fail, compute


def compose_prompt(instruction: str, suggestion: str) -> str:
    """Prompt evolution: the diagnosis is appended to the action prompt as a correction."""
    suggestion = suggestion.strip()
    return f"{instruction.strip()}\nCorrection: {suggestion}" if suggestion else instruction.strip()
