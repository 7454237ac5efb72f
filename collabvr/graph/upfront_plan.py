"""Up-front plan: the VLM plans every step before any frame exists; the VGM executes the steps
in turn, each conditioned on the previous clip's last frame, and nothing is verified.

    prepare ──> plan ──steps planned, first fits──> generate ──clip──> advance ──steps left, next fits──> generate
                 │  └──failed, nothing to do, or budget──> finalize
                 └──approve_plans──> approve ──approved or edited──> generate
                                        └──stopped──> finalize
                                 generate ──failed──> finalize      advance ──script done or budget──> finalize
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from collabvr.context import Context
from collabvr.graph import Compute
from collabvr.nodes.approve import approve_script
from collabvr.nodes.baseline import BaselineState, horizon
from collabvr.nodes.conclude import conclude_with, failed
from collabvr.nodes.generate import generate
from collabvr.nodes.prepare import preparer
from collabvr.nodes.runnable import node
from collabvr.nodes.upfront import advance, plan_upfront
from collabvr.state import Input, Output, clip_seconds_spent, limits


def next_step_fits(state: BaselineState, ctx: Context) -> bool:
    step = state.get("step", 0)
    return step < len(state.get("script", [])) and ctx.affords(clip_seconds_spent(state), ctx.seconds_for(step))


def after_plan(state: BaselineState) -> Literal["approve", "generate", "finalize"]:
    ctx = limits(state)
    if not next_step_fits(state, ctx):
        return "finalize"
    return "approve" if ctx.approve_plans else "generate"


def after_approve(state: BaselineState) -> Literal["generate", "finalize"]:
    return "generate" if state.get("last") != "stopped" and next_step_fits(state, limits(state)) else "finalize"


def after_generate(state: BaselineState) -> Literal["advance", "finalize"]:
    return "advance" if state.get("pending") is not None else "finalize"


def after_advance(state: BaselineState) -> Literal["generate", "finalize"]:
    return "generate" if next_step_fits(state, limits(state)) else "finalize"


def outcome(state: BaselineState, ctx: Context) -> tuple[str, str]:
    if stopped := failed(state):
        return stopped
    script, done = state.get("script", []), state.get("step", 0)
    if not script:
        return "complete", "the planner found the task already complete"
    if done < len(script):
        return "budget_spent", f"{done} of {len(script)} planned steps fit the budget of {ctx.budget_seconds:g} clip-seconds"
    return "plan_executed", f"all {len(script)} planned steps rendered, none verified"


def worst_case(ctx: Context) -> Compute:
    """One plan call on the first frame, then every planned step once."""
    return Compute(clip_seconds=horizon(ctx), vlm_calls=1, vlm_images=1)


def build_upfront_plan() -> StateGraph:
    """The uncompiled builder: compile it with your own checkpointer, or embed it as a subgraph."""
    builder = StateGraph(BaselineState, context_schema=Context, input_schema=Input, output_schema=Output)
    builder.add_node("prepare", node(preparer("upfront_plan"), pins=True))
    builder.add_node("plan", node(plan_upfront))
    builder.add_node("approve", node(approve_script))
    builder.add_node("generate", node(generate))
    builder.add_node("advance", node(advance))
    builder.add_node("finalize", node(conclude_with(outcome)))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "plan")
    builder.add_conditional_edges("plan", after_plan)
    builder.add_conditional_edges("approve", after_approve)
    builder.add_conditional_edges("generate", after_generate)
    builder.add_conditional_edges("advance", after_advance)
    builder.add_edge("finalize", END)
    return builder


graph = build_upfront_plan().compile(name="upfront_plan")
