"""Select: the VLM picks the best of a round's candidates in one call.

A selector that fails (an exception, the wrong type, an index out of range) picks nothing: the
round's first generated candidate becomes ``chosen`` so there is a video to show, but every
candidate is marked ``selection_failed`` and ``last`` says so. It is never recorded as selected.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.context import Context
from collabvr.errors import InvalidOutput, failure
from collabvr.nodes import messages
from collabvr.nodes.baseline import BaselineState
from collabvr.nodes.common import context_of, emit, store_of, vlm_call
from collabvr.records import Selection, SelectRequest
from collabvr.state import attempt_record


async def select(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    round_ = state.get("step", 0)
    batch = sorted((c for c in state.get("candidates", []) if c["round"] == round_), key=lambda c: c["index"])
    ready = [c for c in batch if c["status"] == "generated"]
    update: dict[str, Any] = {"step": round_ + 1}
    if not ready:  # nothing to select from: no VLM call
        return {**update, "attempts": [*state.get("attempts", []), *batch], "last": "generation_failed"}
    store = store_of(ctx)
    clips = await offload(lambda: tuple(store.load_video(c["clip"]) for c in ready))
    request = SelectRequest(task=state["task"]["prompt"], candidates=clips, family=state["task"].get("family"))
    picked, fail, compute = await vlm_call(ctx, "select", request, Selection)
    if picked is not None and picked.index >= len(ready):
        picked, fail = None, failure(InvalidOutput(f"the selector picked candidate {picked.index} of {len(ready)}"))
    marks: dict[int, dict[str, Any]] = {}
    if picked is None:
        marks = {c["index"]: {"status": "selection_failed", "error": fail} for c in ready}
        winner, last = ready[0], "selection_failed"
    else:
        winner, last = ready[picked.index], "selected"
        selection = {**picked.model_dump(mode="json"), "candidate": winner["index"], "of": len(ready)}
        marks = {c["index"]: {"status": "not_selected"} for c in ready}
        marks[winner["index"]] = {"status": "selected", "selection": selection}
    if picked is None:
        emit(runtime, "selection_failed", step=round_, attempt=winner["index"], error=fail)
    else:
        emit(runtime, "selected", step=round_, attempt=winner["index"], of=len(ready), reason=picked.reason)
    attempts = [attempt_record(c, **marks.get(c["index"], {})) for c in batch]
    said = f"selected candidate {winner['index']} of {len(ready)}: {picked.reason}" if picked else f"the selector failed: {fail['message']}"
    return {**update, "attempts": [*state.get("attempts", []), *attempts], "chosen": winner["clip"], "last": last,
            "compute": compute, **messages.selected(round_, said, winner["clip"])}
