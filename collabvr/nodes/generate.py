"""Generate: the VGM renders one short image-to-video clip for the planned action."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.artifacts import ArtifactStore, public_url, ref_json
from collabvr.context import Context
from collabvr.media import Video
from collabvr.nodes.common import context_of, emit, generate_clip, rendered, store_of
from collabvr.state import Attempt, State, attempt_record, with_attempt


def stored(store: ArtifactStore, video: Video, pending: Attempt, prefix: dict | None) -> Attempt:
    """The pending attempt with its clip stored: the new clip (after the good prefix, when one is
    spliced) and its last frame."""
    generated = ref_json(store.put_video(video))
    pending = attempt_record(pending, clip=generated)
    if prefix:  # partial regeneration: the good prefix, then the new clip
        spliced = store.load_video(prefix).splice(store.load_video(generated))
        pending = attempt_record(pending, generated=generated, clip=ref_json(store.put_video(spliced)))
    return attempt_record(pending, last_frame=ref_json(store.put_image(store.load_video(pending["clip"]).last_frame())))


async def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    store = store_of(ctx)
    step, attempt = state["step"], state["attempt"]
    seed = ctx.seed_for(step, attempt)
    seconds = ctx.seconds_for(step)
    record = attempt_record(step=step, index=attempt, prompt=state["prompt"], seed=seed, seconds_requested=seconds,
                            cond_frame=state["cond_frame"])
    if state.get("prefix"):
        record = attempt_record(record, prefix=state["prefix"])
    video, fail, compute = await generate_clip(ctx, state["cond_frame"], state["prompt"], seconds=seconds, seed=seed,
                                         runtime=runtime, step=step, attempt=attempt)
    if video is None:
        emit(runtime, "generation_failed", step=step, attempt=attempt, error=fail)
        failed = attempt_record(record, status="generation_failed", error=fail, gen_ms=compute["vgm_ms"])
        return {"attempts": with_attempt(state, failed), "attempt": attempt + 1, "pending": None, "last": "generation_failed",
                "compute": compute}
    pending = attempt_record(record, gen_ms=compute["vgm_ms"], **rendered(video))
    pending = await offload(stored, store, video, pending, state.get("prefix"))
    emit(runtime, "generated", step=step, attempt=attempt, seconds=video.seconds, clip_url=public_url(pending["clip"]))
    return {"pending": pending, "compute": compute}
