"""pass@k: k candidates of the full horizon with seeds seed+i, fanned out with ``Send``; the VLM
picks one in a single ``select`` call.

    prepare ──Send × n (n <= k, as many as the budget affords)──> candidate ──> select ──> finalize
       └──not even one fits──> finalize

A failed selector is not an accept: the final video is the first candidate, with status
``selection_failed``.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from collabvr.context import BaseContext, Context
from collabvr.graph import Compute
from collabvr.nodes.baseline import BaselineState, horizon
from collabvr.nodes.conclude import conclude_with, failed
from collabvr.nodes.prepare import preparer
from collabvr.nodes.runnable import node
from collabvr.nodes.select import select
from collabvr.nodes.whole import candidate_orders, generate_candidate
from collabvr.state import Input, Output, limits


def launch(state: BaselineState) -> list[Send] | Literal["finalize"]:
    ctx = limits(state)
    return candidate_orders(state, ctx, ctx.k) or "finalize"


def outcome(state: BaselineState, ctx: Context) -> tuple[str, str]:
    if stopped := failed(state):
        return stopped
    launched = len(state.get("candidates", []))
    picked = next((a["selection"] for a in state.get("attempts", []) if a.get("selection")), None)
    chose = f"the selector picked candidate {picked['candidate']}: {picked['reason']}" if picked else "nothing to select"
    if launched < ctx.k:
        return "budget_spent", f"{launched} of {ctx.k} candidates fit the budget of {ctx.budget_seconds:g} clip-seconds; {chose}"
    return "selected", f"{launched} candidates; {chose}"


def worst_case(ctx: Context) -> Compute:
    """k whole videos and one selection call that watches all of them."""
    return Compute(clip_seconds=ctx.k * horizon(ctx), vlm_calls=1, vlm_video_seconds=ctx.k * horizon(ctx))


def build_pass_at_k() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(BaselineState, context_schema=BaseContext, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("pass_at_k", plans=False), pins=True))
    builder.add_node("candidate", node(generate_candidate))
    builder.add_node("select", node(select))
    builder.add_node("finalize", node(conclude_with(outcome)))
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", launch, ["candidate", "finalize"])
    builder.add_edge("candidate", "select")
    builder.add_edge("select", "finalize")
    builder.add_edge("finalize", END)
    return builder


graph = build_pass_at_k().compile(name="pass_at_k")
