"""The simulated video model: executes an action prompt in a sim world, with documented errors.

It reads the world from the conditioning frame's pixels, parses the prompt in the family's small
grammar, and renders the moves with motion interpolated over ``frames_per_move`` frames. Errors
(docs/simulator.md):

* drift: move ``i`` of a clip is replaced by a different legal move with probability
  ``min(drift_max, drift_base + drift_growth * (i + carried))``, where ``carried`` is
  ``drift_carry`` times the wear of the conditioning frame (0 by default: drift restarts at
  every clip; see :mod:`collabvr.backends.sim.wear`);
* a physics violation (teleport, wall pass, vanishing object) at a random move, with probability
  ``violation_rate`` per clip; for a goal-only prompt the move is drawn over the clip's capacity
  (``goal_only_violation="capacity"``, the default) or over the moves it makes (``"moves"``);
* a prompt with no parseable action (e.g. the raw task text) makes the model follow a greedy
  visual prior toward the goal that sees ``prior_lookahead`` moves ahead (4 by default) and
  cheats through walls when it sees no legal way closer;
* a prompt that carries a ``Correction:`` multiplies both error rates by ``correction_factor``,
  when the correction is taken in (probability ``correction_follow``, 1 by default);
* with probability ``cond_misread`` (0 by default) the model misreads its conditioning frame as a
  neighbouring state and executes the prompt from there;
* a clip holds ``(seconds * fps - 1) // frames_per_move`` moves; the rest of the action is cut.

The knobs' draws come from a generator of their own, so at their defaults the clips are the same
bits as before the knobs existed, and moving one knob changes only the draws it owns.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import numpy as np

from collabvr import events
from collabvr.backends.sim import wear as wear_mark
from collabvr.backends.sim.config import VGMConfig
from collabvr.backends.sim.families.base import Family, IllegalMove
from collabvr.backends.sim.world import family_of, read_state, rng_for
from collabvr.media import Image, Video


@dataclass(frozen=True)
class _Knobs:
    """The knob draws of one clip, made up front in a fixed order (common random numbers)."""

    misread: float
    misread_move: float
    follow: float
    violation_at: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> _Knobs:
        return cls(*(float(u) for u in rng.random(4)))


def knob_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator for the knob draws, seeded from ``rng``'s state without drawing from it."""
    state = rng.bit_generator.state["state"]
    return np.random.default_rng([state["state"] % 2**64, state["inc"] % 2**64, 0x6B6E6F62])


class SimVGM:
    def __init__(self, config: VGMConfig, *, name: str = "sim") -> None:
        self.config = config
        self.name = name

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        family = family_of(frame.array)
        state = read_state(family, frame.array, "conditioning frame")
        rng = rng_for("vgm", seed, state, prompt, seconds, fps)
        total = max(1, round(seconds * fps))
        carried = self.config.drift_carry * wear_mark.read(frame.array, family.background) if self.config.drift_carry else 0.0
        capacity = (total - 1) // self.config.frames_per_move
        states = self.rollout(family, state, prompt, capacity=capacity, rng=rng, carried=carried)
        wear = [round(carried) + k for k in range(len(states))] if self.config.drift_carry else None
        return Video(frames=self.render(family, states, total, frame.height, wear=wear), fps=fps)

    def rollout(self, family: Family, state: object, prompt: str, *, capacity: int, rng: np.random.Generator,
                carried: float = 0.0) -> list:
        """The sequence of world states the clip shows, one per move.

        ``carried`` is the drift index the clip starts from (``drift_carry`` times the wear of the
        conditioning frame); 0 restarts drift at this clip."""
        cfg = self.config
        knobs = _Knobs.draw(knob_rng(rng))
        corrected = "correction:" in prompt.lower() and knobs.follow < cfg.correction_follow
        scale = cfg.correction_factor if corrected else 1.0
        prefix: list = []
        legal = family.moves(state) if capacity and knobs.misread < cfg.cond_misread else []
        if legal:  # a misread conditioning frame: the clip's first move jumps to a neighbouring state
            prefix, state = [state], family.apply(state, legal[int(knobs.misread_move * len(legal))])
            capacity, carried = capacity - 1, carried + 1
        moves = family.parse(prompt)
        n = min(capacity, len(moves)) if moves else capacity
        violate_at = int(rng.integers(0, n)) if n and rng.random() < cfg.violation_rate * scale else -1
        if violate_at >= 0 and not moves and cfg.goal_only_violation == "moves":
            # the documented rule: uniform over the moves the clip makes before it stops at the goal
            made = len(self._play(family, state, moves, n, -1, copy.deepcopy(rng), scale, carried)) - 1
            violate_at = int(knobs.violation_at * made) if made else -1
        return prefix + self._play(family, state, moves, n, violate_at, rng, scale, carried)

    def _play(self, family: Family, state: object, moves: list[str], n: int, violate_at: int,
              rng: np.random.Generator, scale: float, carried: float) -> list:
        cfg = self.config
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
            if rng.random() < min(cfg.drift_max, (cfg.drift_base + cfg.drift_growth * (i + carried)) * scale):
                move = family.wrong_move(current, move, rng) if move else _any_move(family, current, rng)
            if move is None:
                states.append(family.greedy(current, rng, cfg.prior_lookahead))
                continue
            try:
                states.append(family.apply(current, move))
            except IllegalMove:  # an impossible instruction: the object stays where it is
                states.append(current)
        return states

    def render(self, family: Family, states: list, total: int, size: int, *, wear: list[int] | None = None) -> np.ndarray:
        """The clip's frames; with ``wear`` (one value per state), each frame carries its state's wear."""
        fpm = self.config.frames_per_move
        frames = [family.render(states[0], size)]
        for move, (before, after) in enumerate(zip(states, states[1:], strict=False), 1):
            frames += [family.render_motion(before, after, k / fpm, size) for k in range(1, fpm + 1)]
            events.report(move, len(states) - 1, unit="move")  # progress of the clip, as a real VGM reports steps
        frames += [frames[-1]] * (total - len(frames))
        clip = np.stack(frames[:total])
        if wear is not None:
            for t in range(clip.shape[0]):  # frame t shows state ceil(t / fpm), moving toward it
                clip[t] = wear_mark.stamp(clip[t], wear[min(len(wear) - 1, -(-t // fpm))], family.background)
        return clip


def _any_move(family: Family, state: object, rng: np.random.Generator) -> str | None:
    legal = family.moves(state)
    return legal[int(rng.integers(len(legal)))] if legal else None


def _vanished(state: object) -> bool:
    return any(getattr(state, f.name) is None for f in fields(state))
