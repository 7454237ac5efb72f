"""Critique: the VLM reviews the chosen whole video and rewrites the prompt for the next round.

The critique is attached to the attempt it reviewed. A critic that fails gives no rewrite, so
``last`` becomes ``critique_failed`` (the graphs stop there) and the attempt records the error.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.context import Context
from collabvr.nodes import messages
from collabvr.nodes.baseline import BaselineState
from collabvr.nodes.common import context_of, emit, store_of, vlm_call
from collabvr.nodes.whole import current_prompt
from collabvr.records import Critique, CritiqueRequest
from collabvr.state import attempt_record


async def critique(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    prompt = current_prompt(state)
    video = await offload(store_of(ctx).load_video, state["chosen"])
    request = CritiqueRequest(task=state["task"]["prompt"], video=video, prompt=prompt, family=state["task"].get("family"))
    record, fail, compute = await vlm_call(ctx, "critique", request, Critique)
    reviewed = max(state.get("step", 1) - 1, 0)  # the round that made the chosen video
    attempts = list(state["attempts"])
    at = max(i for i, a in enumerate(attempts) if a.get("clip") == state["chosen"])
    if record is None:
        attempts[at] = attempt_record(attempts[at], status="critique_failed", error=fail)
        emit(runtime, "critique_failed", step=reviewed, error=fail)
        return {"attempts": attempts, "last": "critique_failed", "compute": compute}
    attempts[at] = attempt_record(attempts[at], critique=record.model_dump(mode="json"))
    emit(runtime, "critique", step=reviewed, solved=record.solved, critique=record.critique)
    verdict = "solved" if record.solved else f"not solved: {record.critique}\nnext prompt: {record.revised_prompt}"
    return {**messages.critiqued(reviewed, verdict), "attempts": attempts, "last": "solved" if record.solved else "critiqued",
            "prompt": record.revised_prompt.strip() or prompt, "compute": compute}
