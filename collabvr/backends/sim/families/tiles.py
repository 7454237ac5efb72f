"""Tiles family: a 3x3 sliding puzzle of eight coloured tiles and one blank.

Goal order (row-major, blank last): 1 red, 2 orange, 3 yellow, 4 green, 5 cyan, 6 blue,
7 magenta, 8 white. Moves name the direction the blank moves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .base import (
    DIRS,
    LOOKAHEAD,
    DecodeError,
    Family,
    Grid,
    IllegalMove,
    bfs_distances,
    blank_frame,
    check_difficulty,
    classify,
    describe_directions,
    direction_pattern,
    fill_rect,
    label_centroids,
    manhattan,
    nearest_cell,
    parse_directions,
    sample,
)

N = 3
BOARD = (40, 40, 40)
COLOURS = (
    (220, 30, 30),
    (245, 140, 20),
    (240, 230, 40),
    (40, 180, 60),
    (40, 210, 220),
    (40, 70, 220),
    (220, 50, 210),
    (245, 245, 245),
)
NAMES = ("red", "orange", "yellow", "green", "cyan", "blue", "magenta", "white")
PALETTE = np.array(COLOURS + (BOARD,))
GAP = 0.07  # per side, in cells: keeps neighbouring tiles from bleeding into each other
GOAL = tuple(range(8))
_PATTERN = direction_pattern("slide the blank|move the blank|blank")


@dataclass(frozen=True)
class TilesState:
    """pos[t] is the cell (row-major 0..8) of tile t+1, None once it vanished; the blank is the free cell."""

    pos: tuple[int | None, ...]

    @property
    def board(self) -> tuple[int, ...]:
        """Tile number per cell, 0 for empty."""
        cells = [0] * 9
        for t, p in enumerate(self.pos):
            if p is not None:
                cells[p] = t + 1
        return tuple(cells)

    @property
    def valid(self) -> bool:
        return None not in self.pos and len(set(self.pos)) == 8

    @property
    def blank(self) -> int:
        return self.board.index(0)


def _rc(cell: int) -> tuple[int, int]:
    return divmod(cell, N)


def _blank_moves(blank: int) -> list[tuple[str, int]]:
    """(move, cell the blank moves to) in stable order."""
    r, c = _rc(blank)
    return [
        (mv, (r + dr) * N + c + dc) for mv, (dr, dc) in DIRS.items() if 0 <= r + dr < N and 0 <= c + dc < N
    ]


def _slide(board: tuple[int, ...], blank: int, to: int) -> tuple[int, ...]:
    cells = list(board)
    cells[blank], cells[to] = cells[to], 0
    return tuple(cells)


def _board_successors(board: tuple[int, ...]) -> list[tuple[int, ...]]:
    blank = board.index(0)
    return [_slide(board, blank, to) for _, to in _blank_moves(blank)]


@functools.cache
def _table() -> tuple[dict[tuple[int, ...], int], dict[int, list[tuple[int, ...]]]]:
    """Exact distance of every solvable board (181440, built once in about a second) and boards by distance."""
    dist = bfs_distances(tuple(range(1, 9)) + (0,), _board_successors)
    buckets: dict[int, list[tuple[int, ...]]] = {}
    for board, d in dist.items():
        buckets.setdefault(d, []).append(board)
    return dist, buckets


def _from_board(board: tuple[int, ...]) -> TilesState:
    return TilesState(tuple(board.index(t) for t in range(1, 9)))


def _tile_distance(state: TilesState) -> int:
    return sum(manhattan(_rc(p), _rc(t)) for t, p in enumerate(state.pos))  # type: ignore[arg-type]


class Tiles(Family):
    name = "tiles"
    background = (90, 20, 20)
    lengths = {"easy": (3, 6), "medium": (8, 12), "hard": (14, 20)}

    def generate(self, difficulty: str, rng: np.random.Generator) -> TilesState:
        check_difficulty(difficulty)
        lo, hi = self.lengths[difficulty]
        bucket = _table()[1][int(rng.integers(lo, hi + 1))]
        return _from_board(bucket[int(rng.integers(len(bucket)))])

    def prompt(self, state: TilesState) -> str:
        order = ", ".join(NAMES)
        return (
            "Solve the sliding puzzle: arrange the coloured tiles in reading order "
            f"({order}) with the empty space in the last corner. Only a tile next to the "
            "empty space can slide into it."
        )

    def _draw(self, tiles: list[tuple[int, float, float]], size: int) -> np.ndarray:
        """tiles: (tile index, row, col) with fractional positions."""
        img = blank_frame(size, self.background)
        grid = Grid(size, N)
        fill_rect(img, grid.px(0), grid.px(N), grid.px(0), grid.px(N), BOARD)
        for t, r, c in tiles:
            fill_rect(
                img,
                grid.px(r + GAP),
                grid.px(r + 1 - GAP),
                grid.px(c + GAP),
                grid.px(c + 1 - GAP),
                COLOURS[t],
            )
        return img

    def render(self, state: TilesState, size: int = 256) -> np.ndarray:
        return self._draw([(t, *_rc(p)) for t, p in enumerate(state.pos) if p is not None], size)

    def render_motion(self, s0: TilesState, s1: TilesState, alpha: float, size: int = 256) -> np.ndarray:
        moved = [t for t in range(8) if s0.pos[t] != s1.pos[t]]
        slides = (
            s0.valid
            and s1.valid
            and len(moved) == 1
            and s1.pos[moved[0]] == s0.blank
            and manhattan(_rc(s0.pos[moved[0]]), _rc(s0.blank)) == 1
        )  # type: ignore[arg-type]
        if not slides or alpha <= 0 or alpha >= 1:
            return self.render(s0 if alpha < 0.5 else s1, size)
        tiles = []
        for t, p in enumerate(s0.pos):
            (r0, c0), (r1, c1) = _rc(p), _rc(s1.pos[t])  # type: ignore[arg-type]
            tiles.append((t, r0 + alpha * (r1 - r0), c0 + alpha * (c1 - c0)))
        return self._draw(tiles, size)

    def decode(self, frame: np.ndarray) -> TilesState:
        s = sample(frame, self.background, self.name)
        grid = Grid(frame.shape[0], N)
        count, cy, cx = label_centroids(classify(s.px, PALETTE), s, len(PALETTE))
        expected = ((1 - 2 * GAP) * grid.cell / s.step) ** 2
        if (count[:8] < 0.3 * expected).any():
            raise DecodeError(
                f"tile(s) missing: {[NAMES[t] for t in np.flatnonzero(count[:8] < 0.3 * expected)]}"
            )
        pos = tuple(r * N + c for r, c in (nearest_cell(grid, cy[t], cx[t]) for t in range(8)))
        if len(set(pos)) != 8:
            raise DecodeError("two tiles decode to the same cell")
        return TilesState(pos)

    def moves(self, state: TilesState) -> list[str]:
        return [mv for mv, _ in _blank_moves(state.blank)] if state.valid else []

    def apply(self, state: TilesState, move: str) -> TilesState:
        if move not in self.moves(state):
            raise IllegalMove(f"{move!r} is not legal here; legal: {self.moves(state)}")
        blank = state.blank
        to = dict(_blank_moves(blank))[move]
        return _from_board(_slide(state.board, blank, to))

    def is_goal(self, state: TilesState) -> bool:
        return state.pos == GOAL

    def solve(self, state: TilesState) -> list[str] | None:
        """Walk down the exact distance table (optimal; None for the unsolvable parity class)."""
        if not state.valid:
            return None
        dist = _table()[0]
        board = state.board
        if board not in dist:
            return None
        path: list[str] = []
        while dist[board]:
            blank = board.index(0)
            mv, board = next(
                (mv, nb)
                for mv, to in _blank_moves(blank)
                if dist.get(nb := _slide(board, blank, to), -1) == dist[board] - 1
            )
            path.append(mv)
        return path

    def greedy(self, state: TilesState, rng: np.random.Generator, depth: int = LOOKAHEAD) -> TilesState:
        """Slides that soon lower the total Manhattan distance (a few moves ahead); else put a misplaced
        tile straight into its home cell."""
        if not state.valid or self.is_goal(state):
            return state
        firsts = self.lookahead(state, _tile_distance, depth)
        if firsts:
            return self.apply(state, firsts[int(rng.integers(len(firsts)))])
        misplaced = [t for t in range(8) if state.pos[t] != t]
        t = misplaced[int(rng.integers(len(misplaced)))]
        pos = list(state.pos)
        if t in pos:
            pos[pos.index(t)] = pos[t]
        pos[t] = t
        return TilesState(tuple(pos))

    def violate(self, state: TilesState, rng: np.random.Generator) -> tuple[TilesState, str]:
        """teleport: a tile not next to the blank jumps into it; vanish: a tile disappears."""
        if not state.valid:
            raise ValueError("not a valid tiles state")
        pos = list(state.pos)
        t = int(rng.integers(8))
        if rng.integers(2):
            pos[t] = None
            return TilesState(tuple(pos)), "vanish"
        blank = state.blank
        far = [t for t, p in enumerate(pos) if manhattan(_rc(p), _rc(blank)) > 1]  # type: ignore[arg-type]
        pos[far[int(rng.integers(len(far)))]] = blank
        return TilesState(tuple(pos)), "teleport"

    def parse(self, text: str) -> list[str]:
        return parse_directions(text, _PATTERN)

    def describe(self, moves: list[str]) -> str:
        return describe_directions(moves, "slide the blank")

    def state_text(self, state: TilesState) -> str:
        names = ["blank" if t == 0 else NAMES[t - 1] for t in state.board]
        missing = [NAMES[t] for t, p in enumerate(state.pos) if p is None]
        rows = "; ".join(f"row {r + 1}: {' '.join(names[r * N : (r + 1) * N])}" for r in range(N))
        return rows + (f" (missing: {', '.join(missing)})" if missing else "")
