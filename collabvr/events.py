"""The custom stream events (``stream_mode="custom"``): one schema per kind, built by one helper.

Every event is a small JSON dict with ``event`` (its kind), ``step`` and ``attempt`` (0-based; for
the whole-video baselines ``step`` is the round and ``attempt`` the candidate), and the fields of
its kind, all of them present: :func:`make` fills each field its caller leaves out with the
schema's default, and refuses a field the schema does not have. So a consumer that knows a kind
never meets a missing key, and a consumer that does not know a kind can still show ``event``.
Events never carry bytes or arrays, only text, numbers, artifact refs and the URLs of artifacts on
the Agent Server's route (``/artifacts/<sha256>.<ext>``, fetched from the server a client talks to).

Backends report progress during a long call (denoising steps, polling) with :func:`report`;
they need not know LangGraph. The node that makes the call opens :func:`reporting`, which turns
each report into a ``generating`` event on the node's stream writer.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorInfo(BaseModel):
    """A typed failure as events and attempts record it (see :func:`collabvr.errors.failure`)."""

    kind: str = "error"
    type: str = ""
    message: str = ""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int = Field(0, description="0-based step (baselines: round)")
    attempt: int = Field(0, description="0-based attempt within the step (baselines: candidate)")


class PlanEvent(_Event):
    event: Literal["plan"] = "plan"
    instruction: str = ""
    task_complete: bool = False
    planned_steps: int = Field(1, description="steps the plan covers: 1 for step-level planning, more up front")


class PlanFailedEvent(_Event):
    event: Literal["plan_failed"] = "plan_failed"
    error: ErrorInfo = ErrorInfo()


class ApprovalEvent(_Event):
    event: Literal["approval"] = "approval"
    decision: Literal["approve", "edit", "stop"] = "approve"
    instruction: str = ""


class GeneratingEvent(_Event):
    event: Literal["generating"] = "generating"
    done: float = Field(0, description="progress so far, in `unit`")
    total: float | None = Field(None, description="progress at the end, when known")
    unit: str = Field("step", description="'step' (denoising steps) or 's' (seconds waited)")
    elapsed_s: float = 0.0


class GeneratedEvent(_Event):
    event: Literal["generated"] = "generated"
    seconds: float = Field(0.0, description="length of the clip that came back")
    clip_url: str | None = Field(None, description="the clip on the Agent Server's artifact route")


class GenerationFailedEvent(_Event):
    event: Literal["generation_failed"] = "generation_failed"
    error: ErrorInfo = ErrorInfo()


class VerifiedEvent(_Event):
    event: Literal["verified"] = "verified"
    status: Literal["accepted", "rejected", "verification_failed"] = "rejected"
    reason: str = ""


class RepairEvent(_Event):
    event: Literal["repair"] = "repair"
    strategy: str = ""


class AdvanceEvent(_Event):
    event: Literal["advance"] = "advance"


class SelectedEvent(_Event):
    event: Literal["selected"] = "selected"
    of: int = 0
    reason: str = ""


class SelectionFailedEvent(_Event):
    event: Literal["selection_failed"] = "selection_failed"
    error: ErrorInfo = ErrorInfo()


class CritiqueEvent(_Event):
    event: Literal["critique"] = "critique"
    solved: bool = False
    critique: str = ""


class CritiqueFailedEvent(_Event):
    event: Literal["critique_failed"] = "critique_failed"
    error: ErrorInfo = ErrorInfo()


class FinalizedEvent(_Event):
    event: Literal["finalized"] = "finalized"
    status: str = ""
    reason: str = ""
    final_url: str | None = Field(None, description="the final video on the Agent Server's artifact route")


SCHEMAS: dict[str, type[_Event]] = {
    model.model_fields["event"].default: model
    for model in (PlanEvent, PlanFailedEvent, ApprovalEvent, GeneratingEvent, GeneratedEvent, GenerationFailedEvent,
                  VerifiedEvent, RepairEvent, AdvanceEvent, SelectedEvent, SelectionFailedEvent, CritiqueEvent,
                  CritiqueFailedEvent, FinalizedEvent)
}
Event = dict[str, Any]


def make(kind: str, **fields: Any) -> Event:
    """The event of ``kind`` with every field of its schema; ValueError on an unknown kind or field."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(SCHEMAS)}")
    return SCHEMAS[kind](**fields).model_dump(mode="json")


# -- progress reports from inside a backend call ------------------------------------------------

_sink: contextvars.ContextVar[Callable[[float, float | None, str], None] | None] = contextvars.ContextVar(
    "collabvr_progress", default=None
)


def report(done: float, total: float | None = None, *, unit: str = "step") -> None:
    """Report progress of the backend call in flight (no-op when nobody listens)."""
    sink = _sink.get()
    if sink is not None:
        sink(done, total, unit)


@contextmanager
def reporting(emit: Callable[[Event], None] | None, *, step: int = 0, attempt: int = 0) -> Iterator[None]:
    """Within the block, :func:`report` calls become ``generating`` events passed to ``emit``.

    The sink lives in a context variable, so it follows the call into ``asyncio.to_thread`` and
    stays separate per episode when episodes run concurrently.
    """
    if emit is None:
        yield
        return
    started = time.perf_counter()

    def sink(done: float, total: float | None, unit: str) -> None:
        emit(make("generating", step=step, attempt=attempt, done=done, total=total, unit=unit,
                  elapsed_s=round(time.perf_counter() - started, 3)))

    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
