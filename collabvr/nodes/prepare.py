"""Prepare: the first node of every method's graph.

It fills in what an episode starts from, so a caller may pass only ``{"task": "sim:maze/hard"}``
(or a task object); it checks the backends before anything is paid for (:func:`preflight`: a bad
spec, a missing key or SDK is one BadInput now, not three failed attempts later); it copies the
limits the routers need from the run context into state, so routers read state only (see
:meth:`collabvr.context.Context.limits`); and it pins the context to the thread (``pinned``: see
:mod:`collabvr.nodes.pinned`) and names the method (``method``: LangSmith's tag when embedded).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.artifacts import ref_json
from collabvr.backends import registry
from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.nodes.common import context_of, store_of
from collabvr.nodes.pinned import pin
from collabvr.nodes.runnable import Node
from collabvr.state import State
from collabvr.task import Task


def preflight(task: Task, ctx: Context) -> None:
    """Check everything that can be checked before the first model call, and fail with BadInput
    (one line, exit 2 on the CLI) when something cannot work: an unknown provider or option, an
    SDK that is not installed, a model of the wrong kind, missing credentials, a missing local
    model, a sim backend asked to solve a user task. Backends are built here, once, and cached.
    """
    for role, spec, options in (("vlm", ctx.vlm, ctx.vlm_options), ("vgm", ctx.vgm, ctx.vgm_options)):
        provider, _ = registry.parse_spec(spec)
        if provider == "sim" and not task.is_sim:
            raise BadInput(f"the sim {role.upper()} only solves sim tasks (sim:FAMILY/DIFFICULTY); use a real backend for --image tasks")
        backend = registry.resolve(role, spec, options)
        check = getattr(backend, "preflight", None)
        if check is not None:
            check()


def start(state: State, ctx: Context) -> dict[str, Any]:
    """Fill in what an episode starts from, so a caller may pass only ``{"task": ...}``: a Task
    dict, or a spec string such as ``"sim:maze/hard"`` (handy in LangGraph Studio)."""
    if "frame" in state:
        return {}
    spec = state["task"]
    task = Task.parse(spec, seed=ctx.seed) if isinstance(spec, str) else Task.model_validate(spec)
    preflight(task, ctx)
    task = task.materialize(store_of(ctx))
    return {"task": task.model_dump(mode="json", exclude_none=True), "frame": ref_json(task.first_frame), "step": 0,
            "attempt": 0, "attempts": [], "repairs": [], "status": "running"}


def preparer(method: str, *, plans: bool = True) -> Node:
    """The prepare node of ``method``; ``plans``: whether it has plans a person may approve."""

    async def prepare(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = context_of(runtime)
        if ctx.approve_plans and not plans:
            raise BadInput(f"approve_plans: {method} has no plan to approve; it is offered by collabvr, upfront_plan, "
                           "posthoc_critique and prompt_opt")
        started = await offload(start, state, ctx)
        return {**started, "limits": ctx.limits(), "pinned": await offload(pin, ctx), "method": method}

    return prepare


prepare = preparer("collabvr")
