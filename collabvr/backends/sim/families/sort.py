"""Sort family: seven bars of heights 1..7 (one colour per height) sorted by adjacent swaps."""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import numpy as np

from .base import (
    LEAD,
    LOOKAHEAD,
    DecodeError,
    Family,
    Grid,
    IllegalMove,
    blank_frame,
    check_difficulty,
    classify,
    fill_rect,
    label_centroids,
    sample,
    segments,
)

N = 7
COLOURS = (
    (220, 30, 30),
    (245, 140, 20),
    (235, 215, 0),
    (40, 170, 60),
    (0, 170, 190),
    (40, 70, 220),
    (150, 40, 190),
)
NAMES = ("red", "orange", "yellow", "green", "teal", "blue", "purple")
BACKGROUND = (235, 235, 235)
PALETTE = np.array(COLOURS + (BACKGROUND,))
BAR_HALF = 0.3  # bar half-width in slots: bars stand apart so colours don't bleed
GOAL = tuple(range(1, N + 1))
_SWAP = re.compile(
    rf"{LEAD}swap\s+(?:(?:bars?|slots?)\s+)?(\d{{1,2}})\s*(?:and\s+|with\s+|&\s*|\s)(\d{{1,2}})\s*!*"
)
_MOVE = re.compile(r"swap (\d+) (\d+)")


@dataclass(frozen=True)
class SortState:
    """bars[i] is the height (1..7) of the bar in slot i (0-based), None once it vanished."""

    bars: tuple[int | None, ...]

    @property
    def valid(self) -> bool:
        return sorted(self.bars, key=lambda b: b or 0) == list(GOAL)


def _inversions(bars: tuple[int, ...]) -> int:
    return sum(a > b for a, b in itertools.combinations(bars, 2))


@functools.cache
def _by_inversions() -> dict[int, list[tuple[int, ...]]]:
    out: dict[int, list[tuple[int, ...]]] = {}
    for perm in itertools.permutations(GOAL):
        out.setdefault(_inversions(perm), []).append(perm)
    return out


def _swap(bars: tuple[int | None, ...], i: int, j: int) -> SortState:
    b = list(bars)
    b[i], b[j] = b[j], b[i]
    return SortState(tuple(b))


def _move(i: int) -> str:
    """The move swapping 0-based slots i and i+1."""
    return f"swap {i + 1} {i + 2}"


