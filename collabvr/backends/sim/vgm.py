"""The simulated video model: executes an action prompt in a sim world, with documented errors.

It reads the world from the conditioning frame's pixels, parses the prompt in the family's small
grammar, and renders the moves with motion interpolated over ``frames_per_move`` frames. Errors
(docs/simulator.md):

* drift: move ``i`` of a clip is replaced by a different legal move with probability
  ``min(drift_max, drift_base + drift_growth * i)``;
* a physics violation (teleport, wall pass, vanishing object) at a random move, with probability
  ``violation_rate`` per clip;
* a prompt with no parseable action (e.g. the raw task text) makes the model follow a greedy
  visual prior toward the goal that ignores walls and dead ends;
* a prompt that carries a ``Correction:`` multiplies both error rates by ``correction_factor``;
* a clip holds ``(seconds * fps - 1) // frames_per_move`` moves; the rest of the action is cut.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from collabvr.backends.sim.config import VGMConfig
from collabvr.backends.sim.families.base import Family, IllegalMove
from collabvr.backends.sim.world import family_of, read_state, rng_for
from collabvr.media import Image, Video


class SimVGM:
    def __init__(self, config: VGMConfig, *, name: str = "sim") -> None:
        self.config = config
        self.name = name

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        family = family_of(frame.array)
        state = read_state(family, frame.array, "conditioning frame")
        rng = rng_for("vgm", seed, state, prompt, seconds, fps)
        total = max(1, round(seconds * fps))
        states = self.rollout(family, state, prompt, capacity=(total - 1) // self.config.frames_per_move, rng=rng)
        return Video(frames=self.render(family, states, total, frame.height), fps=fps)

    def rollout(self, family: Family, state: object, prompt: str, *, capacity: int, rng: np.random.Generator) -> list:
        """The sequence of world states the clip shows, one per move."""
        cfg = self.config
        scale = cfg.correction_factor if "correction:" in prompt.lower() else 1.0
        moves = family.parse(prompt)
        n = min(capacity, len(moves)) if moves else capacity
        violate_at = int(rng.integers(0, n)) if n and rng.random() < cfg.violation_rate * scale else -1
        states = [state]
        for i in range(n):
            current = states[-1]
            if not moves and family.is_goal(current):
                break
            if i == violate_at:
                broken, _kind = family.violate(current, rng)
                states.append(broken)
                if _vanished(broken):
                    break
                continue
            move = moves[i] if moves else None
            if rng.random() < min(cfg.drift_max, (cfg.drift_base + cfg.drift_growth * i) * scale):
                move = family.wrong_move(current, move, rng) if move else _any_move(family, current, rng)
            if move is None:
                states.append(family.greedy(current, rng))
                continue
            try:
                states.append(family.apply(current, move))
            except IllegalMove:  # an impossible instruction: the object stays where it is
                states.append(current)
        return states

    def render(self, family: Family, states: list, total: int, size: int) -> np.ndarray:
        fpm = self.config.frames_per_move
        frames = [family.render(states[0], size)]
        for before, after in zip(states, states[1:], strict=False):
            frames += [family.render_motion(before, after, k / fpm, size) for k in range(1, fpm + 1)]
        frames += [frames[-1]] * (total - len(frames))
        return np.stack(frames[:total])


def _any_move(family: Family, state: object, rng: np.random.Generator) -> str | None:
    legal = family.moves(state)
    return legal[int(rng.integers(len(legal)))] if legal else None


def _vanished(state: object) -> bool:
    return any(getattr(state, f.name) is None for f in fields(state))
