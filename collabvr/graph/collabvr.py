"""The CollabVR method: plan -> generate -> verify, with repair on rejection.

    prepare ──> plan ──> generate ──> verify ──accept, steps left──> plan
                 │  │        │          ├──accept, done or out of steps──> finalize
                 │  │        │          └──reject, attempts left──> repair ──> generate
                 │  │        └──generation failed, attempts left──> repair
                 │  └──approve_plans──> approve ──approved or edited──> generate
                 │                          └──stopped──> finalize
                 └──already complete, or out of attempts──> finalize

Routers read state only (the limits ``prepare`` copied from the context), so ``update_state``
and LangGraph Studio's state editing work on every edge.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from collabvr.context import Context
from collabvr.graph import Compute
from collabvr.nodes.approve import approve
from collabvr.nodes.baseline import horizon
from collabvr.nodes.finalize import finalize
from collabvr.nodes.generate import generate
from collabvr.nodes.plan import plan
from collabvr.nodes.prepare import preparer
from collabvr.nodes.repair import repair
from collabvr.nodes.runnable import node
from collabvr.nodes.verify import verify
from collabvr.state import Input, Output, State, clip_seconds_spent, halted, limits


def can_generate(state: State, ctx: Context) -> bool:
    """Attempts left in this step, a clip of this step's length fits the clip-seconds budget, and the
    last failure was one a retry can fix."""
    if halted(state):
        return False
    return state["attempt"] < ctx.max_attempts and ctx.affords(clip_seconds_spent(state), ctx.seconds_for(state["step"]))


def after_plan(state: State) -> Literal["approve", "generate", "plan", "finalize"]:
    ctx = limits(state)
    current = state.get("plan")
    if current is None:  # the planner failed
        return "plan" if state["attempt"] < ctx.max_attempts and not halted(state) else "finalize"
    if current["task_complete"] and not current["instruction"].strip():
        return "finalize"
    if not can_generate(state, ctx):
        return "finalize"
    return "approve" if ctx.approve_plans else "generate"


def after_approve(state: State) -> Literal["generate", "finalize"]:
    return "finalize" if state.get("last") == "stopped" else "generate"


def after_generate(state: State) -> Literal["verify", "repair", "finalize"]:
    if state.get("pending") is not None:
        return "verify"
    return "repair" if can_generate(state, limits(state)) else "finalize"


def after_verify(state: State) -> Literal["plan", "repair", "finalize"]:
    ctx = limits(state)
    if state["last"] == "accepted":
        if state["plan"]["task_complete"] or state["step"] >= ctx.max_steps:
            return "finalize"
        return "plan" if can_generate(state, ctx) else "finalize"
    return "repair" if can_generate(state, ctx) else "finalize"


def worst_case(ctx: Context) -> Compute:
    """The most one episode can spend: every step uses every attempt, each after a split plan."""
    h = horizon(ctx)
    return Compute(clip_seconds=ctx.max_attempts * h, vlm_calls=ctx.max_steps * 2 * ctx.max_attempts,
                   vlm_images=2 * ctx.max_steps * ctx.max_attempts, vlm_video_seconds=ctx.max_attempts * h)


def build_collabvr() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(State, context_schema=Context, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("collabvr"), pins=True))
    builder.add_node("plan", node(plan))
    builder.add_node("approve", node(approve))
    builder.add_node("generate", node(generate))
    builder.add_node("verify", node(verify))
    builder.add_node("repair", node(repair))
    builder.add_node("finalize", node(finalize))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "plan")
    builder.add_conditional_edges("plan", after_plan)
    builder.add_conditional_edges("approve", after_approve)
    builder.add_conditional_edges("generate", after_generate)
    builder.add_conditional_edges("verify", after_verify)
    builder.add_edge("repair", "generate")
    builder.add_edge("finalize", END)
    return builder


graph = build_collabvr().compile(name="collabvr")
