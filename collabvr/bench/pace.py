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


def stopping_line(in_flight: int) -> str:
    """What Ctrl-C does to a running benchmark, said at once (the episodes in flight take up to one
    model call each to stop)."""
    if not in_flight:
        return "stopping: no episode starts"
    return (f"stopping: no episode starts, and the {counted(in_flight, 'episode')} in flight stop after the model "
            f"call each is making (their checkpoints keep what they did)")


class Pace:
    """Times the episodes this invocation runs and says how long the rest will take: once the first
    wave (``concurrency`` episodes, or all that are left) has finished, and again whenever the pace of
    the latest tenth of the run moves the estimate by more than a quarter (methods differ in speed,
    and the first wave holds the first method's episodes only)."""

    def __init__(self, concurrency: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.concurrency, self.clock = concurrency, clock
        self.start(0, 0)

    def start(self, total: int, done: int) -> None:
        self.left, self.finished_now = total - done, 0
        self.mark = (self.clock(), 0)  # when the current window of episodes began, and how many had finished then
        self.finish: float | None = None  # when the last estimate said the run would end

    def finished(self) -> str | None:
        self.finished_now += 1
        left = self.left - self.finished_now
        since, before = self.mark
        window = self.finished_now - before
        first = self.finish is None
        if left <= 0 or window < (min(self.concurrency, self.left) if first else max(self.concurrency, self.left // 10)):
            return None
        now = self.clock()
        elapsed = max(now - since, 1e-9)
        remaining = left * elapsed / window
        self.mark = (now, self.finished_now)
        if not first and abs(remaining - (self.finish - now)) <= 0.25 * max(remaining, self.finish - now):
            return None
        self.finish = now + remaining
        return (f"pace: {counted(window, 'episode')} in {_duration(elapsed)}; about {_duration(remaining)} "
                f"for the {left:,} left at this rate")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
