"""What every node needs: the store, the backends, timing, and typed failures."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from langgraph.runtime import Runtime

from collabvr import events
from collabvr.aio import offload, run_inline
from collabvr.artifacts import ArtifactStore
from collabvr.backends import base, registry
from collabvr.cache import cache_at
from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.location import join, location
from collabvr.media import Image, Video
from collabvr.nodes import tracing
from collabvr.records import Usage
from collabvr.rundir import ARTIFACTS

T = TypeVar("T")


@lru_cache(maxsize=64)
def _store(root: str) -> ArtifactStore:
    return ArtifactStore(root)


def store_of(ctx: Context) -> ArtifactStore:
    """The artifact store of a run: ``<out_dir>/artifacts`` (a directory or an fsspec URL)."""
    return _store(join(location(ctx.out_dir), ARTIFACTS))


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's context (the thread's pinned one: see :mod:`collabvr.nodes.runnable`), or the
    defaults when a node runs without a runtime."""
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


async def _backend(of: Callable[[Context], Any], ctx: Context) -> tuple[Any, dict | None]:
    """(the run's backend, None), or (None, a typed failure) for a spec that does not resolve
    (``prepare`` preflights the specs: this is for a backend that breaks later)."""
    try:
        return await offload(of, ctx), None
    except Exception as exc:  # noqa: BLE001 - a failed call, typed, never an exception out of a node
        return None, failure(exc)


def call_vlm(ctx: Context, role: str, request: Any, expected: type[T], **trace: Any,
             ) -> tuple[T | None, dict | None, dict]:
    """:func:`vlm_call` for synchronous callers (calibration)."""
    return run_inline(vlm_call(ctx, role, request, expected, **trace))


async def vlm_call(ctx: Context, role: str, request: Any, expected: type[T], **trace: Any,
                   ) -> tuple[T | None, dict | None, dict]:
    """Call one VLM role. Returns (record, None, compute) or (None, failure, compute).

    Anything other than a valid ``expected`` record is a failure; nothing here can turn an
    exception into an accept. With a cache, a hit counts as a call too (and as a cache hit).
    With LangSmith tracing on, the call is an ``llm`` run under the node's run; ``trace`` adds
    metadata to it (see :mod:`collabvr.nodes.tracing`).
    """
    if dataclasses.is_dataclass(request) and hasattr(request, "seed"):
        request = dataclasses.replace(request, seed=ctx.seed)  # sampling VLMs seed from it (collabvr.records)
    start = time.perf_counter()
    record: Any = None
    hit = False
    backend, fail = await _backend(vlm_of, ctx)
    with tracing.model_run(ctx, "vlm", role, {"request": request}, backend=backend, **trace) as traced:
        try:
            if fail is None:
                cache = cache_at(ctx.cache_dir) if ctx.cache_dir else None
                key = cache.vlm_key(role, ctx.vlm, ctx.vlm_options, request) if cache else ""
                record = await offload(cache.get_record, key, expected) if cache else None
                hit = record is not None
                if not hit:
                    record = await base.vlm_call(backend, role, request)
                    if cache is not None and isinstance(record, expected):
                        await offload(cache.put_record, key, record)
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


async def vgm_call(ctx: Context, vgm: Any, frame: Image, prompt: str, *, seconds: float, seed: int,
                   ) -> tuple[Video, bool]:
    """(clip, cache hit) from the run's VGM; exceptions propagate (see :func:`generate_clip`)."""
    if not ctx.cache_dir:
        return await base.vgm_call(vgm, frame, prompt, seconds=seconds, fps=ctx.fps, seed=seed), False
    cache = cache_at(ctx.cache_dir)
    key = cache.vgm_key(ctx.vgm, ctx.vgm_options, frame, prompt, seconds=seconds, fps=ctx.fps, seed=seed)
    cached = await offload(cache.get_clip, key)
    if cached is not None:
        return cached, True
    video = await base.vgm_call(vgm, frame, prompt, seconds=seconds, fps=ctx.fps, seed=seed)
    if isinstance(video, Video):
        await offload(cache.put_clip, key, video)
    return video, False


async def generate_clip(ctx: Context, frame: dict, prompt: str, *, seconds: float, seed: int,
                        runtime: Runtime[Context] | None = None, step: int = 0, attempt: int = 0,
                        ) -> tuple[Video | None, dict | None, dict]:
    """One generation from the frame ref. Returns (clip, None, compute) or (None, failure, compute).

    Anything other than a non-empty Video is a typed failure, never an exception, so every
    method records a failed generation the same way. Progress the backend reports while it works
    becomes ``generating`` events on the node's stream (see :func:`collabvr.events.reporting`).
    """
    inputs = {"frame": frame, "prompt": prompt, "seconds": seconds, "seed": seed, "fps": ctx.fps}
    start = time.perf_counter()
    video: Video | None = None
    hit = False
    vgm, fail = await _backend(vgm_of, ctx)
    with tracing.model_run(ctx, "vgm", "generate", inputs, backend=vgm, step=step, attempt=attempt) as traced:
        try:
            if fail is None:
                image = await offload(store_of(ctx).load_image, frame)
                with events.reporting(writer_of(runtime), step=step, attempt=attempt):
                    video, hit = await vgm_call(ctx, vgm, image, prompt, seconds=seconds, seed=seed)
                if not isinstance(video, Video) or await offload(lambda: video.num_frames) < 1:
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
