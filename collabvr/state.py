"""The graph state: small, plain, JSON-friendly.

Frames and clips live in the artifact store; the state holds only their references
(``{sha256, uri, mime, ...}``) and the JSON dumps of the records. Any checkpointer can store it,
and a checkpoint stays a few KB per step whatever the resolution.
"""

from __future__ import annotations

import operator
from functools import lru_cache
from typing import Annotated, Any, Required

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from collabvr.context import Context
from collabvr.status import ATTEMPT_STATUSES, HALTING, AttemptStatus, EpisodeStatus, Last

Ref = dict[str, Any]  # ArtifactRef.model_dump(mode="json")


class Attempt(TypedDict, total=False):
    """One generation attempt (or baseline candidate) as traces record it: plain JSON, refs only."""

    step: int  # 0-based step (whole-video baselines: 0)
    index: int  # 0-based attempt in the step (baselines: the generation or candidate number)
    round: int  # baselines with rounds: the round of the candidate
    status: AttemptStatus
    prompt: str
    seed: int
    seconds_requested: float
    cond_frame: Ref  # the frame the generation was conditioned on
    prefix: Ref  # partial regeneration: the good prefix spliced before the new clip
    generated: Ref  # partial regeneration: the new clip alone
    clip: Ref  # the clip as verified (prefix + new clip when spliced)
    last_frame: Ref
    gen_ms: float
    verify_ms: float
    render: dict[str, Any]  # what a local VGM really rendered (family, frames asked and made, size, steps, ...)
    verdict: dict[str, Any]  # Verdict dump
    selection: dict[str, Any]  # the selector's pick, on the selected candidate
    critique: dict[str, Any]  # Critique dump, on the video it reviewed
    error: dict[str, Any]  # failure(): {kind, type, message}


_ATTEMPT_KEYS = frozenset(Attempt.__annotations__)


def attempt_record(base: Attempt | None = None, **fields: Any) -> Attempt:
    """The one way to build or update an attempt: ``base`` with ``fields`` over it; a key that is
    not an :class:`Attempt` field or a status that is not an :data:`AttemptStatus` is a bug."""
    record = {**(base or {}), **fields}
    unknown = set(record) - _ATTEMPT_KEYS
    if unknown:
        raise KeyError(f"not attempt fields: {', '.join(sorted(unknown))}")
    if "status" in record and record["status"] not in ATTEMPT_STATUSES:
        raise ValueError(f"not an attempt status: {record['status']!r}")
    return record  # type: ignore[return-value]


def add_counts(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    """Reducer for compute counters: numbers add up key by key."""
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = round(out.get(key, 0) + value, 6)
    return out


class State(TypedDict, total=False):
    """One episode. Fields marked (append) accumulate through reducers."""

    task: dict[str, Any]  # Task.model_dump(mode="json") with first_frame set (input may be a spec string)
    frame: Ref  # the current frame: start of the current step
    step: int  # 0-based index of the current step
    attempt: int  # attempts made in the current step
    plan: dict[str, Any] | None  # Plan of the current step
    prompt: str  # action prompt for the next generation
    cond_frame: Ref  # frame the next generation is conditioned on
    prefix: Ref | None  # good prefix to splice before the next clip (partial regeneration)
    pending: Attempt | None  # the attempt between generate and verify
    attempts: list[Attempt]  # attempts of the current step, failed ones too
    repairs: list[dict[str, Any]]  # repairs of the current step
    last: Last  # what the latest node concluded: accepted, rejected, plan_failed, ...
    steps: Annotated[list[dict[str, Any]], operator.add]  # (append) accepted steps; each keeps a ref to its attempt log
    compute: Annotated[dict[str, float], add_counts]  # calls, clip-seconds, tokens, milliseconds
    status: EpisodeStatus  # running, then why the episode ended (see collabvr.status)
    reason: str  # why the episode ended
    final: Ref | None  # the final video: accepted clips concatenated
    final_url: str | None  # the final video on the Agent Server's artifact route (/artifacts/<sha256>.mp4)
    score: dict[str, Any] | None  # the scorer's verdict on the final video (sim tasks); None without a scorer
    limits: dict[str, Any]  # the context fields routers read that differ from the defaults (Context.limits)
    pinned: dict[str, Any]  # the context the thread runs with: backends, options (scrubbed), artifact root
    switches: Annotated[list[dict[str, Any]], operator.add]  # (append) context fields a resume switched
    method: str  # the method's graph: collabvr, single, pass_at_k, ...
    messages: Annotated[list[AnyMessage], add_messages]  # plans, verdicts, repairs, the result, as chat messages


class Input(TypedDict, total=False):
    """What a caller passes: a task as a spec string ("sim:maze/hard") or a task object (Task's JSON)."""

    task: Required[str | dict[str, Any]]


class Output(TypedDict, total=False):
    """What a caller gets back."""

    task: dict[str, Any]
    status: EpisodeStatus
    reason: str
    score: dict[str, Any] | None
    final: Ref | None  # the final video's artifact ref
    final_url: str | None  # the final video on the Agent Server's artifact route
    steps: list[dict[str, Any]]
    compute: dict[str, float]
    messages: Annotated[list[AnyMessage], add_messages]  # the episode as chat messages


def limits(state: State) -> Context:
    """The limits a router may read, from state (see :meth:`Context.limits`)."""
    return _limits(tuple(sorted(state.get("limits", {}).items())))


@lru_cache(maxsize=256)
def _limits(items: tuple[tuple[str, Any], ...]) -> Context:
    return Context(**dict(items))


def clip_seconds_spent(state: State) -> float:
    """VGM clip-seconds generated so far in the episode (what budgets are counted in)."""
    return state.get("compute", {}).get("clip_seconds", 0.0)


def halted(state: State) -> dict[str, Any] | None:
    """The error of an attempt of this step that no retry can fix (a local model that could not be
    built in this process), else None: routers end the episode there instead of retrying. Any
    attempt, not only the latest: a fan-out's candidates finish in any order."""
    for attempt in reversed(state.get("attempts") or []):
        error = attempt.get("error")
        if error and error.get("kind") in HALTING:
            return error
    return None


def with_attempt(state: State, attempt: Attempt) -> list[Attempt]:
    """The current step's attempts with one more."""
    return [*state.get("attempts", []), attempt]


def history(state: State, load_json: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every attempt and repair of the episode, in order: the archived logs of accepted steps, then
    the current step's. ``load_json`` reads an artifact ref (``ArtifactStore.load_json``)."""
    attempts: list[dict[str, Any]] = []
    repairs: list[dict[str, Any]] = []
    for step in state.get("steps", []):
        if "log" not in step:  # methods that keep every attempt in state archive nothing
            continue
        log = load_json(step["log"])
        attempts += log["attempts"]
        repairs += log["repairs"]
    return attempts + list(state.get("attempts", [])), repairs + list(state.get("repairs", []))
