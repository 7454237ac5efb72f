"""Finalize for the baselines: the final video, and why the episode ended.

Each baseline's graph module states its own ``outcome`` (status and reason); the final video is
the same rule for all: the steps' clips concatenated (up-front plan), else the ``chosen`` video,
else the first frame alone when no video was made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from collabvr.context import Context
from collabvr.nodes.baseline import BaselineState
from collabvr.nodes.common import context_of
from collabvr.nodes.finalize import conclude
from collabvr.state import halted
from collabvr.status import FAILED_CALLS

Outcome = Callable[[BaselineState, Context], tuple[str, str]]


def failed(state: BaselineState) -> tuple[str, str] | None:
    """(status, reason) when a typed failure ended the episode: a baseline has no repair, so the
    first failed call is where it stops."""
    last = state.get("last", "")
    if last not in FAILED_CALLS:
        return None
    if error := halted(state):
        return "load_failed", error["message"]
    errors = [a["error"]["message"] for a in state.get("attempts", []) if a.get("error")]
    why = errors[-1] if errors else "no candidate was generated"
    if last == "selection_failed":
        return last, f"the selector failed ({why}); the final video is the first candidate, which was not selected"
    return last, why


def conclude_with(outcome: Outcome) -> Callable[[BaselineState, Runtime[Context]], Awaitable[dict[str, Any]]]:
    """A finalize node whose status and reason come from ``outcome`` (a person's stop comes first)."""

    async def finalize(state: BaselineState, runtime: Runtime[Context]) -> dict[str, Any]:
        if state.get("last") == "stopped":
            ended = "stopped", state.get("reason") or "stopped by a person"
        else:
            ended = outcome(state, context_of(runtime))
        return await conclude(state, runtime, *ended, state.get("chosen"))

    return finalize
