"""The rule-based scorer: reads a video from pixels and checks every transition.

Score (docs/simulator.md):

* 1.0 when the video ends at the goal and every transition between consecutive frames is legal;
* otherwise partial credit ``0.5 * max(0, 1 - d_end / d_start)``: half the fraction of the optimal
  distance to the goal that was closed, measured at the last state reached *before* the first
  illegal transition or unreadable frame (0 if that state is unsolvable).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from collabvr.backends.sim.families.base import DecodeError, Family


@dataclass(frozen=True)
class Trajectory:
    """What a video shows, read frame by frame."""

    states: list  # distinct consecutive decoded states, up to the first bad frame
    last_good: list  # per distinct state, the index of the last frame that still showed it
    bad_frame: int | None  # index of the first frame that is unreadable or an illegal transition
    problem: str  # what was wrong at bad_frame


def read_trajectory(family: Family, frames: Iterable[np.ndarray], start: object | None = None) -> Trajectory:
    """Decode frames in order; stop at the first unreadable frame or illegal transition. Frames may
    come one at a time from the decoder (``Video.iter_frames``): only the previous one is held."""
    states: list = [] if start is None else [start]
    last_good: list[int] = [] if start is None else [-1]
    previous = None
    for t, frame in enumerate(frames):
        if previous is not None and states and np.array_equal(frame, previous):
            last_good[-1] = t  # a held frame shows the same state; no need to read it again
            continue
        previous = frame
        try:
            state = family.read(frame)
        except DecodeError as exc:
            return Trajectory(states, last_good, t, f"frame {t} is unreadable (an object vanished?): {exc}")
        if states and state == states[-1]:
            last_good[-1] = t
            continue
        if states and not family.transition_ok(states[-1], state):
            where = "the clip does not start from the current frame" if t == 0 else "an illegal transition"
            return Trajectory(states, last_good, t, f"frame {t}: {where} ({family.state_text(states[-1])} -> {family.state_text(state)})")
        states.append(state)
        last_good.append(t)
    return Trajectory(states, last_good, None, "")


@dataclass(frozen=True)
class Score:
    score: float
    solved: bool
    legal: bool
    reason: str


def score_video(family: Family, frames: Iterable[np.ndarray], start: object) -> Score:
    trajectory = read_trajectory(family, frames, start)
    final = trajectory.states[-1]
    legal = trajectory.bad_frame is None
    if legal and family.is_goal(final):
        return Score(1.0, True, True, "goal reached, every transition legal")
    d_start = family.distance(start) or 0
    d_end = family.distance(final)
    progress = 0.0 if d_end is None or d_start == 0 else max(0.0, 1.0 - d_end / d_start)
    why = trajectory.problem if not legal else f"goal not reached ({d_end} moves left of {d_start})"
    return Score(round(0.5 * progress, 6), False, legal, why)
