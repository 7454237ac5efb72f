"""Up-front planning: the VLM plans every step before any frame exists; no clip is verified.

``plan_upfront`` makes one plan call on the first frame and splits its "Step i: ..." lines into a
script; the shared ``generate`` node renders each step; ``advance`` takes the clip as it is and
conditions the next step on its last frame, which is what up-front planning commits to.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.context import Context
from collabvr.nodes import messages
from collabvr.nodes.baseline import BaselineState
from collabvr.nodes.common import context_of, emit, vlm_call
from collabvr.nodes.plan import plan_request
from collabvr.records import Plan
from collabvr.state import attempt_record, with_attempt

STEP_MARK = re.compile(r"^[ \t]*step[ \t]*\d+[ \t]*:", re.IGNORECASE | re.MULTILINE)


def script_of(instruction: str, max_steps: int) -> list[str]:
    """One action prompt per step from the plan's "Step i:" lines (marks dropped); a plan without
    them is one step. Steps past ``max_steps`` join the last one: the moves stay, the clips do not grow."""
    parts = STEP_MARK.split(instruction)
    steps = [p.strip() for p in parts[1:] if p.strip()] if len(parts) > 1 else [instruction.strip()]
    steps = [s for s in steps if s]
    if len(steps) > max_steps:
        steps = [*steps[: max_steps - 1], "\n".join(steps[max_steps - 1 :])]
    return steps


async def plan_upfront(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    request = dataclasses.replace(await offload(plan_request, state, ctx), upfront=True)
    record, fail, compute = await vlm_call(ctx, "plan", request, Plan)
    if record is None:
        emit(runtime, "plan_failed", error=fail)
        failed = attempt_record(step=0, index=0, status="plan_failed", error=fail)
        return {"plan": None, "attempts": with_attempt(state, failed), "last": "plan_failed", "compute": compute}
    script = script_of(record.instruction, ctx.max_steps)
    emit(runtime, "plan", instruction=record.instruction, task_complete=record.task_complete, planned_steps=len(script))
    return {**messages.planned(0, record.model_dump(mode="json"), state["frame"]),
            "plan": record.model_dump(mode="json"), "script": script, "prompt": script[0] if script else "",
            "cond_frame": state["frame"], "prefix": None, "attempt": 0, "last": "planned", "compute": compute}


async def advance(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Keep the step's clip unverified and move on to the next line of the script."""
    pending, step, script = state["pending"], state["step"], state["script"]
    done = {"step": step, "plan": {"instruction": pending["prompt"]}, "clip": pending["clip"],
            "start_frame": state["frame"], "end_frame": pending["last_frame"], "attempts": 1}
    emit(runtime, "advance", step=step)
    return {"attempts": with_attempt(state, attempt_record(pending, status="generated")), "steps": [done], "pending": None,
            "frame": pending["last_frame"], "cond_frame": pending["last_frame"], "step": step + 1, "attempt": 0,
            "prompt": script[step + 1] if step + 1 < len(script) else "", "last": "generated"}
