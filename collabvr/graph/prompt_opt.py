"""Prompt optimisation (VideoTPO-style): each round makes two candidates with the current prompt;
the VLM selects the better one and critiques it, rewriting the prompt for the next round, for
R = ``rounds`` rounds.

    prepare ──Send × 2 (as the budget affords)──> candidate ──> select ──rounds and budget left──> critique
       └──not even one fits──> finalize                          └──failed, last round or budget──> finalize
    critique ──not solved: Send × 2──> candidate
    critique ──solved or failed──> finalize
    critique ──not solved, approve_plans──> approve ──approved or edited: Send × 2──> candidate
                                               └──stopped──> finalize

The final video is the last round's selected candidate. The last round is not critiqued: no
further round could use the rewrite.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from collabvr.context import Context
from collabvr.graph import Compute
from collabvr.nodes.approve import approve_prompt
from collabvr.nodes.baseline import BaselineState, affordable, horizon
from collabvr.nodes.conclude import conclude_with, failed
from collabvr.nodes.critique import critique
from collabvr.nodes.prepare import preparer
from collabvr.nodes.runnable import node
from collabvr.nodes.select import select
from collabvr.nodes.whole import candidate_orders, generate_candidate
from collabvr.state import Input, Output, limits

PER_ROUND = 2


def launch(state: BaselineState) -> list[Send] | Literal["finalize"]:
    return candidate_orders(state, limits(state), PER_ROUND) or "finalize"


def after_select(state: BaselineState) -> Literal["critique", "finalize"]:
    ctx = limits(state)
    another = state["step"] < ctx.rounds and affordable(state, ctx, 1)
    return "critique" if state["last"] == "selected" and another else "finalize"


def after_critique(state: BaselineState) -> list[Send] | Literal["approve", "finalize"]:
    if state["last"] != "critiqued":
        return "finalize"
    return "approve" if limits(state).approve_plans else launch(state)


def after_approve(state: BaselineState) -> list[Send] | Literal["finalize"]:
    return "finalize" if state.get("last") == "stopped" else launch(state)


def outcome(state: BaselineState, ctx: Context) -> tuple[str, str]:
    if stopped := failed(state):
        return stopped
    rounds = state.get("step", 0)
    if state.get("last") == "solved":
        return "solved", f"the critic called round {rounds}'s selected video solved"
    if rounds < ctx.rounds:
        return "budget_spent", f"{rounds} of {ctx.rounds} rounds fit the budget of {ctx.budget_seconds:g} clip-seconds"
    return "rounds_spent", f"all {ctx.rounds} rounds used; the final video is the last round's selection"


def worst_case(ctx: Context) -> Compute:
    """Two whole videos per round, a selection per round and a critique per round but the last."""
    h = horizon(ctx)
    return Compute(clip_seconds=PER_ROUND * ctx.rounds * h, vlm_calls=2 * ctx.rounds - 1,
                   vlm_video_seconds=(PER_ROUND * ctx.rounds + ctx.rounds - 1) * h)


def build_prompt_opt() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(BaselineState, context_schema=Context, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("prompt_opt"), pins=True))
    builder.add_node("candidate", node(generate_candidate))
    builder.add_node("select", node(select))
    builder.add_node("critique", node(critique))
    builder.add_node("approve", node(approve_prompt))
    builder.add_node("finalize", node(conclude_with(outcome)))
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", launch, ["candidate", "finalize"])
    builder.add_edge("candidate", "select")
    builder.add_conditional_edges("select", after_select)
    builder.add_conditional_edges("critique", after_critique, ["candidate", "approve", "finalize"])
    builder.add_conditional_edges("approve", after_approve, ["candidate", "finalize"])
    builder.add_edge("finalize", END)
    return builder


graph = build_prompt_opt().compile(name="prompt_opt")
