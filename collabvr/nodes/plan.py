"""Plan: the VLM looks at the current frame and plans only the immediate next action."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.artifacts import ref_json
from collabvr.context import Context
from collabvr.nodes.common import call_vlm, emit, store_of
from collabvr.records import Plan, PlanRequest, StepSummary
from collabvr.state import State, attempt_record, with_attempt
from collabvr.task import Task


def start(state: State, ctx: Context) -> dict[str, Any]:
    """Fill in what an episode starts from, so a caller may pass only ``{"task": ...}``: a Task
    dict, or a spec string such as ``"sim:maze/hard"`` (handy in LangGraph Studio)."""
    if "frame" in state:
        return {}
    spec = state["task"]
    task = Task.parse(spec, seed=ctx.seed) if isinstance(spec, str) else Task.model_validate(spec)
    task = task.materialize(store_of(ctx))
    return {"task": task.model_dump(mode="json", exclude_none=True), "frame": ref_json(task.first_frame), "step": 0,
            "attempt": 0, "attempts": [], "repairs": [], "status": "running"}


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
    )


def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    update = start(state, ctx)
    state = {**state, **update}  # type: ignore[typeddict-item]
    step, attempt = state.get("step", 0), state.get("attempt", 0)
    record, fail, compute = call_vlm(ctx, "plan", plan_request(state, ctx), Plan)
    update["compute"] = compute
    if fail is not None:
        emit(runtime, "plan_failed", step=step, attempt=attempt, error=fail)
        failed = attempt_record(step=step, index=attempt, status="plan_failed", error=fail)
        return {**update, "plan": None, "attempt": attempt + 1, "attempts": with_attempt(state, failed), "last": "plan_failed"}
    emit(runtime, "plan", step=step, attempt=attempt, instruction=record.instruction, task_complete=record.task_complete)
    return {
        **update,
        "plan": record.model_dump(mode="json"),
        "prompt": record.instruction,
        "cond_frame": state["frame"],
        "prefix": None,
    }
