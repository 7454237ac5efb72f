"""Finalize: the final video is the accepted clips concatenated; record why the episode ended."""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.artifacts import public_url, ref_json
from collabvr.backends.sim.families import FAMILIES
from collabvr.backends.sim.score import score_video
from collabvr.context import Context
from collabvr.media import Video
from collabvr.nodes import messages
from collabvr.nodes.common import context_of, emit, store_of
from collabvr.state import State, clip_seconds_spent, halted


def outcome(state: State, ctx: Context) -> tuple[str, str]:
    """(status, reason) of a finished episode."""
    if state.get("last") == "stopped":
        return "stopped", state.get("reason") or "stopped by a person"
    attempts = state.get("attempts", [])
    if error := halted(state):
        return "load_failed", f"step {state.get('step', 0) + 1}: {error['message']}"
    plan = state.get("plan") or {}
    if plan.get("task_complete") and not plan.get("instruction", "").strip():
        return "complete", "the planner found the task already complete"
    spent = clip_seconds_spent(state)
    if state.get("last") == "accepted":
        if plan.get("task_complete"):
            return "complete", "the planner's last action completes the task and it was accepted"
        if state.get("step", 0) >= ctx.max_steps:
            return "step_budget_spent", f"all {ctx.max_steps} steps used"
    if not ctx.affords(spent, ctx.seconds_for(state.get("step", 0))):
        return "budget_spent", f"{spent:g} of {ctx.budget_seconds:g} clip-seconds used; the next clip would exceed the budget"
    if not attempts:
        return "attempts_exhausted", "no attempt was made"
    last = attempts[-1]
    why = (last.get("verdict") or {}).get("reason") or (last.get("error") or {}).get("message", "")
    return "attempts_exhausted", f"step {state.get('step', 0) + 1}: {ctx.max_attempts} attempts failed; last {last['status']}: {why}"


def final_video(state: State, ctx: Context, chosen: dict | None = None) -> dict:
    """The ref of an episode's final video: the accepted steps' clips concatenated, else the video a
    method ``chosen``, else the first frame alone (nothing was made)."""
    store = store_of(ctx)
    clips = [store.load_video(s["clip"]) for s in state.get("steps", [])]
    if clips:
        return ref_json(store.put_video(Video.concat(clips)))
    if chosen:
        return chosen
    first = store.load_image(state["task"]["first_frame"]).array
    return ref_json(store.put_video(Video(frames=first[None], fps=ctx.fps)))


def score_of(task: dict[str, Any], ctx: Context, final: dict | None) -> dict[str, Any] | None:
    """The sim scorer's verdict on a final video (it reads pixels only); None for tasks without a scorer."""
    if not task.get("family") or final is None:
        return None
    store = store_of(ctx)
    family = FAMILIES[task["family"]]
    start = family.read(store.load_image(task["first_frame"]).array)
    return dataclasses.asdict(score_video(family, store.load_video(final).iter_frames(), start))


def finished(state: State, ctx: Context, chosen: dict | None) -> tuple[dict, dict[str, Any] | None]:
    """(the final video, its score)."""
    final = final_video(state, ctx, chosen)
    return final, score_of(state["task"], ctx, final)


async def conclude(state: State, runtime: Runtime[Context], status: str, reason: str, chosen: dict | None = None
                   ) -> dict[str, Any]:
    """The update every method's finalize returns: the final video (its ref, and its URL on the Agent
    Server's route), its score, and why it ended."""
    final, score = await offload(finished, state, context_of(runtime), chosen)
    emit(runtime, "finalized", step=state.get("step", 0), status=status, reason=reason, final_url=public_url(final))
    return {"final": final, "final_url": public_url(final), "score": score, "status": status, "reason": reason,
            **messages.finished(status, reason, final, score)}


async def finalize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    return await conclude(state, runtime, *outcome(state, context_of(runtime)))
