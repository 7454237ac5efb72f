"""Post-hoc critique: a whole video from the raw prompt; the VLM critiques it after the fact and
rewrites the prompt; the whole video is made again from the first frame, for R = ``rounds``
generations at most.

    prepare ──fits──> generate ──rounds and budget left──> critique ──not solved──> generate
       │                 └──failed, last round or budget spent──> finalize
       └──does not fit──> finalize              critique ──solved or failed──> finalize
                                                critique ──not solved, approve_plans──> approve ──approved or edited──> generate
                                                                                           └──stopped──> finalize

The last video is not critiqued: no further round could use the critique.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from collabvr.context import Context
from collabvr.graph import Compute
from collabvr.nodes.approve import approve_prompt
from collabvr.nodes.baseline import BaselineState, affordable, horizon
from collabvr.nodes.conclude import conclude_with, failed
from collabvr.nodes.critique import critique
from collabvr.nodes.prepare import preparer
from collabvr.nodes.runnable import node
from collabvr.nodes.whole import generate_whole
from collabvr.state import Input, Output, limits


def after_prepare(state: BaselineState) -> Literal["generate", "finalize"]:
    return "generate" if affordable(state, limits(state), 1) else "finalize"


def after_generate(state: BaselineState) -> Literal["critique", "finalize"]:
    ctx = limits(state)
    another = state["step"] < ctx.rounds and affordable(state, ctx, 1)
    return "critique" if state["last"] == "generated" and another else "finalize"


def after_critique(state: BaselineState) -> Literal["approve", "generate", "finalize"]:
    if state["last"] != "critiqued":
        return "finalize"
    return "approve" if limits(state).approve_plans else "generate"


def after_approve(state: BaselineState) -> Literal["generate", "finalize"]:
    return "finalize" if state.get("last") == "stopped" else "generate"


def outcome(state: BaselineState, ctx: Context) -> tuple[str, str]:
    if stopped := failed(state):
        return stopped
    made = state.get("step", 0)
    if state.get("last") == "solved":
        return "solved", f"the critic called video {made} of at most {ctx.rounds} solved"
    if made < ctx.rounds:
        return "budget_spent", f"{made} of {ctx.rounds} videos fit the budget of {ctx.budget_seconds:g} clip-seconds"
    return "rounds_spent", f"all {ctx.rounds} rounds used; the final video is the last one"


def worst_case(ctx: Context) -> Compute:
    """A whole video per round, each but the last critiqued."""
    h = horizon(ctx)
    return Compute(clip_seconds=ctx.rounds * h, vlm_calls=ctx.rounds - 1, vlm_video_seconds=(ctx.rounds - 1) * h)


def build_posthoc_critique() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(BaselineState, context_schema=Context, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("posthoc_critique"), pins=True))
    builder.add_node("generate", node(generate_whole))
    builder.add_node("critique", node(critique))
    builder.add_node("approve", node(approve_prompt))
    builder.add_node("finalize", node(conclude_with(outcome)))
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", after_prepare)
    builder.add_conditional_edges("generate", after_generate)
    builder.add_conditional_edges("critique", after_critique)
    builder.add_conditional_edges("approve", after_approve)
    builder.add_edge("finalize", END)
    return builder


graph = build_posthoc_critique().compile(name="posthoc_critique")
