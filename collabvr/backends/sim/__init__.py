"""The built-in world simulator: ``sim`` as VLM and as VGM, offline on a CPU.

Spec strings: ``sim`` (defaults), ``sim:weak`` / ``sim:strong`` for the VGM, ``sim:accurate`` /
``sim:noisy`` for the VLM. Any field of :class:`VGMConfig` / :class:`VLMConfig` can be overridden
through the context's ``vgm_options`` / ``vlm_options``.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["SimVGM", "SimVLM", "VGMConfig", "VLMConfig", "VGM_PRESETS", "VLM_PRESETS", "make"]


def make(role: str, model: str, options: dict[str, Any]) -> SimVGM | SimVLM:
    """Registry factory for the ``sim`` provider."""
    if role == "vgm":
        return SimVGM(build(VGMConfig, VGM_PRESETS, model, DEFAULT_VGM, options), name=f"sim:{model or DEFAULT_VGM}")
    seed = int(options.get("seed", 0))
    return SimVLM(build(VLMConfig, VLM_PRESETS, model, DEFAULT_VLM, options), seed=seed, name=f"sim:{model or DEFAULT_VLM}")
