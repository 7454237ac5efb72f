"""The two backend protocols.

A VLM offers four roles (plan, verify, select, judge) plus ``critique`` for the critique-based
baselines; a VGM offers ``generate``. Backends receive decoded media and return pydantic records
or :class:`~collabvr.media.Video`; they raise :class:`~collabvr.errors.BackendError` subclasses on
failure. Nodes never trust a backend to say "accept" by accident: any exception is a failed attempt.

A backend may also offer the async forms ``acall(role, request)`` (VLM) and ``agenerate(...)``
(VGM): the API backends await their SDKs' async clients there, the local ones run the model in a
worker thread behind the device lock. Nodes reach a backend through :func:`vlm_call` and
:func:`vgm_call`, which await the async form under an event loop (a backend without one runs in a
worker thread) and call the sync form otherwise (see :mod:`collabvr.aio`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from collabvr.aio import either
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


def vlm_call(backend: Any, role: str, request: Any) -> Awaitable[Any]:
    """One VLM role call: ``await backend.acall(role, request)`` under an event loop (the sync role in
    a worker thread for a backend without it), the sync role when driven inline."""
    native = getattr(backend, "acall", None)
    return either(lambda: getattr(backend, role)(request),
                  (lambda: native(role, request)) if inspect.iscoroutinefunction(native) else None)


def vgm_call(backend: Any, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Awaitable[Video]:
    """One generation: ``await backend.agenerate(...)`` under an event loop (``generate`` in a worker
    thread for a backend without it), ``generate`` when driven inline."""
    kwargs = {"seconds": seconds, "fps": fps, "seed": seed}
    native = getattr(backend, "agenerate", None)
    return either(lambda: backend.generate(frame, prompt, **kwargs),
                  (lambda: native(frame, prompt, **kwargs)) if inspect.iscoroutinefunction(native) else None)


Hold = Callable[[], AbstractContextManager[Any]]
AsyncHold = Callable[[], AbstractAsyncContextManager[Any]]


class Around:
    """A backend whose public methods each run inside ``hold()`` (a context manager made per call):
    a semaphore (the bench's per-backend limits), a sleep (the sim's injected latency)...

    Its async methods (``acall``, ``agenerate``) run inside ``ahold()`` when given, else inside
    ``hold()`` entered in a worker thread (a semaphore's wait never blocks the event loop). With
    ``ahold``, a backend that has only the sync forms gets async ones too: the wait is awaited and
    the call runs in a worker thread (the sim's latency is an ``asyncio.sleep``).
    """

    def __init__(self, backend: Any, hold: Hold, ahold: AsyncHold | None = None) -> None:
        self._backend, self._hold, self._ahold = backend, hold, ahold

    def __getattr__(self, name: str) -> Any:
        if name in _ASYNC and self._ahold is not None and not hasattr(self._backend, name):
            return self._threaded(name)
        attr = getattr(self._backend, name)
        if name.startswith("_") or not callable(attr):
            return attr
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                async with self._entered():
                    return await attr(*args, **kwargs)

            return acall

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._hold():
                return attr(*args, **kwargs)

        return call

    def _entered(self) -> AbstractAsyncContextManager[Any]:
        return self._ahold() if self._ahold is not None else _in_thread(self._hold())

    def _threaded(self, name: str) -> Callable[..., Awaitable[Any]]:
        """``acall``/``agenerate`` for a backend with only the sync forms: awaited hold, call in a thread."""
        backend = self._backend

        async def threaded(*args: Any, **kwargs: Any) -> Any:
            sync = getattr(backend, args[0]) if name == "acall" else backend.generate
            rest = args[1:] if name == "acall" else args
            async with self._ahold():  # type: ignore[misc]
                return await asyncio.to_thread(sync, *rest, **kwargs)

        return threaded


_ASYNC = ("acall", "agenerate")


@asynccontextmanager
async def _in_thread(hold: AbstractContextManager[Any]) -> Any:
    """A sync context manager entered in a worker thread (its wait may block), left in the loop."""
    value = await asyncio.to_thread(hold.__enter__)
    try:
        yield value
    except BaseException as exc:
        if not hold.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        hold.__exit__(None, None, None)
