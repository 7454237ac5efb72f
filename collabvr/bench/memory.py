"""Memory before it runs out: a benchmark's peak per episode, estimated before the first episode, and
the concurrency that fits in the memory available.

An episode's memory is its clips in flight. The VGM's frames are held once, while they are encoded
(an array backend: the sim, ``still``, ``groundtruth``, diffusers pipelines, at the task's frame size)
and every reader decodes only the frames it needs, so an episode holds at most about
:data:`COPIES` copies of its longest clip (``benchmarks/memory.py`` measures it). The estimate is that
many copies of the longest clip its method asks for at the suite's frame size, times the clips it
generates at once (pass@k's candidates). A bench whose ``--concurrency`` times the estimate exceeds the
memory available runs fewer episodes at once, saying so in one line, or refuses under ``--strict-memory``.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from collabvr.bench.config import BenchConfig
from collabvr.bench.episode import jobs_of, task_of
from collabvr.context import Context, make_context
from collabvr.errors import BadInput
from collabvr.graph import parse_method
from collabvr.graph.prompt_opt import PER_ROUND
from collabvr.nodes.baseline import horizon
from collabvr.task import Task

COPIES = 2  # clip copies one episode holds at its peak (issue 23's bar, measured by benchmarks/memory.py)
GB = 1e9


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The estimate, what is available, and the concurrency that fits (JSON-ready via :meth:`public`)."""

    per_episode: int  # bytes one episode may hold at its peak
    width: int
    height: int
    clip_frames: int  # frames of the longest clip
    clips_at_once: int  # clips one episode generates at once
    available: int | None  # bytes available to this process now; None when the platform does not say
    requested: int  # --concurrency
    concurrency: int  # episodes at once that fit (never below 1)
    checked: bool  # False when episodes run elsewhere (Ray): nothing was lowered

    def public(self) -> dict[str, Any]:
        return {"estimate_per_episode_bytes": self.per_episode, "frame": [self.width, self.height],
                "clip_frames": self.clip_frames, "clips_at_once": self.clips_at_once, "copies": COPIES,
                "available_bytes": self.available, "concurrency_requested": self.requested,
                "concurrency": self.concurrency, "checked": self.checked}

    def warning(self) -> str | None:
        """One line when the requested concurrency does not fit; None when it does."""
        if self.concurrency >= self.requested and not self.too_big:
            return None
        return (f"memory: {self.requested} episode(s) at once need about {self._need(self.requested)}, "
                f"{self._have()} is available; running {self.concurrency} at once (--strict-memory refuses instead)"
                + ("; even one may not fit" if self.too_big else ""))

    def refusal(self) -> str:
        """The one-line error of ``--strict-memory``."""
        fix = (f"lower --concurrency to {self.concurrency}" if not self.too_big
               else "use shorter clips (--first-seconds, --seconds) or a machine with more memory")
        return (f"--strict-memory: {self.requested} episode(s) at once need about {self._need(self.requested)}, "
                f"only {self._have()} is available; {fix}")

    @property
    def too_big(self) -> bool:
        return self.available is not None and self.per_episode > self.available

    def _need(self, episodes: int) -> str:
        return (f"{_size(episodes * self.per_episode)} ({_size(self.per_episode)} each: {self.clips_at_once} "
                f"clip(s) of {self.clip_frames} frames at {self.width}x{self.height}, x{COPIES})")

    def _have(self) -> str:
        return _size(self.available or 0)


def _size(nbytes: int) -> str:
    return f"{nbytes / GB:.1f} GB" if nbytes >= GB else f"{nbytes / 1e6:.0f} MB"


def longest_clip(method: str, ctx: Context) -> tuple[float, int]:
    """(seconds of the longest clip, clips generated at once) of one episode of ``method``: a step's
    clip for the stepwise methods, the whole horizon for the others, with pass@k's ``k`` and
    prompt optimisation's candidates per round fanned out at once."""
    name, overrides = parse_method(method)
    ctx = make_context(ctx, **overrides)
    if name in ("collabvr", "upfront_plan"):
        return max(ctx.first_clip_seconds, ctx.clip_seconds), 1
    return horizon(ctx), {"pass_at_k": ctx.k, "prompt_opt": PER_ROUND}.get(name, 1)


def frame_size(task: Task) -> tuple[int, int]:
    """(width, height) of a task's frames, from the image's header (no decode) where it has a file."""
    if task.is_sim:
        return task.size, task.size
    if task.image_path and Path(task.image_path).is_file():
        with PILImage.open(task.image_path) as image:
            width, height = image.size
        return width - width % 2, height - height % 2
    image = task.first_image()
    return image.width, image.height


def plan(config: BenchConfig, ctx: Context, *, available: int | None = None) -> MemoryPlan:
    """The estimate for ``config``'s episodes (the largest frame of its samples, the longest clip of
    its methods) and the concurrency that fits in ``available`` bytes (default: :func:`available_bytes`)."""
    if config.suite_of().kind == "sim":
        width = height = config.size
    else:  # samples may differ in size: the largest counts (a header read each)
        samples = {job.row: job for job in jobs_of(config)}
        width, height = max((frame_size(task_of(config, job)) for job in samples.values()), key=lambda s: s[0] * s[1])
    clips = [(max(2, round(seconds * ctx.fps)), n) for seconds, n in (longest_clip(m, ctx) for m in config.methods)]
    frames, at_once = max(clips, key=lambda clip: clip[0] * clip[1])  # the method that holds the most
    per_episode = COPIES * at_once * frames * width * height * 3
    checked = config.executor != "ray"
    available = available_bytes() if available is None and checked else available
    fits = config.concurrency
    if checked and available is not None:
        fits = max(1, min(config.concurrency, available // per_episode))
    return MemoryPlan(per_episode, width, height, frames, at_once, available, config.concurrency, fits, checked)


def guard(config: BenchConfig, memory: MemoryPlan) -> str | None:
    """Apply the plan: lower ``config.concurrency`` to what fits and return the one-line warning, or
    raise BadInput under ``config.strict_memory``. None when everything fits."""
    message = memory.warning() if memory.checked else None
    if message is None:
        return None
    if config.strict_memory:
        raise BadInput(memory.refusal())
    config.concurrency = memory.concurrency
    return message


def available_bytes() -> int | None:
    """Memory this process can still use: the kernel's MemAvailable, capped by the cgroup's limit
    less its usage (containers); None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = Path(limit).read_text().strip()
            if cap != "max" and int(cap) < 2**60:
                found.append(max(0, int(cap) - int(Path(usage).read_text().strip())))
                break
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (everything it ran, not just the bench)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB
