"""Approve: a person approves, edits or stops a plan before a clip is paid for (``approve_plans``).

The node calls ``interrupt()`` with the plan, the frame it was made from and the step. The caller
resumes with ``Command(resume=...)``:

* ``"approve"`` (or ``True``, or ``{"action": "approve"}``): generate the planned action;
* ``{"action": "edit", "instruction": "..."}`` (or ``{"instruction": "..."}``): generate this instead;
* ``"stop"`` (or ``False``, or ``{"action": "stop", "reason": "..."}``): end the episode, status ``stopped``.

An answer that is none of these is never taken and never raised: the node interrupts again with
the same payload plus ``error`` (what was wrong and what is accepted), until an answer is valid
(LangGraph's validate-and-re-interrupt loop). Raising instead would store the bad answer as the
node's resume value and replay it on every later resume, wedging the thread.

An interrupted node runs again from its start on resume; these only read state and the resume
value, and generation is the next node, so a resume never repeats a paid call. CollabVR approves
each step's plan; up-front planning its whole script; the critique baselines each prompt their
critic rewrites (what the VLM planned for the next round).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from collabvr.artifacts import public_url
from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.nodes.common import emit
from collabvr.nodes.upfront import script_of
from collabvr.state import State, limits

CHOICES = ("approve", "edit", "stop")


def decision_of(value: Any) -> tuple[str, str]:
    """(action, text) from a resume value: text is the new instruction (edit) or the reason (stop);
    BadInput saying what is accepted otherwise."""
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
        if action == "edit":
            raise BadInput("an edit needs a non-empty instruction: {'action': 'edit', 'instruction': '...'}")
    raise BadInput(f"resume an approval with 'approve', 'stop' or {{'action': 'edit', 'instruction': ...}}, got {value!r}")


def ask(payload: dict[str, Any]) -> tuple[str, str]:
    """Interrupt with ``payload`` until the answer is valid; (action, text) of the valid one."""
    while True:
        answer = interrupt(payload)
        try:
            return decision_of(answer)
        except BadInput as exc:
            payload = {**payload, "error": str(exc)}


def payload_of(state: State, plan: dict[str, Any], prompt: str) -> dict[str, Any]:
    """What the person is shown: the plan, the prompt it will generate from, the frame it starts from
    (its ref, and the URL of the Agent Server route that serves it)."""
    frame = state.get("cond_frame") or state["frame"]
    return {"step": state.get("step", 0), "attempt": state.get("attempt", 0), "plan": plan, "prompt": prompt,
            "frame": frame, "frame_url": public_url(frame), "choices": list(CHOICES)}


def stopped(runtime: Runtime[Context] | None, step: int, instruction: str, why: str) -> dict[str, Any]:
    emit(runtime, "approval", step=step, decision="stop", instruction=instruction)
    reason = f"stopped by a person at step {step + 1}" + (f": {why}" if why else "")
    return {"last": "stopped", "reason": reason}


async def approve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """CollabVR: the plan of the current step."""
    step, plan = state["step"], state["plan"]
    action, text = ask(payload_of(state, plan, state["prompt"]))
    if action == "stop":
        return stopped(runtime, step, plan["instruction"], text)
    if action == "edit":
        emit(runtime, "approval", step=step, decision="edit", instruction=text)
        edited = {**plan, "instruction": text, "approval": "edited", "planned_instruction": plan["instruction"]}
        return {"plan": edited, "prompt": text}
    emit(runtime, "approval", step=step, decision="approve", instruction=plan["instruction"])
    return {"plan": {**plan, "approval": "approved"}}


async def approve_script(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Up-front planning: the whole script, before its first step is rendered. An edit is split into
    steps as the planner's answer is ("Step i: ..." lines)."""
    plan = state["plan"]
    action, text = ask(payload_of(state, plan, state["prompt"]))
    if action == "stop":
        return stopped(runtime, 0, plan["instruction"], text)
    if action == "edit":
        emit(runtime, "approval", step=0, decision="edit", instruction=text)
        script = script_of(text, limits(state).max_steps)
        edited = {**plan, "instruction": text, "approval": "edited", "planned_instruction": plan["instruction"]}
        return {"plan": edited, "script": script, "prompt": script[0] if script else ""}
    emit(runtime, "approval", step=0, decision="approve", instruction=plan["instruction"])
    return {"plan": {**plan, "approval": "approved"}}


async def approve_prompt(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The critique baselines: the prompt the critic rewrote, before the next round generates from it."""
    round_, prompt = state.get("step", 0), state["prompt"]
    plan = {"instruction": prompt, "target_state": "", "round": round_}
    action, text = ask(payload_of(state, plan, prompt))
    if action == "stop":
        return stopped(runtime, round_, prompt, text)
    emit(runtime, "approval", step=round_, decision=action, instruction=text or prompt)
    return {"prompt": text} if action == "edit" else {}
