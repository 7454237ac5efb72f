"""Verify: the VLM judges whether the clip carried out the planned action.

On accept the step is recorded and its last frame becomes the current frame. A verifier that
fails to answer is a failed attempt, never an accept.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import offload
from collabvr.artifacts import ArtifactStore, ref_json
from collabvr.context import Context
from collabvr.nodes import messages
from collabvr.nodes.common import context_of, emit, store_of, vlm_call
from collabvr.records import Verdict, VerifyRequest
from collabvr.state import State, attempt_record, with_attempt


def verify_request(state: State, store: ArtifactStore) -> VerifyRequest:
    pending, plan = state["pending"], state["plan"]
    return VerifyRequest(
        task=state["task"]["prompt"],
        clip=store.load_video(pending["clip"]),
        start_frame=store.load_image(state["frame"]),
        instruction=plan["instruction"],
        target_state=plan["target_state"],
        family=state["task"].get("family"),
        step=state["step"],
        attempt=state["attempt"],
    )


async def verify(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime)
    store = store_of(ctx)
    pending, plan = state["pending"], state["plan"]
    request = await offload(verify_request, state, store)
    verdict, fail, compute = await vlm_call(ctx, "verify", request, Verdict)
    if fail is not None:
        attempt = attempt_record(pending, status="verification_failed", error=fail, verify_ms=compute["vlm_ms"])
    else:
        attempt = attempt_record(pending, status="accepted" if verdict.accept is True else "rejected",
                                 verdict=verdict.model_dump(mode="json"), verify_ms=compute["vlm_ms"])
    emit(runtime, "verified", step=state["step"], attempt=state["attempt"], status=attempt["status"],
         reason=(verdict.reason if verdict else fail["message"]))
    attempts = with_attempt(state, attempt)
    update: dict[str, Any] = {"attempts": attempts, "pending": None, "attempt": state["attempt"] + 1,
                              "last": attempt["status"], "compute": compute, **messages.verified(attempt)}
    if attempt["status"] == "accepted":
        # the step is done: its attempt log moves to the store, so state stays bounded per step
        log = await offload(store.put_json, {"attempts": attempts, "repairs": state.get("repairs", [])})
        accepted = {
            "step": state["step"],
            "plan": plan,
            "clip": pending["clip"],
            "start_frame": state["frame"],
            "end_frame": pending["last_frame"],
            "attempts": len(attempts),
            "log": ref_json(log),
        }
        update |= {"steps": [accepted], "frame": pending["last_frame"], "step": state["step"] + 1, "attempt": 0,
                   "prefix": None, "attempts": [], "repairs": []}
    return update
