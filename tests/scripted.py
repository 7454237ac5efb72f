"""Scripted backends: they answer from a queue and record every call, for driving each edge."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collabvr.backends import registry
from collabvr.media import Image, Video
from collabvr.records import Critique, Plan, Selection, Verdict

SIZE = 64


def plan(instruction: str = "do the next thing", *, complete: bool = False) -> Plan:
    return Plan(observation="seen", instruction=instruction, target_state="done", task_complete=complete)


def verdict(accept: bool, *, good: float = 0.0, too_large: bool = False, suggestion: str = "", remaining: str = "") -> Verdict:
    return Verdict(accept=accept, reason="scripted", good_fraction=1.0 if accept else good,
                   suggestion=suggestion, remaining=remaining, action_too_large=too_large)


def selection(index: int) -> Selection:
    return Selection(index=index, reason="scripted")


def critique(solved: bool = False, revised: str = "do it better") -> Critique:
    return Critique(solved=solved, critique="scripted", revised_prompt=revised)


def shade(call: int, t: int) -> int:
    """The grey level of frame t of the clip made by generate call number `call`."""
    return (60 * call + 4 * t) % 250


@dataclass
class ScriptedVLM:
    plans: deque = field(default_factory=deque)
    verdicts: deque = field(default_factory=deque)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    selections: deque = field(default_factory=deque)
    critiques: deque = field(default_factory=deque)

    def _next(self, queue: deque) -> Any:
        item = queue.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    def plan(self, request):
        self.calls.append(("plan", request))
        return self._next(self.plans)

    def verify(self, request):
        self.calls.append(("verify", request))
        return self._next(self.verdicts)

    def select(self, request):
        self.calls.append(("select", request))
        return self._next(self.selections)

    def judge(self, request):
        raise NotImplementedError

    def critique(self, request):
        self.calls.append(("critique", request))
        return self._next(self.critiques)


@dataclass
class ScriptedVGM:
    failures: deque = field(default_factory=deque)  # exceptions to raise, None for a normal clip
    calls: list[dict[str, Any]] = field(default_factory=list)

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        call = len(self.calls)
        self.calls.append({"frame": frame, "prompt": prompt, "seconds": seconds, "fps": fps, "seed": seed})
        failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            raise failure
        n = max(2, round(seconds * fps))
        frames = np.stack([np.full((SIZE, SIZE, 3), shade(call, t), np.uint8) for t in range(n)])
        return Video(frames=frames, fps=fps)


def install(vlm: ScriptedVLM, vgm: ScriptedVGM, provider: str = "script") -> None:
    registry.register(provider, lambda role, model, options: vlm if role == "vlm" else vgm)
