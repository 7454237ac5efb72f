"""Generate: the VGM renders one short image-to-video clip for the planned action."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.media import Video
from collabvr.nodes.common import emit, store_of, vgm_of
from collabvr.state import State


def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    store = store_of(ctx)
    step, attempt = state["step"], state["attempt"]
    seed = ctx.seed_for(step, attempt)
    seconds = ctx.seconds_for(step)
    record: dict[str, Any] = {
        "step": step,
        "index": attempt,
        "prompt": state["prompt"],
        "seed": seed,
        "seconds_requested": seconds,
        "cond_frame": state["cond_frame"],
        "prefix": state.get("prefix"),
    }
    start = time.perf_counter()
    try:
        video = vgm_of(ctx).generate(store.load_image(state["cond_frame"]), state["prompt"], seconds=seconds, fps=ctx.fps, seed=seed)
        if not isinstance(video, Video) or video.num_frames < 1:
            raise InvalidOutput(f"the video model returned {type(video).__name__}, not a non-empty Video")
    except Exception as exc:  # noqa: BLE001 - a failed generation is a typed failed attempt
        ms = (time.perf_counter() - start) * 1000
        fail = failure(exc)
        emit(runtime, event="generation_failed", step=step, attempt=attempt, error=fail)
        failed = {**record, "status": "generation_failed", "error": fail, "verdict": None, "gen_ms": round(ms, 3)}
        return {"attempts": [failed], "attempt": attempt + 1, "pending": None, "compute": {"vgm_calls": 1, "vgm_failures": 1, "vgm_ms": ms}}
    ms = (time.perf_counter() - start) * 1000
    generated = store.put_video(video)
    clip = store.load_video(state["prefix"]).splice(video) if state.get("prefix") else video
    clip_ref = store.put_video(clip) if clip is not video else generated
    pending = {
        **record,
        "generated": generated.model_dump(mode="json"),
        "clip": clip_ref.model_dump(mode="json"),
        "last_frame": store.put_image(clip.last_frame()).model_dump(mode="json"),
        "gen_ms": round(ms, 3),
    }
    emit(runtime, event="generated", step=step, attempt=attempt, seconds=video.seconds)
    return {"pending": pending, "compute": {"vgm_calls": 1, "clip_seconds": round(video.seconds, 6), "vgm_ms": round(ms, 3)}}
