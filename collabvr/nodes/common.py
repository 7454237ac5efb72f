"""What every node needs: the store, the backends, timing, and typed failures."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from langgraph.runtime import Runtime

from collabvr import events
from collabvr.artifacts import ArtifactStore
from collabvr.backends import registry
from collabvr.cache import cache_at
from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.media import Image, Video
from collabvr.nodes import tracing
from collabvr.records import Usage
from collabvr.rundir import ARTIFACTS

T = TypeVar("T")


@lru_cache(maxsize=64)
def _store(root: str) -> ArtifactStore:
    return ArtifactStore(root)


def store_of(ctx: Context) -> ArtifactStore:
    """The artifact store of a run: ``<out_dir>/artifacts``."""
    return _store(str(Path(ctx.out_dir) / ARTIFACTS))


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's context, or the defaults when the run has none (a plain invoke, a parent graph
    without a context_schema); a dict (from the Agent Server) becomes a Context."""
    return Context.of(getattr(runtime, "context", None))


def vlm_of(ctx: Context) -> Any:
    return registry.resolve_vlm(ctx.vlm, ctx.vlm_options)


def vgm_of(ctx: Context) -> Any:
    return registry.resolve_vgm(ctx.vgm, ctx.vgm_options)


def writer_of(runtime: Runtime[Context] | None) -> Callable[[dict[str, Any]], None] | None:
    """The node's custom stream writer, or None outside a streaming run."""
    return getattr(runtime, "stream_writer", None)


def emit(runtime: Runtime[Context] | None, kind: str, **fields: Any) -> None:
    """A custom stream event of ``kind`` (see :mod:`collabvr.events`) for progress displays."""
    writer = writer_of(runtime)
    if writer is not None:
        writer(events.make(kind, **fields))


def call_vlm(ctx: Context, role: str, request: Any, expected: type[T], **trace: Any,
             ) -> tuple[T | None, dict | None, dict]:
    """Call one VLM role. Returns (record, None, compute) or (None, failure, compute).

    Anything other than a valid ``expected`` record is a failure; nothing here can turn an
    exception into an accept. With a cache, a hit counts as a call too (and as a cache hit).
    With LangSmith tracing on, the call is an ``llm`` run under the node's run; ``trace`` adds
    metadata to it (see :mod:`collabvr.nodes.tracing`).
    """
    if dataclasses.is_dataclass(request) and hasattr(request, "seed"):
        request = dataclasses.replace(request, seed=ctx.seed)  # sampling VLMs seed from it (collabvr.records)
    with tracing.model_run(ctx, "vlm", role, {"request": request}, **trace) as traced:
        start = time.perf_counter()
        record: Any = None
        fail: dict | None = None
        hit = False
        try:
            fn = getattr(vlm_of(ctx), role)
            if ctx.cache_dir:
                record, hit = cache_at(ctx.cache_dir).call(fn, role, ctx.vlm, ctx.vlm_options, request, expected)
            else:
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
        if hit:
            compute["vlm_cache_hits"] = 1
        traced.vlm_done(record, fail, compute)
    return record, fail, compute


def call_vgm(ctx: Context, frame: Image, prompt: str, *, seconds: float, seed: int) -> tuple[Video, bool]:
    """(clip, cache hit) from the run's VGM; exceptions propagate (see :func:`generate_clip`)."""
    vgm = vgm_of(ctx)
    if ctx.cache_dir:
        return cache_at(ctx.cache_dir).generate(vgm, ctx.vgm, ctx.vgm_options, frame, prompt, seconds=seconds, fps=ctx.fps, seed=seed)
    return vgm.generate(frame, prompt, seconds=seconds, fps=ctx.fps, seed=seed), False


def generate_clip(ctx: Context, frame: dict, prompt: str, *, seconds: float, seed: int,
                  runtime: Runtime[Context] | None = None, step: int = 0, attempt: int = 0,
                  ) -> tuple[Video | None, dict | None, dict]:
    """One generation from the frame ref. Returns (clip, None, compute) or (None, failure, compute).

    Anything other than a non-empty Video is a typed failure, never an exception, so every
    method records a failed generation the same way. Progress the backend reports while it works
    becomes ``generating`` events on the node's stream (see :func:`collabvr.events.reporting`).
    """
    inputs = {"frame": frame, "prompt": prompt, "seconds": seconds, "seed": seed, "fps": ctx.fps}
    with tracing.model_run(ctx, "vgm", "generate", inputs, step=step, attempt=attempt) as traced:
        start = time.perf_counter()
        video: Video | None = None
        fail: dict | None = None
        try:
            with events.reporting(writer_of(runtime), step=step, attempt=attempt):
                video, hit = call_vgm(ctx, store_of(ctx).load_image(frame), prompt, seconds=seconds, seed=seed)
            if not isinstance(video, Video) or video.num_frames < 1:
                raise InvalidOutput(f"the video model returned {type(video).__name__}, not a non-empty Video")
        except Exception as exc:  # noqa: BLE001 - a failed generation is a typed failed attempt
            video, fail = None, failure(exc)
        ms = round((time.perf_counter() - start) * 1000, 3)
        if video is None:
            compute = {"vgm_calls": 1, "vgm_failures": 1, "vgm_ms": ms}
        else:
            compute = {"vgm_calls": 1, "clip_seconds": round(video.seconds, 6), "vgm_ms": ms}
            if hit:
                compute["vgm_cache_hits"] = 1
        traced.vgm_done(video, fail, compute)
    return video, fail, compute


def rendered(video: Video) -> dict[str, Any]:
    """``{"render": ...}`` when the VGM said what it really rendered (local pipelines do), else nothing."""
    render = getattr(video, "render", None)
    return {"render": render} if render else {}


def compose_prompt(instruction: str, suggestion: str) -> str:
    """Prompt evolution: the diagnosis is appended to the action prompt as a correction."""
    suggestion = suggestion.strip()
    return f"{instruction.strip()}\nCorrection: {suggestion}" if suggestion else instruction.strip()
