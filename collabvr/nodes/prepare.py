"""Prepare: the first node of every method's graph.

It fills in what an episode starts from, so a caller may pass only ``{"task": "sim:maze/hard"}``
(or a task object), and copies the limits the routers need from the run context into state, so
routers read state only (see :meth:`collabvr.context.Context.limits`).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.artifacts import ref_json
from collabvr.context import Context
from collabvr.nodes.common import context_of, store_of
from collabvr.state import State
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


def prepare(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    return {**start(state, ctx), "limits": ctx.limits()}
