"""Repair: fold the verifier's diagnosis into the next attempt.

The strategy follows from the diagnosis, in this order:

1. partial regeneration, when the good fraction is above the threshold: keep the good prefix,
   condition the next clip on its last frame, and ask for what remains;
2. action splitting, when the action was too large (never on the last step, which must finish
   the task): ask the planner for a smaller action;
3. prompt evolution otherwise: append the suggestion to the action prompt.

A generation or verification failure carries no diagnosis, so it is simply retried.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.artifacts import ArtifactStore, ref_json
from collabvr.context import Context
from collabvr.nodes import messages, tracing
from collabvr.nodes.common import compose_prompt, context_of, emit, store_of, vlm_call
from collabvr.nodes.plan import plan_request
from collabvr.records import Plan
from collabvr.state import State
from collabvr.status import RepairStrategy


def choose_strategy(verdict: dict | None, *, threshold: float, last_step: bool) -> RepairStrategy:
    if verdict is None:
        return "retry"
    if verdict["good_fraction"] > threshold:
        return "partial_regeneration"
    if verdict.get("action_too_large") and not last_step:
        return "action_splitting"
    return "prompt_evolution"


def good_prefix(store: ArtifactStore, clip_ref: dict, fraction: float) -> tuple[dict, dict, int, int]:
    """(prefix, frame to go on from, its index, frames in the clip): the good part of a rejected clip."""
    clip = store.load_video(clip_ref)
    cut = clip.frame_index_at(fraction)
    return ref_json(store.put_video(clip.trim(0, cut + 1))), ref_json(store.put_image(clip.frame(cut))), cut, clip.num_frames


async def repair(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    last = state["attempts"][-1]
    plan = state["plan"]
    verdict = last.get("verdict")
    strategy = choose_strategy(verdict, threshold=ctx.partial_threshold, last_step=state["step"] + 1 >= ctx.max_steps)
    update: dict[str, Any] = {"cond_frame": state["frame"], "prefix": None}
    detail: dict[str, Any] = {}

    if strategy == "retry":
        update["prompt"] = state["prompt"]
    elif strategy == "partial_regeneration":
        update["prefix"], update["cond_frame"], cut, frames = await offload(
            good_prefix, store_of(ctx), last["clip"], verdict["good_fraction"])
        update["prompt"] = compose_prompt(verdict.get("remaining") or plan["instruction"], verdict["suggestion"])
        detail = {"cut_frame": cut, "of_frames": frames}
    elif strategy == "action_splitting":
        request = await offload(plan_request, state, ctx, split_from=plan["instruction"])
        smaller, fail, compute = await vlm_call(ctx, "plan", request, Plan, repair_strategy=strategy)
        update["compute"] = compute
        if smaller is not None and smaller.instruction.strip():
            update["plan"] = smaller.model_dump(mode="json")
            update["prompt"] = smaller.instruction
            detail = {"from": plan["instruction"], "to": smaller.instruction}
        else:  # the planner could not split: fall back to evolving the prompt
            strategy = "prompt_evolution"
            detail = {"split_failed": fail or "empty instruction"}
    if strategy == "prompt_evolution":
        update["prompt"] = compose_prompt(plan["instruction"], verdict["suggestion"])

    emit(runtime, "repair", step=state["step"], attempt=state["attempt"], strategy=strategy)
    tracing.annotate(repair_strategy=strategy)
    record = {"step": state["step"], "after_attempt": last["index"], "strategy": strategy, "prompt": update["prompt"], **detail}
    return {**update, "repairs": [*state.get("repairs", []), record], **messages.repaired(record)}
