"""Generate: the VGM renders one short image-to-video clip for the planned action."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from collabvr.artifacts import ref_json
from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.media import Video
from collabvr.nodes.common import call_vgm, emit, store_of
from collabvr.state import State, with_attempt


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
    }
    if state.get("prefix"):
        record["prefix"] = state["prefix"]
    start = time.perf_counter()
    try:
        video, hit = call_vgm(ctx, store.load_image(state["cond_frame"]), state["prompt"], seconds=seconds, seed=seed)
        if not isinstance(video, Video) or video.num_frames < 1:
            raise InvalidOutput(f"the video model returned {type(video).__name__}, not a non-empty Video")
    except Exception as exc:  # noqa: BLE001 - a failed generation is a typed failed attempt
        ms = (time.perf_counter() - start) * 1000
        fail = failure(exc)
        emit(runtime, event="generation_failed", step=step, attempt=attempt, error=fail)
        failed = {**record, "status": "generation_failed", "error": fail, "gen_ms": round(ms, 3)}
        return {"attempts": with_attempt(state, failed), "attempt": attempt + 1, "pending": None, "last": "generation_failed",
                "compute": {"vgm_calls": 1, "vgm_failures": 1, "vgm_ms": round(ms, 3)}}
    ms = (time.perf_counter() - start) * 1000
    generated = ref_json(store.put_video(video))
    pending = {**record, "clip": generated, "gen_ms": round(ms, 3)}
    clip = video
    if state.get("prefix"):  # partial regeneration: the good prefix, then the new clip
        clip = store.load_video(state["prefix"]).splice(video)
        pending |= {"generated": generated, "clip": ref_json(store.put_video(clip))}
    pending["last_frame"] = ref_json(store.put_image(clip.last_frame()))
    emit(runtime, event="generated", step=step, attempt=attempt, seconds=video.seconds)
    compute = {"vgm_calls": 1, "clip_seconds": round(video.seconds, 6), "vgm_ms": round(ms, 3)}
    if hit:
        compute["vgm_cache_hits"] = 1
    return {"pending": pending, "compute": compute}
