"""What every closed-API backend shares: call policy, retries, re-asks, prompts, frames, prices.

The backends in :mod:`collabvr.backends.google` and :mod:`collabvr.backends.openai` turn SDK
exceptions into a :class:`Failure` classification; everything else (backoff with jitter,
``Retry-After``, the attempt limit and the total deadline, the concurrency limit, validating
structured answers and re-asking once) lives here, so there is one policy for all of them.
The SDKs' own retries are switched off.

Each backend writes a call once, as a coroutine whose requests are ``either(sync client, async
client)`` (:mod:`collabvr.aio`): its async form (``acall``, ``agenerate``) awaits the SDK's async
client and ``asyncio.sleep``, and its sync form runs the same coroutine inline on the sync client.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from collabvr import prompts
from collabvr.aio import either, inline, run_inline, sleep
from collabvr.errors import BackendError, BadInput, InvalidOutput, TransientError, redact
from collabvr.media import Image, Video
from collabvr.records import (
    Critique,
    CritiqueRequest,
    Judgement,
    JudgeRequest,
    Plan,
    PlanRequest,
    RubricJudgement,
    Selection,
    SelectRequest,
    Usage,
    Verdict,
    VerifyRequest,
)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")

# ----------------------------------------------------------------------------- prices
# USD. Tokens per million, video per generated second. Collected from the providers' public
# price pages in 2025 (standard tier, prompts <= 200k tokens, Veo 720p/1080p without audio
# where the page lists both). Prices change: check current pricing, and override with the
# ``prices`` option ({"model": {"input_per_mtok": .., "output_per_mtok": ..}} or
# {"model": {"per_second": ..}}).
PRICES: dict[str, dict[str, float]] = {
    "gemini-2.5-pro": {"input_per_mtok": 1.25, "output_per_mtok": 10.00},
    "gemini-2.5-flash": {"input_per_mtok": 0.30, "output_per_mtok": 2.50},
    "gemini-2.5-flash-lite": {"input_per_mtok": 0.10, "output_per_mtok": 0.40},
    "gpt-4o": {"input_per_mtok": 2.50, "output_per_mtok": 10.00},
    "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
    "gpt-4.1": {"input_per_mtok": 2.00, "output_per_mtok": 8.00},
    "gpt-4.1-mini": {"input_per_mtok": 0.40, "output_per_mtok": 1.60},
    "gpt-5": {"input_per_mtok": 1.25, "output_per_mtok": 10.00},
    "gpt-5-mini": {"input_per_mtok": 0.25, "output_per_mtok": 2.00},
    "veo-2.0-generate-001": {"per_second": 0.50},
    "veo-3.0-generate-001": {"per_second": 0.20},
    "veo-3.0-fast-generate-001": {"per_second": 0.10},
    "veo-3.1-generate-001": {"per_second": 0.20},
    "veo-3.1-fast-generate-001": {"per_second": 0.10},
}


def estimated_cost(
    model: str, usage: Mapping[str, float], prices: Mapping[str, Mapping[str, float]] | None = None
) -> float | None:
    """USD estimate for ``usage`` ({input_tokens, output_tokens} and/or {video_seconds} or the
    trace's {clip_seconds}); None when the model has no price (local server, unknown model)."""
    table = {**PRICES, **(prices or {})}
    price = table.get(model)
    if price is None:  # "gemini-2.5-pro-preview-06-05" is priced like "gemini-2.5-pro"
        stems = [name for name in table if model.startswith(name)]
        price = table[max(stems, key=len)] if stems else None
    if price is None:
        return None
    tokens = usage.get("input_tokens", 0) * price.get("input_per_mtok", 0.0)
    tokens += usage.get("output_tokens", 0) * price.get("output_per_mtok", 0.0)
    seconds = usage.get("video_seconds", usage.get("clip_seconds", 0.0))
    return round(tokens / 1e6 + seconds * price.get("per_second", 0.0), 6)


# ----------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class Policy:
    """How one backend calls its API. Every field is an option of the same name."""

    max_retries: int = 4  # retries after the first try, per request
    deadline_s: float = 300.0  # total time for one role call / one generation, retries included
    timeout_s: float = 120.0  # one HTTP request
    backoff_s: float = 1.0  # first backoff; doubles per retry, with jitter
    backoff_max_s: float = 30.0
    concurrency: int = 4  # calls in flight at once, across all episodes sharing the backend

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> Policy:
        values = {**defaults, **{f.name: options[f.name] for f in fields(cls) if f.name in options}}
        try:
            policy = cls(**{k: type(getattr(cls, k))(v) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise BadInput(f"bad backend call option: {exc}") from None
        if policy.max_retries < 0 or policy.concurrency < 1 or min(policy.deadline_s, policy.timeout_s) <= 0:
            raise BadInput("max_retries must be >= 0, concurrency >= 1, deadline_s and timeout_s > 0")
        return policy


def check_options(options: Mapping[str, Any], known: set[str], backend: str) -> None:
    """Fail early on a misspelt option, naming the ones the backend accepts."""
    unknown = sorted(set(options) - known - {f.name for f in fields(Policy)} - {"prices"})
    if unknown:
        accepted = sorted(known | {f.name for f in fields(Policy)} | {"prices"})
        raise BadInput(f"unknown option(s) for {backend}: {', '.join(unknown)}; accepted: {', '.join(accepted)}")


@dataclass
class Failure:
    """A backend's reading of one exception: retry it or not, and after how long at least."""

    error: BackendError
    retry: bool = False
    retry_after: float | None = None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``; None if absent."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        value = lower.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Caller:
    """Retries, deadline and concurrency for one backend instance (shared by every episode).

    ``slots`` bounds the calls in flight; ``call`` retries one request on transient failures
    with exponential backoff and jitter (at least ``Retry-After``), within the attempt limit and
    what is left of the call's deadline, then raises a typed error.
    """

    def __init__(self, name: str, policy: Policy, classify: Callable[[BaseException], Failure]) -> None:
        self.name = name
        self.policy = policy
        self.classify = classify
        self.slots = threading.BoundedSemaphore(policy.concurrency)
        self._random = random.Random()

    def deadline(self) -> float:
        """The monotonic time by which one role call must be done."""
        return time.monotonic() + self.policy.deadline_s

    def timeout(self, deadline: float) -> float:
        """The per-request timeout: the option, cut to what is left of the deadline."""
        return max(0.05, min(self.policy.timeout_s, deadline - time.monotonic()))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the ``concurrency`` slots, held for the block; waiting for it never blocks an event loop."""
        if inline():
            self.slots.acquire()
        elif not self.slots.acquire(blocking=False):
            await asyncio.to_thread(self.slots.acquire)
        try:
            yield
        finally:
            self.slots.release()

    def call(self, what: str, fn: Callable[[], T], deadline: float) -> T:
        """:meth:`attempt` of a sync request, for sync callers."""
        return run_inline(self.attempt(what, lambda: either(fn), deadline))

    async def attempt(self, what: str, send: Callable[[], Awaitable[T]], deadline: float) -> T:
        """Send (``send()`` makes the request afresh each try), retrying transient failures."""
        tries = 0
        while True:
            tries += 1
            try:
                return await send()
            except BackendError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below; unknown errors are not retried
                failure = self.classify(exc)
            if not failure.retry:
                raise failure.error from None
            left = deadline - time.monotonic()
            wait = self.policy.backoff_s * 2 ** (tries - 1)
            wait = min(self.policy.backoff_max_s, wait) * (0.5 + 0.5 * self._random.random())
            wait = max(wait, failure.retry_after or 0.0)
            if tries > self.policy.max_retries or wait >= left:
                why = "attempts" if tries > self.policy.max_retries else "deadline"
                raise TransientError(
                    f"{self.name} {what}: gave up after {tries} tries ({why} exhausted): {failure.error}"
                ) from None
            await sleep(wait)


class PerLoop:
    """One async client per event loop, made on first use there: an SDK's async client pools its
    connections on the loop that made them, and a backend is shared by every loop of the process
    (``asyncio.run`` twice, a server's isolated loops). Made in a worker thread: setting a client
    up may read credentials from disk."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
        if client is None:
            client = await asyncio.to_thread(self._make)
            with self._lock:
                client = self._clients.setdefault(loop, client)
        return client

    async def call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """``await fn(client)`` with this loop's client."""
        return await fn(await self.get())


def safe_message(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line with secrets removed."""
    return redact(f"{type(exc).__name__}: {exc}".replace("\n", " "))[:limit]


# ----------------------------------------------------------------------------- structured output
def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every ``$ref`` replaced by its definition and titles dropped: some structured-output
    APIs take no ``$defs``."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k not in ("title", "$defs")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _strict_objects(node: Any) -> Any:
    """Nested objects in OpenAI's strict form: every property required, nothing extra, no defaults."""
    if isinstance(node, dict):
        node = {k: _strict_objects(v) for k, v in node.items() if k != "default"}
        if node.get("type") == "object" and "properties" in node:
            node["required"] = list(node["properties"])
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict_objects(v) for v in node]
    return node


def response_schema(record: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a record as the model should answer it: no ``usage``, no titles."""
    raw = record.model_json_schema(mode="serialization")
    schema = _inline(raw, raw.get("$defs", {}))
    schema.pop("title", None)
    schema["properties"] = {k: {kk: vv for kk, vv in v.items() if kk != "title"} for k, v in schema["properties"].items()}
    schema["properties"].pop("usage", None)
    schema["required"] = [k for k in schema.get("required", []) if k != "usage"]
    return schema


def strict_schema(record: type[BaseModel]) -> dict[str, Any]:
    """The schema in OpenAI's strict form: every property required, nothing extra, no defaults."""
    schema = response_schema(record)
    schema["properties"] = {k: _strict_objects({kk: vv for kk, vv in v.items() if kk != "default"})
                            for k, v in schema["properties"].items()}
    schema["required"] = list(schema["properties"])
    schema["additionalProperties"] = False
    return schema


def parse_record(text: str | None, record: type[R]) -> R:
    """Validate a JSON answer (tolerating a ```json fence); raises ValueError/ValidationError."""
    text = (text or "").strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if not text:
        raise ValueError("empty answer")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    data.pop("usage", None)
    return record.model_validate(data)


# The re-ask turn quotes at most this much of the rejected answer and of the reason it was rejected.
REASK_ANSWER_CHARS = 4000
REASK_DETAIL_CHARS = 800


def reask_note(error: BaseException, record: type[BaseModel]) -> str:
    """The follow-up that quotes why the last answer was rejected."""
    detail = str(error) if isinstance(error, ValidationError) else f"{type(error).__name__}: {error}"
    return (
        "Your previous answer could not be used: " + detail[:REASK_DETAIL_CHARS] + "\nAnswer again with only a JSON "
        f"object that matches this schema:\n{json.dumps(response_schema(record))}"
    )


def reask_chars(record: type[BaseModel]) -> int:
    """The most characters the re-ask turn adds to a request for ``record``: the quoted answer and
    the note. Backends with a request size limit reserve room for it before the first ask."""
    return REASK_ANSWER_CHARS + len(reask_note(ValueError("x" * REASK_DETAIL_CHARS), record))


def ask_validated(
    ask: Callable[[tuple[str, str] | None], tuple[str | None, Usage]], record: type[R], what: str
) -> R:
    """:func:`aask_validated` for a sync ``ask``."""
    return run_inline(aask_validated(lambda retry: either(lambda: ask(retry)), record, what))


async def aask_validated(
    ask: Callable[[tuple[str, str] | None], Awaitable[tuple[str | None, Usage]]], record: type[R], what: str
) -> R:
    """Ask, validate the answer against ``record``, re-ask once quoting the error, then fail typed.

    ``ask(retry)`` sends the request and returns the answer text and its token usage; on the
    re-ask ``retry`` is (the rejected answer, a note saying why) to append as a follow-up turn.
    Usage of both asks is summed on the returned record.
    """
    total = Usage()
    retry: tuple[str, str] | None = None
    error: BaseException | None = None
    for _ in range(2):
        text, usage = await ask(retry)
        total = Usage(input_tokens=total.input_tokens + usage.input_tokens, output_tokens=total.output_tokens + usage.output_tokens)
        try:
            result = parse_record(text, record)
        except (ValueError, ValidationError) as exc:
            error, retry = exc, ((text or "")[:REASK_ANSWER_CHARS], reask_note(exc, record))
            continue
        result.usage = total
        return result
    raise InvalidOutput(f"{what}: the answer did not validate as {record.__name__} after a re-ask: {safe_message(error)}")


# ----------------------------------------------------------------------------- prompts and media
def sample_indices(total: int, count: int) -> list[int]:
    """Indices of ``count`` frames spread evenly over ``total``, first and last included."""
    return [int(i) for i in np.unique(np.linspace(0, total - 1, max(1, min(count, total))).round().astype(int))]


def sample_frames(video: Video, count: int) -> list[Image]:
    """``count`` frames spread evenly over the clip, first and last included, decoded in one pass
    that keeps only them (a request is built from the frames it sends, never from the whole clip)."""
    return video.frames_at(sample_indices(video.num_frames, count))


def history_text(request: PlanRequest) -> str:
    if not request.history:
        return "none"
    return "\n".join(f"{i}. {s.instruction} (reached: {s.target_state})" for i, s in enumerate(request.history, 1))


def split_note(request: PlanRequest) -> str:
    if request.upfront:
        return (
            f"\nPlan every step now, before any video exists: write the instruction as {request.max_steps} lines, "
            '"Step 1: ...", "Step 2: ...", one action per step, which together finish the task.\n'
        )
    if not request.split_from:
        return ""
    return (
        f'\nThe last action, "{request.split_from}", proved too large to carry out in one clip. '
        "Plan a smaller action: only the first part of it.\n"
    )


def prompt_for(request: Any) -> str:
    """The rendered role prompt for a request."""
    if isinstance(request, PlanRequest):
        return prompts.render(
            "plan", task=request.task, seconds=f"{request.seconds:g}", step=request.step, max_steps=request.max_steps,
            history=history_text(request), split_note=split_note(request),
        )
    if isinstance(request, VerifyRequest):
        return prompts.render("verify", task=request.task, instruction=request.instruction, target_state=request.target_state)
    if isinstance(request, SelectRequest):
        return prompts.render("select", task=request.task, count=len(request.candidates))
    if isinstance(request, JudgeRequest) and request.rubric:
        return prompts.render("rubric", task=request.task, rubric=request.rubric)
    if isinstance(request, JudgeRequest):
        return prompts.render("judge", task=request.task)
    if isinstance(request, CritiqueRequest):
        return prompts.render("critique", task=request.task, prompt=request.prompt)
    raise TypeError(f"no prompt for {type(request).__name__}")


@dataclass
class Tally:
    """Running usage totals of one backend instance, for cost reports across episodes."""

    input_tokens: int = 0
    output_tokens: int = 0
    video_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, input_tokens: int = 0, output_tokens: int = 0, video_seconds: float = 0.0) -> None:
        with self._lock:
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.video_seconds += video_seconds

    def as_dict(self) -> dict[str, float]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "video_seconds": self.video_seconds}


class Roles:
    """The five VLM roles, each one prompt plus its media through ``_role(role, request, record,
    media)``, where media is a list of captions (str) and Image/Video parts in order. API and local
    VLMs share it, so every backend shows each role the same media in the same order."""

    name: str

    def _role(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        raise NotImplementedError

    def media_of(self, role: str, request: Any) -> tuple[type, list[Any]]:
        """(the record a role answers with, the media it is shown in order)."""
        if role == "plan":
            return Plan, ["Current frame:", request.frame]
        if role == "verify":
            return Verdict, ["Start frame:", request.start_frame, "Clip:", request.clip]
        if role == "select":
            media: list[Any] = []
            for i, clip in enumerate(request.candidates):
                media += [f"Candidate {i}:", clip]
            return Selection, media
        if role == "judge" and request.rubric:
            media = ["Input image (first frame):", request.first_frame]
            for caption, image in request.references:
                media += [f"{caption}:", image]
            media += ["Generated video:", request.video, "Final frame of the generated video:", request.video.last_frame()]
            return RubricJudgement, media
        if role == "judge":
            return Judgement, ["First frame:", request.first_frame, "Video:", request.video]
        if role == "critique":
            return Critique, ["Video:", request.video]
        raise ValueError(f"no VLM role {role!r}")

    def checked(self, role: str, request: Any, answer: Any) -> Any:
        """The answer, once what the schema cannot check holds (a selection names a candidate)."""
        if role == "select" and answer.index >= len(request.candidates):
            raise InvalidOutput(f"{self.name} select: index {answer.index} out of {len(request.candidates)} candidates")
        return answer

    def _answer(self, role: str, request: Any) -> Any:
        return self.checked(role, request, self._role(role, request, *self.media_of(role, request)))

    def plan(self, request: PlanRequest) -> Plan:
        return self._answer("plan", request)

    def verify(self, request: VerifyRequest) -> Verdict:
        return self._answer("verify", request)

    def select(self, request: SelectRequest) -> Selection:
        return self._answer("select", request)

    def judge(self, request: JudgeRequest) -> Judgement | RubricJudgement:
        return self._answer("judge", request)

    def critique(self, request: CritiqueRequest) -> Critique:
        return self._answer("critique", request)


class RoleVLM(Roles):
    """The five VLM roles of an API backend (see :class:`Roles`).

    ``__init__`` does what every API VLM's setup shares (option check, call policy, common options);
    subclasses call it, then build their client, and implement ``_role``.
    """

    def __init__(self, provider: str, model: str, options: Mapping[str, Any], known: set[str],
                 classify: Callable[[BaseException], Failure]) -> None:
        self.model = model
        self.name = f"{provider}:{model}"
        check_options(options, known, self.name)
        self.policy = Policy.from_options(options)
        self.caller = Caller(self.name, self.policy, classify)
        self.temperature = options.get("temperature")
        self.max_output_tokens = options.get("max_output_tokens")
        self.frames_per_clip = int(options.get("frames_per_clip", 8))
        self.prices = options.get("prices")
        self.tally = Tally()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r})"

    def estimated_cost(self, usage: dict[str, float]) -> float | None:
        """USD for token counts (a trace's ``compute`` or ``self.tally.as_dict()``); None off the table."""
        return estimated_cost(self.model, usage, self.prices)

    async def _arole(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        """One role call, its requests ``either(sync client, async client)``: what subclasses implement."""
        raise NotImplementedError

    def _role(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        return run_inline(self._arole(role, request, record, media))

    async def acall(self, role: str, request: Any) -> Any:
        """One role (``"plan"``, ``"verify"``...) on the SDK's async client: nothing blocks the event loop."""
        return self.checked(role, request, await self._arole(role, request, *self.media_of(role, request)))
