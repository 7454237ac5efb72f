"""The two backend protocols.

A VLM offers four roles (plan, verify, select, judge) plus ``critique`` for the critique-based
baselines; a VGM offers ``generate``. Backends receive decoded media and return pydantic records
or :class:`~collabvr.media.Video`; they raise :class:`~collabvr.errors.BackendError` subclasses on
failure. Nodes never trust a backend to say "accept" by accident: any exception is a failed attempt.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from collabvr.media import Image, Video
from collabvr.records import (
    Critique,
    CritiqueRequest,
    Judgement,
    JudgeRequest,
    Plan,
    PlanRequest,
    Selection,
    SelectRequest,
    Verdict,
    VerifyRequest,
)


@runtime_checkable
class VLM(Protocol):
    """A vision-language model in the four CollabVR roles."""

    def plan(self, request: PlanRequest) -> Plan: ...

    def verify(self, request: VerifyRequest) -> Verdict: ...

    def select(self, request: SelectRequest) -> Selection: ...

    def judge(self, request: JudgeRequest) -> Judgement: ...

    def critique(self, request: CritiqueRequest) -> Critique: ...


@runtime_checkable
class VGM(Protocol):
    """An image-to-video generator: one short clip from a conditioning frame and a prompt.

    The returned clip starts at (a rendering of) ``frame``. Its actual length may differ from
    ``seconds`` when the model only allows certain durations; callers record what came back.
    """

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video: ...


class Around:
    """A backend whose public methods each run inside ``hold()`` (a context manager made per call):
    a semaphore (the bench's per-backend limits), a sleep (the sim's injected latency)..."""

    def __init__(self, backend: Any, hold: Callable[[], AbstractContextManager[Any]]) -> None:
        self._backend, self._hold = backend, hold

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._hold():
                return attr(*args, **kwargs)

        return call
