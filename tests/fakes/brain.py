"""The fake VLM's mind: which role a request is for, and a scriptable honest answer per role.

Both fake servers decode what the SDK sent (images and clips) and ask a :class:`Brain` for the
answer as a dict. The default brain plans ``steps`` moves, accepts every clip, picks candidate 0
and scores 1.0; tests replace ``answer`` or queue raw replies on the server instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collabvr.media import Image, Video

ROLE_MARKERS = {
    "rubric": "You are judging a generated video against a scoring rubric",
    "plan": "You are the planner",
    "verify": "You are the verifier",
    "select": "You are choosing the best",
    "judge": "You are judging",
    "critique": "You are reviewing a whole generated video",
}


def role_of(text: str) -> str:
    for role, marker in ROLE_MARKERS.items():
        if marker in text:
            return role
    return "unknown"


def step_of(text: str) -> int:
    found = re.search(r"This is step (\d+) of at most (\d+)", text)
    return int(found.group(1)) if found else 1


def colour_clip(colour: tuple[int, int, int], *, frames: int = 8, size: int = 32, fps: float = 8.0) -> Video:
    """A real small MP4: a plain clip of one colour (the fakes' 'good' green / 'bad' red)."""
    array = np.zeros((frames, size, size, 3), np.uint8)
    array[...] = colour
    for t in range(frames):  # a moving stripe, so frames differ
        array[t, :, (t * 3) % size] = 255
    return Video(frames=array, fps=fps)


def padded_clip(size: int, clip: Video | None = None) -> Video:
    """A real MP4 of exactly ``size`` bytes: ``clip`` (default a small green one) followed by a
    ``free`` box, which decoders skip. Large clips for request-size tests, made in no time."""
    data = (clip or colour_clip((0, 200, 0))).mp4
    pad = size - len(data)
    if pad < 8:
        raise ValueError(f"size must be at least {len(data) + 8} bytes")
    return Video(mp4=data + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8), fps=clip.fps if clip else 8.0)


def is_red(media: list[Image | Video]) -> bool:
    """True if the last frame shown is mostly red: the fakes' mark of a bad clip."""
    if not media:
        return False
    last = media[-1]
    array = last.frames[-1] if isinstance(last, Video) else last.array
    mean = array.reshape(-1, 3).mean(axis=0)
    return bool(mean[0] > 2 * mean[1] + 20)


@dataclass
class Brain:
    """Honest answers. ``steps``: the plan says task_complete on this step; ``moves`` are the
    instructions per step (e.g. "move up 2 times" for the maze)."""

    steps: int = 1
    moves: list[str] = field(default_factory=lambda: ["move up 1 times", "move right 1 times", "move down 1 times"])
    verdict: Callable[[list[Image | Video]], bool] = lambda media: not is_red(media)

    def answer(self, role: str, text: str, media: list[Image | Video]) -> dict[str, Any]:
        if role == "plan":
            step = step_of(text)
            move = self.moves[(step - 1) % len(self.moves)]
            return {"observation": "a frame", "instruction": move, "target_state": f"after {move}",
                    "task_complete": step >= self.steps, "steps_left": max(0, self.steps - step)}
        if role == "verify":
            ok = self.verdict(media)
            return {"accept": ok, "reason": "the clip is green" if ok else "the clip is red", "good_fraction": 1.0 if ok else 0.0,
                    "suggestion": "" if ok else "make it green", "remaining": "", "confidence": 0.9, "action_too_large": False}
        if role == "select":
            return {"index": 0, "reason": "first"}
        if role == "judge":
            return {"score": 1.0, "solved": True, "reason": "looks solved"}
        if role == "rubric":  # every criterion the rubric names, full marks unless the clip is red
            names = list(dict.fromkeys(re.findall(r"Criterion_\d+[A-Za-z_]*", text))) or ["Criterion_1"]
            good = not is_red(media)
            return {"criteria": [{"name": n, "description": "checked", "score": 1.0 if good else 0.0, "max_score": 1.0,
                                  "rationale": "green" if good else "red"} for n in names]}
        if role == "critique":
            return {"solved": False, "critique": "too slow", "revised_prompt": "faster"}
        return {"error": "unknown role"}
