"""The labelled set of ``collabvr calibrate``: sim clips with known truth, and plan frames with a known optimal move.

The labelled set (docs/calibrate.md): per clip, a sim task instance (``Task.sim``), a planned
action (the first moves of its optimal solution) and one of six kinds, in equal shares of the
bad half:

* ``good`` (half of the set): the planned moves, carried out;
* ``drift``: a different legal move at a move j >= 1 of the action, the planned moves after it;
* ``violation``: a physics violation (``Family.violate``) at a move j, as the sim VGM draws one;
* ``wrong``: a different legal move as the first move, then the planned moves after it;
* ``incomplete``: the first j < k planned moves, then the clip holds still;
* ``static``: no move at all.

States are rendered with the sim VGM's own renderer (``SimVGM.render``), and every label (good or
bad, the first bad frame, the good fraction, the kind) is checked against the sim's decoder
(``Family.read`` on every frame); a disagreement is an error, never a silently wrong label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from collabvr.backends.sim.config import VGMConfig
from collabvr.backends.sim.families import FAMILIES, DecodeError, Family, IllegalMove
from collabvr.backends.sim.vgm import SimVGM
from collabvr.errors import BadInput
from collabvr.media import Image, Video
from collabvr.records import Plan
from collabvr.task import Task

BAD_KINDS = ("drift", "violation", "wrong", "incomplete", "static")
# the kind of error the sim verifier tells apart (docs/simulator.md#knobs: false_accept_off_plan, _illegal, _unfinished)
ERROR_KIND = {"drift": "off_plan", "wrong": "off_plan", "violation": "illegal", "incomplete": "unfinished",
              "static": "unfinished"}
KINDS = ("good", *BAD_KINDS)
GOOD_SHARE = 0.5  # half the clips are correct; the other half split evenly over BAD_KINDS
MAX_MOVES = 6  # most moves in a planned action


class LabelMismatch(RuntimeError):
    """A clip's constructed label disagrees with what the sim's decoder reads in its frames."""


@dataclass(frozen=True)
class Label:
    kind: str
    good: bool
    first_bad_frame: int | None  # None: no frame is wrong (good, incomplete, static)
    good_fraction: float  # first bad frame / frames; 1.0 when none is wrong (as the sim verifier reports)
    moves_done: int | None  # planned moves the clip carries out, in order, before any error (None: footage)
    tolerance: float  # a said good fraction this close to the label "locates" the error (one move of the clip)


@dataclass
class Clip:
    task: Task
    start: Image
    instruction: str
    target_state: str
    video: Video
    label: Label


# ----------------------------------------------------------------------------- the labelled set


def suite_specs(suite: str) -> list[str]:
    """``sim`` (every family, medium), ``sim:FAMILY`` (its difficulties) or ``sim:FAMILY/DIFF``."""
    if suite == "sim":
        return [f"{name}/medium" for name in FAMILIES]
    if not suite.startswith("sim:"):
        raise BadInput(f"calibrate works on the sim suite only: sim, sim:FAMILY or sim:FAMILY/DIFF, got {suite!r}")
    name, _, diff = suite.removeprefix("sim:").partition("/")
    if name not in FAMILIES:
        raise BadInput(f"unknown sim family {name!r}; known: {', '.join(FAMILIES)}")
    diffs = [diff] if diff else list(FAMILIES[name].lengths)
    for d in diffs:
        if d not in FAMILIES[name].lengths:
            raise BadInput(f"unknown difficulty {d!r}; known: {', '.join(FAMILIES[name].lengths)}")
    return [f"{name}/{d}" for d in diffs]


def kind_mix(n: int, bad_kinds: tuple[str, ...] = BAD_KINDS) -> list[str]:
    """The kinds of ``n`` clips: ``round(n * GOOD_SHARE)`` good, the rest over ``bad_kinds`` in turn."""
    good = round(n * GOOD_SHARE)
    return ["good"] * good + [bad_kinds[i % len(bad_kinds)] for i in range(n - good)]


def _walk(family: Family, state: Any, moves: list[str]) -> list:
    states = [state]
    for move in moves:
        try:
            states.append(family.apply(states[-1], move))
        except IllegalMove:
            states.append(states[-1])  # an impossible instruction: the object stays where it is
    return states


def _states_for(kind: str, family: Family, start: Any, planned: list[str], rng: np.random.Generator) -> tuple[list, int] | None:
    """The world states the clip shows (one per move) and the move index j of its error; None when
    this instance cannot show the kind (no other legal move where a wrong one is wanted)."""
    k = len(planned)
    if kind == "good":
        return _walk(family, start, planned), k
    if kind == "static":
        return [start], 0
    if kind == "incomplete":
        j = int(rng.integers(1, k))
        return _walk(family, start, planned[:j]), j
    j = 0 if kind == "wrong" else int(rng.integers(1, k))
    before = _walk(family, start, planned[:j])
    here = before[-1]
    if kind == "violation":
        broken, _ = family.violate(here, rng)
        return [*before, broken], j
    wrong = family.wrong_move(here, planned[j], rng)
    if wrong is None:  # a corridor: no other legal move here; the caller takes the next instance
        return None
    after = _walk(family, family.apply(here, wrong), planned[j + 1:])
    return [*before, *after], j


def decoded_label(family: Family, frames: np.ndarray, start: Any, planned: list[str]) -> tuple[bool, int | None, int]:
    """What the decoder reads: (carried out, first frame off the plan or unreadable, moves done)."""
    expected = _walk(family, start, planned)
    done = 0
    for t, frame in enumerate(frames):
        try:
            state = family.read(frame)
        except DecodeError:
            return False, t, done
        if state == expected[done]:
            continue
        if done + 1 < len(expected) and state == expected[done + 1]:
            done += 1
            continue
        return False, t, done
    return done == len(planned), None, done


def _label(kind: str, j: int, family: Family, frames: np.ndarray, start: Any, planned: list[str], fpm: int) -> Label:
    n = len(frames)
    ok, bad, done = decoded_label(family, frames, start, planned)
    if kind == "good":
        agrees = ok
    elif kind in ("incomplete", "static"):
        agrees = not ok and bad is None and done == j
    else:  # the first wrong frame lies within the frames of move j, and the moves before it were done
        agrees = not ok and bad is not None and j * fpm < bad <= (j + 1) * fpm and done == j
    if not agrees:
        raise LabelMismatch(f"{kind} clip (error at move {j}) decodes as carried_out={ok}, first_bad={bad}, done={done}")
    return Label(kind=kind, good=kind == "good", first_bad_frame=bad,
                 good_fraction=1.0 if bad is None else round(bad / n, 6), moves_done=done, tolerance=round(fpm / n, 6))


def labelled_set(suite: str, n: int, *, seed: int = 0, seconds: float = 3.0, fps: int = 16, size: int = 128) -> list[Clip]:
    """``n`` labelled clips, the same for the same arguments (see the module docstring)."""
    if n < 1:
        raise BadInput(f"--n must be >= 1, got {n}")
    specs = suite_specs(suite)
    vgm = SimVGM(VGMConfig())
    fpm = vgm.config.frames_per_move
    total = max(2, round(seconds * fps))
    capacity = (total - 1) // fpm
    if capacity < 2:
        raise BadInput(f"a {seconds} s clip at {fps} fps holds fewer than 2 moves; calibrate needs 2")
    clips: list[Clip] = []
    instance = seed
    for i, kind in enumerate(kind_mix(n)):
        made = None
        while made is None:  # the next instance whose solution has at least 2 moves and can show the kind
            task = Task.sim(specs[instance % len(specs)], seed=instance, size=size)
            instance += 1
            family = FAMILIES[task.family]
            first = task.first_image()
            start = family.read(first.array)
            solution = family.solve(start) or []
            if len(solution) < 2:
                continue
            planned = solution[: min(len(solution), capacity, MAX_MOVES)]
            made = _states_for(kind, family, start, planned, np.random.default_rng([seed, i, 0x63616C]))
        states, j = made
        frames = vgm.render(family, states, total, size)
        label = _label(kind, j, family, frames, start, planned, fpm)
        target = _walk(family, start, planned)[-1]
        clips.append(Clip(task=task, start=first, instruction=family.describe(planned),
                          target_state=family.state_text(target), video=Video(frames=frames, fps=fps), label=label))
    return clips



def plan_frames(suite: str, n: int, seed: int, size: int) -> list[tuple[Task, Image, Any]]:
    """``n`` frames with a known optimal next move: a state part-way along an instance's solution."""
    specs = suite_specs(suite)
    frames = []
    instance = seed + 100_000
    while len(frames) < n:
        task = Task.sim(specs[instance % len(specs)], seed=instance, size=size)
        instance += 1
        family = FAMILIES[task.family]
        state = family.read(task.first_image().array)
        solution = family.solve(state) or []
        if len(solution) < 2:
            continue
        cut = int(np.random.default_rng([seed, instance, 0x706C]).integers(0, len(solution) - 1))
        here = _walk(family, state, solution[:cut])[-1]
        frames.append((task, Image(family.render(here, size)), here))
    return frames


class PlanScore(NamedTuple):
    """How a plan from a non-goal state scores against the exact solver."""

    legal: bool  # every parsed move is legal in turn (an empty or unparseable plan is not)
    optimal: bool  # the whole plan is on a shortest path: every move lowers the distance to the goal by one
    first_move_optimal: bool  # the first move does (what "optimal" measured before: blind to later moves)
    wrong_completion: bool  # it claims the task complete without its moves reaching the goal


def plan_scores(family: Family, state: Any, plan: Plan) -> PlanScore:
    """Score a plan from a non-goal state (:class:`PlanScore`)."""
    moves = family.parse(plan.instruction)
    dist = family.distance(state)
    end: Any = state
    legal, optimal, first = bool(moves), bool(moves) and dist is not None, False
    for k, move in enumerate(moves, 1):
        try:
            end = family.apply(end, move)
        except IllegalMove:
            legal = optimal = False
            break
        if optimal:
            here = family.distance(end)
            optimal = here is not None and here == dist - k
            first = first or (k == 1 and optimal)
    wrong_claim = bool(plan.task_complete) and not (legal and family.is_goal(end))
    return PlanScore(legal, bool(optimal), first, wrong_claim)
