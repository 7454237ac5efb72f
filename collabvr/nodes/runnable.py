"""How a node is handed to LangGraph: one ``async def`` body, run by both of LangGraph's drivers.

Under ``ainvoke``, ``astream`` and the Agent Server the node is awaited: its model calls await the
SDKs' async clients and its blocking work runs in worker threads (:mod:`collabvr.aio`), so a clip
being generated holds no thread. Under ``invoke`` and ``stream`` the same body runs inline in
LangGraph's thread. A plain ``async def`` would lose ``invoke`` ("No synchronous function
provided"); a plain ``def`` would hold a thread of the event loop's default executor for every
call in flight.

Each node runs with the thread's pinned context (:mod:`collabvr.nodes.pinned`), and the update
that records a context switch joins the node's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable  # what StateGraph.add_node makes of a function
from langgraph.runtime import Runtime

from collabvr.aio import offload, run_inline
from collabvr.context import Context
from collabvr.nodes.pinned import resolve

Node = Callable[[Any, Runtime[Context]], Awaitable[dict[str, Any]]]


def node(body: Node, *, pins: bool = False) -> RunnableCallable:
    """``body`` as a LangGraph node with a sync and an async form. ``pins``: the node that pins the
    context (``prepare``) runs with the caller's, not the thread's."""

    async def arun(state: Any, runtime: Runtime[Context], config: RunnableConfig) -> Any:
        pinned = None if pins else (state or {}).get("pinned")
        ctx, switched = await offload(resolve, pinned, runtime.context, config.get("configurable"))
        update = await body(state, runtime.override(context=ctx))
        return {**update, **switched} if switched and isinstance(update, dict) else update

    def run(state: Any, runtime: Runtime[Context], config: RunnableConfig) -> Any:
        return run_inline(arun(state, runtime, config))

    return RunnableCallable(run, arun, name=body.__name__, trace=False)