class Sort(Family):
    name = "sort"
    background = BACKGROUND
    lengths = {"easy": (2, 5), "medium": (7, 10), "hard": (13, 17)}

    def generate(self, difficulty: str, rng: np.random.Generator) -> SortState:
        check_difficulty(difficulty)
        lo, hi = self.lengths[difficulty]
        bucket = _by_inversions()[int(rng.integers(lo, hi + 1))]
        return SortState(bucket[int(rng.integers(len(bucket)))])

    def prompt(self, state: SortState) -> str:
        return (
            "Sort the seven coloured bars so their heights increase from left to right. "
            "A bar can only trade places with the bar directly beside it."
        )

    def _draw(self, bars: list[tuple[int, float]], size: int) -> np.ndarray:
        """bars: (height, fractional slot); taller bars first so a passing shorter bar stays in front."""
        img = blank_frame(size, self.background)
        grid = Grid(size, N)
        for h, x in sorted(bars, reverse=True):
            fill_rect(
                img,
                grid.px(N - h),
                grid.px(N),
                grid.px(x + 0.5 - BAR_HALF),
                grid.px(x + 0.5 + BAR_HALF),
                COLOURS[h - 1],
            )
        return img

    def render(self, state: SortState, size: int = 256) -> np.ndarray:
        return self._draw([(h, i) for i, h in enumerate(state.bars) if h is not None], size)

    def render_motion(self, s0: SortState, s1: SortState, alpha: float, size: int = 256) -> np.ndarray:
        changed = [i for i in range(N) if s0.bars[i] != s1.bars[i]]
        slides = s0.valid and s1.valid and len(changed) == 2 and changed[1] == changed[0] + 1
        if not slides or alpha <= 0 or alpha >= 1:
            return self.render(s0 if alpha < 0.5 else s1, size)
        i, j = changed
        bars = [(h, float(k)) for k, h in enumerate(s0.bars) if k not in changed]
        bars += [(s0.bars[i], i + alpha), (s0.bars[j], j - alpha)]  # type: ignore[list-item]
        return self._draw(bars, size)

    def decode(self, frame: np.ndarray) -> SortState:
        """Bars by colour; slot order from centroid x (robust while two bars pass each other)."""
        s = sample(frame, self.background, self.name)
        grid = Grid(frame.shape[0], N)
        labels = classify(s.px, PALETTE)
        count, _, cx = label_centroids(labels, s, len(PALETTE))
        block = 2 * BAR_HALF * (grid.cell / s.step) ** 2
        if (count[:N] < 0.25 * block).any():
            raise DecodeError(
                f"bar(s) missing: {[NAMES[h] for h in np.flatnonzero(count[:N] < 0.25 * block)]}"
            )
        for h in range(N):
            rows = np.flatnonzero((labels == h).sum(1) >= 2)
            height = (grid.px(N) - s.ys[rows[0]]) / grid.cell if len(rows) else 0.0
            if abs(height - (h + 1)) > 0.5:
                raise DecodeError(f"the {NAMES[h]} bar is {height:.1f} units tall, expected {h + 1}")
        return SortState(tuple(int(h) + 1 for h in np.argsort(cx[:N], kind="stable")))

    def moves(self, state: SortState) -> list[str]:
        return [_move(i) for i in range(N - 1)] if state.valid else []

    def vocabulary(self) -> tuple[str, ...]:
        """Every swap of two slots: neighbours are legal, any other pair is not."""
        return tuple(f"swap {i} {j}" for i in range(1, N + 1) for j in range(i + 1, N + 1))

    def apply(self, state: SortState, move: str) -> SortState:
        m = _MOVE.fullmatch(move)
        if not m or move not in self.moves(state):
            raise IllegalMove(f"{move!r} is not legal: swap two neighbouring slots, e.g. 'swap 2 3'")
        i = int(m.group(1)) - 1
        return _swap(state.bars, i, i + 1)

    def is_goal(self, state: SortState) -> bool:
        return state.bars == GOAL

    def solve(self, state: SortState) -> list[str] | None:
        """Bubble sort: every swap removes exactly one inversion, so it is optimal."""
        if not state.valid:
            return None
        bars, path = list(state.bars), []
        for _ in range(N):
            for i in range(N - 1):
                if bars[i] > bars[i + 1]:  # type: ignore[operator]
                    bars[i], bars[i + 1] = bars[i + 1], bars[i]
                    path.append(_move(i))
        return path

    def distance(self, state: SortState) -> int | None:
        return _inversions(state.bars) if state.valid else None  # type: ignore[arg-type]

    def greedy(self, state: SortState, rng: np.random.Generator, depth: int = LOOKAHEAD) -> SortState:
        """Adjacent swaps that soon put more bars in place; failing that, swap a misplaced bar straight
        into its home slot (legal only when that slot is adjacent)."""
        if not state.valid or self.is_goal(state):
            return state
        firsts = self.lookahead(state, lambda s: sum(h != i + 1 for i, h in enumerate(s.bars)), depth)
        if firsts:
            return self.apply(state, firsts[int(rng.integers(len(firsts)))])
        misplaced = [i for i, h in enumerate(state.bars) if h != i + 1]
        legal = [i for i in misplaced if abs(state.bars[i] - 1 - i) == 1]  # type: ignore[operator]
        options = legal or misplaced
        i = options[int(rng.integers(len(options)))]
        return _swap(state.bars, i, state.bars[i] - 1)  # type: ignore[operator]

    def violate(self, state: SortState, rng: np.random.Generator) -> tuple[SortState, str]:
        """teleport: two non-adjacent bars trade places instantly; vanish: a bar disappears."""
        if not state.valid:
            raise ValueError("not a valid sort state")
        if rng.integers(2):
            bars = list(state.bars)
            bars[int(rng.integers(N))] = None
            return SortState(tuple(bars)), "vanish"
        pairs = [(i, j) for i in range(N) for j in range(i + 2, N)]
        i, j = pairs[int(rng.integers(len(pairs)))]
        return _swap(state.bars, i, j), "teleport"

    def parse(self, text: str) -> list[str]:
        out = []
        for seg in segments(text):
            m = _SWAP.fullmatch(seg)
            if m:
                i, j = sorted((int(m.group(1)), int(m.group(2))))
                out.append(f"swap {i} {j}")
        return out

    def describe(self, moves: list[str]) -> str:
        return ", then ".join(moves)

    def state_text(self, state: SortState) -> str:
        heights = " ".join("-" if h is None else str(h) for h in state.bars)
        return f"bar heights from left to right: {heights}"
