"""One body of code for both of LangGraph's drivers: ``invoke`` (threads) and ``ainvoke`` (an event loop).

Nodes and API backends are written once, as coroutines, and every point where they wait is one of
the two awaitables made here:

* :func:`offload` ``(fn, *args)``: blocking work (file I/O, decoding, a backend without an async
  method): ``asyncio.to_thread`` under an event loop, a plain call otherwise;
* :func:`either` ``(sync, native)``: work with an async form of its own (an SDK's async client,
  ``asyncio.sleep``): ``await native()`` under an event loop, ``sync()`` otherwise.

:func:`run_inline` drives such a coroutine without an event loop: each awaitable resolves at once
by calling its sync form, so the coroutine finishes on its first step, in the calling thread. That
is how ``graph.invoke``, the CLI and the bench run the same nodes that ``ainvoke`` and the Agent
Server await, without holding a thread per call in flight under asyncio, and without a second copy
of every node (an event loop per sync call would not do: SDK async clients are bound to one loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

_inline: contextvars.ContextVar[bool] = contextvars.ContextVar("collabvr_inline", default=False)


class _Either(Awaitable[T]):
    __slots__ = ("native", "sync")

    def __init__(self, sync: Callable[[], T], native: Callable[[], Awaitable[T]] | None) -> None:
        self.sync, self.native = sync, native

    def __await__(self) -> Generator[Any, None, T]:
        if _inline.get():
            return self.sync()
        if self.native is None:
            return (yield from asyncio.to_thread(self.sync).__await__())
        return (yield from self.native().__await__())


def either(sync: Callable[[], T], native: Callable[[], Awaitable[T]] | None = None) -> Awaitable[T]:
    """``sync()`` when driven inline; ``await native()`` under an event loop (``sync`` in a worker
    thread when there is no ``native``)."""
    return _Either(sync, native)


def offload(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]:
    """``fn(*args, **kwargs)``: in a worker thread under an event loop, so it never blocks the loop."""
    return _Either(lambda: fn(*args, **kwargs), None)


def sleep(seconds: float) -> Awaitable[None]:
    """``time.sleep`` inline, ``asyncio.sleep`` under an event loop."""
    return _Either(lambda: time.sleep(seconds), lambda: asyncio.sleep(seconds))


def inline() -> bool:
    """Whether the code running now is driven by :func:`run_inline` (no event loop to await on)."""
    return _inline.get()


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end in this thread, each :func:`either` and :func:`offload` by its sync form.

    RuntimeError if the coroutine awaits anything else that suspends (an ``asyncio.sleep`` of its
    own, a future): that is a bug in the coroutine, which must wait only through this module."""
    token = _inline.set(True)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    finally:
        _inline.reset(token)
    coro.close()
    raise RuntimeError(f"{coro.__qualname__} awaited something other than collabvr.aio's either/offload; "
                       "it cannot run without an event loop")
