"""One module per method; each exports an uncompiled builder and a compiled default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from collabvr.errors import BadInput

if TYPE_CHECKING:  # langgraph loads with the method modules, not with this registry of names
    from langgraph.graph import StateGraph
    from langgraph.graph.state import CompiledStateGraph

# method name -> "module:builder function"
METHODS: dict[str, str] = {
    "collabvr": "collabvr.graph.collabvr:build_collabvr",
    "single": "collabvr.graph.single:build_single",
    "pass_at_k": "collabvr.graph.pass_at_k:build_pass_at_k",
    "upfront_plan": "collabvr.graph.upfront_plan:build_upfront_plan",
    "posthoc_critique": "collabvr.graph.posthoc_critique:build_posthoc_critique",
    "prompt_opt": "collabvr.graph.prompt_opt:build_prompt_opt",
}


def parse_method(spec: str) -> tuple[str, dict[str, int]]:
    """A method spec to (method name, context overrides): "pass@8" -> ("pass_at_k", {"k": 8})."""
    name, at, k = spec.strip().partition("@")
    if at:
        if name != "pass":  # pas@4, pass_at_k@4: the name is wrong, not k
            raise BadInput(f"unknown method {spec!r}; known: {', '.join(known_methods())}")
        if not k.isdigit() or int(k) < 1:
            raise BadInput(f"bad method {spec!r}: pass@k needs a whole number k >= 1, e.g. pass@4")
        return "pass_at_k", {"k": int(k)}
    if name not in METHODS:
        raise BadInput(f"unknown method {spec!r}; known: {', '.join(known_methods())}")
    return name, {}


@dataclass(frozen=True)
class Compute:
    """The most an episode of a method can spend under a context: VGM clip-seconds, VLM calls, and
    what those calls are shown (frames, seconds of video), from which tokens are estimated."""

    clip_seconds: float = 0.0
    vlm_calls: int = 0
    vlm_images: int = 0
    vlm_video_seconds: float = 0.0


def worst_case(method: str, ctx: Any) -> Compute:
    """The method's :class:`Compute` upper bound, its clip-seconds capped by the context's budget."""
    module, _, _ = METHODS[method].partition(":")
    bound: Compute = import_module(module).worst_case(ctx)
    if ctx.budget_seconds:
        bound = replace(bound, clip_seconds=min(bound.clip_seconds, ctx.budget_seconds))
    return bound


def known_methods() -> list[str]:
    return [("pass@k" if m == "pass_at_k" else m) for m in METHODS]


@cache
def compiled(method: str) -> CompiledStateGraph:
    """The compiled default graph of a method (no checkpointer), built once per process."""
    return builder_for(method)().compile(name=method)


def builder_for(method: str) -> Callable[[], StateGraph]:
    """The builder function of a method; BadInput naming the known methods otherwise."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; known: {', '.join(known_methods())}")
    module, _, name = METHODS[method].partition(":")
    return getattr(import_module(module), name)


def __getattr__(name: str) -> Any:
    """``collabvr.graph.collabvr`` (and every method module) is reachable without an import."""
    if name in METHODS:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
