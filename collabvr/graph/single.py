"""Single inference (pass@1): one video of the full horizon H from the raw task prompt.

    prepare ──fits the budget──> generate ──> finalize
       └──────does not fit───────────────────> finalize
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from collabvr.context import BaseContext, Context
from collabvr.graph import Compute
from collabvr.nodes.baseline import BaselineState, affordable, horizon
from collabvr.nodes.conclude import conclude_with, failed
from collabvr.nodes.prepare import preparer
from collabvr.nodes.runnable import node
from collabvr.nodes.whole import generate_whole
from collabvr.state import Input, Output, limits


def after_prepare(state: BaselineState) -> Literal["generate", "finalize"]:
    return "generate" if affordable(state, limits(state), 1) else "finalize"


def outcome(state: BaselineState, ctx: Context) -> tuple[str, str]:
    if stopped := failed(state):
        return stopped
    if not state.get("chosen"):
        return "budget_spent", f"a {horizon(ctx):g} s video does not fit the budget of {ctx.budget_seconds:g} clip-seconds"
    return "generated", f"one {horizon(ctx):g} s video from the raw task prompt"


def worst_case(ctx: Context) -> Compute:
    """One whole video, no VLM call."""
    return Compute(clip_seconds=horizon(ctx))


def build_single() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(BaselineState, context_schema=BaseContext, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("single", plans=False), pins=True))
    builder.add_node("generate", node(generate_whole))
    builder.add_node("finalize", node(conclude_with(outcome)))
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", after_prepare)
    builder.add_edge("generate", "finalize")
    builder.add_edge("finalize", END)
    return builder


graph = build_single().compile(name="single")
