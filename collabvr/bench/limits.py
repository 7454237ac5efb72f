"""Per-backend concurrency limits: every backend of a provider behind one semaphore per (role, spec).

The local runner holds threading semaphores; the Ray executor holds cluster-wide ones (a slot actor
per backend, :mod:`collabvr.bench.ray_executor`). Either way a backend's public methods each hold
their semaphore while they run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from collabvr.backends import registry
from collabvr.backends.base import Around

# (role, "provider:model") -> a context manager held around each call
Hold = Callable[[str, str], Callable[[], AbstractContextManager[Any]]]


def threads(limit: int) -> tuple[Hold, dict[tuple[str, str], threading.Semaphore]]:
    """Semaphores of ``limit`` concurrent calls in this process, made on first use, and the dict of them."""
    semaphores: dict[tuple[str, str], threading.Semaphore] = {}
    lock = threading.Lock()

    def hold(role: str, spec: str) -> Callable[[], AbstractContextManager[Any]]:
        with lock:
            sem = semaphores.setdefault((role, spec), threading.BoundedSemaphore(limit))
        return lambda: sem

    return hold, semaphores


def backend_limits(providers: list[str], hold: Hold) -> AbstractContextManager[None]:
    """Within the block, every backend these providers build runs each call inside ``hold(role, spec)()``.
    The providers' factories are restored after."""
    return registry.overriding({provider: _limited(provider, registry.factory(provider), hold)
                                for provider in dict.fromkeys(providers)})


def _limited(provider: str, make: registry.Factory, hold: Hold) -> registry.Factory:
    def limited(role: str, model: str, options: dict[str, Any]) -> Any:
        backend = make(role, model, options)  # type: ignore[arg-type]
        return None if backend is None else Around(backend, hold(role, f"{provider}:{model}"))

    return limited
