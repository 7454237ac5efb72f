"""Finalize: the final video is the accepted clips concatenated; record why the episode ended."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.artifacts import ref_json
from collabvr.context import Context
from collabvr.media import Video
from collabvr.nodes.common import emit, store_of
from collabvr.state import State


def outcome(state: State, ctx: Context) -> tuple[str, str]:
    """(status, reason) of a finished episode."""
    attempts = state.get("attempts", [])
    plan = state.get("plan") or {}
    if plan.get("task_complete") and not plan.get("instruction", "").strip():
        return "complete", "the planner found the task already complete"
    spent = state.get("compute", {}).get("clip_seconds", 0.0)
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


def finalize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    store = store_of(ctx)
    clips = [store.load_video(s["clip"]) for s in state.get("steps", [])]
    if clips:
        final = Video.concat(clips)
    else:  # nothing accepted: the final video is the first frame alone
        final = Video(frames=store.load_image(state["task"]["first_frame"]).array[None], fps=ctx.fps)
    status, reason = outcome(state, ctx)
    emit(runtime, event="finalized", status=status, reason=reason)
    return {"final": ref_json(store.put_video(final)), "status": status, "reason": reason}
