"""Approve: a person approves, edits or stops the plan before a clip is paid for (``approve_plans``).

The node calls ``interrupt()`` with the plan, the frame it was made from and the step. The caller
resumes with ``Command(resume=...)``:

* ``"approve"`` (or ``True``, or ``{"action": "approve"}``): generate the planned action;
* ``{"action": "edit", "instruction": "..."}`` (or ``{"instruction": "..."}``): generate this instead;
* ``"stop"`` (or ``False``, or ``{"action": "stop", "reason": "..."}``): end the episode, status ``stopped``.

An interrupted node runs again from its start on resume; this one only reads state and the resume
value, and generation is the next node, so a resume never repeats a paid call.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.nodes.common import emit
from collabvr.state import State

CHOICES = ("approve", "edit", "stop")


def decision_of(value: Any) -> tuple[str, str]:
    """(action, text) from a resume value: text is the new instruction (edit) or the reason (stop)."""
    if value is True or value == "approve":
        return "approve", ""
    if value is False or value == "stop":
        return "stop", ""
    if isinstance(value, dict):
        action = value.get("action", "edit" if "instruction" in value else None)
        if action == "approve":
            return "approve", ""
        if action == "stop":
            return "stop", str(value.get("reason", ""))
        if action == "edit" and str(value.get("instruction", "")).strip():
            return "edit", str(value["instruction"]).strip()
    raise BadInput(f"resume an approval with 'approve', 'stop' or {{'action': 'edit', 'instruction': ...}}, got {value!r}")


def approve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    step, plan = state["step"], state["plan"]
    action, text = decision_of(interrupt({
        "step": step, "attempt": state.get("attempt", 0), "plan": plan, "frame": state["frame"],
        "prompt": state["prompt"], "choices": list(CHOICES),
    }))
    if action == "stop":
        emit(runtime, "approval", step=step, decision="stop", instruction=plan["instruction"])
        why = f"stopped by a person at step {step + 1}" + (f": {text}" if text else "")
        return {"last": "stopped", "reason": why}
    if action == "edit":
        emit(runtime, "approval", step=step, decision="edit", instruction=text)
        edited = {**plan, "instruction": text, "approval": "edited", "planned_instruction": plan["instruction"]}
        return {"plan": edited, "prompt": text}
    emit(runtime, "approval", step=step, decision="approve", instruction=plan["instruction"])
    return {"plan": {**plan, "approval": "approved"}}
