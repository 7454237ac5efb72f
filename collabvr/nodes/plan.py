"""Plan: the VLM looks at the current frame and plans only the immediate next action."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.context import Context
from collabvr.nodes import messages
from collabvr.nodes.common import context_of, emit, store_of, vlm_call
from collabvr.records import Plan, PlanRequest, StepSummary
from collabvr.state import State, attempt_record, with_attempt


def plan_request(state: State, ctx: Context, *, split_from: str = "") -> PlanRequest:
    task = state["task"]
    step = state.get("step", 0)
    return PlanRequest(
        task=task["prompt"],
        frame=store_of(ctx).load_image(state["frame"]),
        step=step + 1,
        max_steps=ctx.max_steps,
        seconds=ctx.seconds_for(step),
        history=tuple(StepSummary(s["plan"]["instruction"], s["plan"]["target_state"]) for s in state.get("steps", [])),
        split_from=split_from,
        family=task.get("family"),
        attempt=state.get("attempt", 0),
    )


async def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    step, attempt = state.get("step", 0), state.get("attempt", 0)
    record, fail, compute = await vlm_call(ctx, "plan", await offload(plan_request, state, ctx), Plan)
    if fail is not None:
        emit(runtime, "plan_failed", step=step, attempt=attempt, error=fail)
        failed = attempt_record(step=step, index=attempt, status="plan_failed", error=fail)
        return {"compute": compute, "plan": None, "attempt": attempt + 1, "attempts": with_attempt(state, failed),
                "last": "plan_failed"}
    emit(runtime, "plan", step=step, attempt=attempt, instruction=record.instruction, task_complete=record.task_complete)
    return {
        **messages.planned(step, record.model_dump(mode="json"), state["frame"]),
        "compute": compute,
        "plan": record.model_dump(mode="json"),
        "prompt": record.instruction,
        "cond_frame": state["frame"],
        "prefix": None,
    }
