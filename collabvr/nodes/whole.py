"""Whole-video generation: one video of the full horizon H from the task's first frame.

``generate_whole`` makes the one video of a round (single inference, post-hoc critique).
``generate_candidate`` is the target of a ``Send``: one candidate of a pass@k or prompt-optimisation
round, collected through the ``candidates`` reducer channel so parallel candidates never clash.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Send

from collabvr.aio import offload
from collabvr.artifacts import ArtifactStore, public_url, ref_json
from collabvr.context import Context
from collabvr.media import Video
from collabvr.nodes.baseline import BaselineState, affordable, horizon
from collabvr.nodes.common import context_of, emit, generate_clip, rendered, store_of
from collabvr.state import Attempt, attempt_record, with_attempt


async def render(ctx: Context, record: Attempt, runtime: Runtime[Context] | None) -> tuple[Attempt, dict[str, float]]:
    """(attempt, compute) of one generation described by ``record``; a failure is a typed
    ``generation_failed`` attempt, never an exception. Emits ``generated`` or ``generation_failed``."""
    video, fail, compute = await generate_clip(ctx, record["cond_frame"], record["prompt"], seconds=record["seconds_requested"],
                                         seed=record["seed"], runtime=runtime, step=record.get("round", record["index"]),
                                         attempt=record["index"])
    if video is None:
        attempt = attempt_record(record, status="generation_failed", error=fail, gen_ms=compute["vgm_ms"])
        emit(runtime, "generation_failed", step=record.get("round", record["index"]), attempt=record["index"], error=fail)
        return attempt, compute
    clip, last_frame = await offload(stored, store_of(ctx), video)
    attempt = attempt_record(record, status="generated", clip=clip, gen_ms=compute["vgm_ms"], **rendered(video),
                             last_frame=last_frame)
    emit(runtime, "generated", step=record.get("round", record["index"]), attempt=record["index"], seconds=video.seconds,
         clip_url=public_url(clip))
    return attempt, compute


def stored(store: ArtifactStore, video: Video) -> tuple[dict, dict]:
    """(clip, last frame) refs of a whole video put in the store; the frame is read from the stored
    pixels (see :meth:`ArtifactStore.put_video`)."""
    clip = store.put_video(video)
    return ref_json(clip), ref_json(store.put_image(store.load_video(clip).last_frame()))


def current_prompt(state: BaselineState) -> str:
    """The prompt of the next generation: a critic's rewrite once there is one, else the raw task."""
    return state.get("prompt") or state["task"]["prompt"]


async def generate_whole(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
    """One whole video; ``step`` counts the rounds made, and the newest video becomes ``chosen``."""
    ctx = context_of(runtime)
    index = state.get("step", 0)
    record = attempt_record(step=0, index=index, prompt=current_prompt(state), seed=ctx.seed_for(0, index),
                            seconds_requested=horizon(ctx), cond_frame=state["frame"])
    attempt, compute = await render(ctx, record, runtime)
    update: dict[str, Any] = {"attempts": with_attempt(state, attempt), "step": index + 1,
                              "last": attempt["status"], "compute": compute}
    if attempt["status"] == "generated":
        update["chosen"] = attempt["clip"]
    return update


def candidate_orders(state: BaselineState, ctx: Context, wanted: int) -> list[Send]:
    """One ``Send`` per candidate of this round, as many of ``wanted`` as the budget affords.

    Seeds are ``seed_for(round, 0) + i``: distinct within a round whatever the seed policy.
    Indices continue across rounds so every candidate's clip has its own name. Each order carries
    the thread's pinned context, which a candidate runs with (it sees the order, not the state).
    """
    round_, first = state.get("step", 0), len(state.get("candidates", []))
    base = {"frame": state["frame"], "prompt": current_prompt(state), "round": round_, "pinned": state.get("pinned")}
    return [Send("candidate", {**base, "index": first + i, "seed": ctx.seed_for(round_, 0) + i})
            for i in range(affordable(state, ctx, wanted))]


async def generate_candidate(order: dict[str, Any], runtime: Runtime[Context]) -> dict[str, Any]:
    """One candidate; ``order`` is the ``Send`` payload: frame, prompt, round, index, seed."""
    ctx = context_of(runtime)
    record = attempt_record(step=0, index=order["index"], round=order["round"], prompt=order["prompt"], seed=order["seed"],
                            seconds_requested=horizon(ctx), cond_frame=order["frame"])
    attempt, compute = await render(ctx, record, runtime)
    return {"candidates": [attempt], "compute": compute}
