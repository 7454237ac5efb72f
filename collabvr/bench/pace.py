"""A benchmark's plan and pace, for the person waiting on it: how many episodes it names, before any
work (a huge ``--n`` is counted, not listed, so the line comes at once), and how long the rest will
take, once the first episodes have finished."""

from __future__ import annotations

import time
from collections.abc import Callable

from collabvr.bench.config import BenchConfig, counted


def plan_line(config: BenchConfig) -> str:
    """The benchmark at a glance, before any work."""
    total, made_of = config.episodes()
    return (f"plan: {counted(total, 'episode')} ({made_of}; {', '.join(config.ordered_methods())}), "
            f"{config.concurrency} at once; a time estimate follows the first episodes")


class Pace:
    """Times the episodes this invocation runs; :meth:`finished` gives the estimate line once, when
    the first wave (``concurrency`` episodes, or all that are left) has finished."""

    def __init__(self, concurrency: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.concurrency, self.clock = concurrency, clock
        self.left = self.finished_now = 0
        self.started = clock()
        self.told = False

    def start(self, total: int, done: int) -> None:
        self.left, self.finished_now, self.started, self.told = total - done, 0, self.clock(), False

    def finished(self) -> str | None:
        self.finished_now += 1
        if self.told or self.finished_now < min(self.concurrency, self.left):
            return None
        self.told = True
        elapsed = max(self.clock() - self.started, 1e-9)
        left = self.left - self.finished_now
        if left <= 0:
            return None
        return (f"pace: {counted(self.finished_now, 'episode')} in {_duration(elapsed)}; about "
                f"{_duration(left * elapsed / self.finished_now)} for the {left:,} left at this rate")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
