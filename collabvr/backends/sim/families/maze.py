"""Maze family: a red agent walks a braided grid maze to a green goal cell."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from .base import (
    DIRS,
    LOOKAHEAD,
    Cell,
    DecodeError,
    Family,
    Grid,
    IllegalMove,
    bfs_distances,
    bfs_path,
    cell_votes,
    check_difficulty,
    classify,
    describe_directions,
    direction_pattern,
    fill_disc,
    label_centroids,
    lerp,
    manhattan,
    nearest_cell,
    parse_directions,
    sample,
    step,
    walled_board,
)

N = 11  # cells per side, outer walls included
FLOOR, WALL, GOAL, AGENT = (228, 226, 214), (70, 80, 110), (40, 180, 70), (220, 30, 30)
PALETTE = np.array([FLOOR, WALL, GOAL, AGENT])
AGENT_RADIUS = 0.3  # in cells: leaves the cell colour visible around the agent, even mid-slide
BRAID = 0.2  # share of dead ends opened into loops
_PATTERN = direction_pattern("move|go")


@dataclass(frozen=True)
class MazeState:
    """walls: N strings of '#' (wall) / '.' (floor); agent None once it vanished."""

    walls: tuple[str, ...]
    agent: Cell | None
    goal: Cell

    def is_wall(self, cell: Cell) -> bool:
        r, c = cell
        return not (0 <= r < N and 0 <= c < N) or self.walls[r][c] == "#"


def _carve(rng: np.random.Generator) -> np.ndarray:
    """DFS backtracker on odd cells, then braid some dead ends so the maze has loops."""
    wall = np.ones((N, N), dtype=bool)
    wall[1, 1] = False
    stack = [(1, 1)]
    while stack:
        r, c = stack[-1]
        options = [
            (r + 2 * dr, c + 2 * dc)
            for dr, dc in DIRS.values()
            if 0 < r + 2 * dr < N - 1 and 0 < c + 2 * dc < N - 1 and wall[r + 2 * dr, c + 2 * dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        wall[(r + nr) // 2, (c + nc) // 2] = wall[nr, nc] = False
        stack.append((nr, nc))
    for r in range(1, N - 1, 2):
        for c in range(1, N - 1, 2):
            dead_end = sum(not wall[r + dr, c + dc] for dr, dc in DIRS.values()) == 1
            closed = [
                (dr, dc)
                for dr, dc in DIRS.values()
                if wall[r + dr, c + dc] and 0 < r + 2 * dr < N - 1 and 0 < c + 2 * dc < N - 1
            ]
            if dead_end and closed and rng.random() < BRAID:
                dr, dc = closed[int(rng.integers(len(closed)))]
                wall[r + dr, c + dc] = False
    return wall


def _neighbours(walls: tuple[str, ...], cell: Cell) -> list[tuple[str, Cell]]:
    out = []
    for mv in DIRS:
        r, c = step(cell, mv)
        if 0 <= r < N and 0 <= c < N and walls[r][c] == ".":
            out.append((mv, (r, c)))
    return out


def _open_cells(walls: tuple[str, ...], cell: Cell) -> list[Cell]:
    return [n for _, n in _neighbours(walls, cell)]


@functools.lru_cache(maxsize=4096)
def _solve(state: MazeState) -> tuple[str, ...] | None:
    path = bfs_path(state.agent, lambda a: _neighbours(state.walls, a), lambda a: a == state.goal)
    return None if path is None else tuple(path)


class Maze(Family):
    name = "maze"
    background = (10, 10, 70)
    lengths = {"easy": (3, 6), "medium": (8, 12), "hard": (14, 20)}

    def generate(self, difficulty: str, rng: np.random.Generator) -> MazeState:
        check_difficulty(difficulty)
        lo, hi = self.lengths[difficulty]
        while True:
            wall = _carve(rng)
            walls = tuple("".join("#" if w else "." for w in row) for row in wall)
            floor = [(int(r), int(c)) for r, c in np.argwhere(~wall)]
            for _ in range(8):
                agent = floor[int(rng.integers(len(floor)))]
                dist = bfs_distances(agent, functools.partial(_open_cells, walls))
                want = int(rng.integers(lo, hi + 1))
                goals = [cell for cell, d in dist.items() if d == want]
                if goals:
                    return MazeState(walls, agent, goals[int(rng.integers(len(goals)))])

    def prompt(self, state: MazeState) -> str:
        return (
            "Guide the red agent through the maze to the green goal cell. "
            "It moves one cell at a time and cannot pass through walls."
        )

    def _draw(self, state: MazeState, agent: tuple[float, float] | None, size: int) -> np.ndarray:
        img = walled_board(size, N, self.background, state.walls, WALL, FLOOR, state.goal, GOAL).copy()
        grid = Grid(size, N)
        if agent is not None:
            fill_disc(img, grid.px(agent[0] + 0.5), grid.px(agent[1] + 0.5), AGENT_RADIUS * grid.cell, AGENT)
        return img

    def render(self, state: MazeState, size: int = 256) -> np.ndarray:
        return self._draw(state, state.agent, size)

    def render_motion(self, s0: MazeState, s1: MazeState, alpha: float, size: int = 256) -> np.ndarray:
        slides = (
            s0.walls == s1.walls
            and s0.goal == s1.goal
            and s0.agent is not None
            and s1.agent is not None
            and manhattan(s0.agent, s1.agent) == 1
        )
        if not slides or alpha <= 0 or alpha >= 1:
            return self.render(s0 if alpha < 0.5 else s1, size)
        return self._draw(s0, lerp(s0.agent, s1.agent, alpha), size)  # type: ignore[arg-type]

    def decode(self, frame: np.ndarray) -> MazeState:
        s = sample(frame, self.background, self.name)
        grid = Grid(frame.shape[0], N)
        labels = classify(s.px, PALETTE)
        votes = cell_votes(labels, s, grid, len(PALETTE))[..., :3]
        if (votes.sum(-1) == 0).any():
            raise DecodeError("maze cells not visible")
        kind = votes.argmax(-1)
        goals = np.argwhere(kind == 2)
        if len(goals) != 1:
            raise DecodeError(f"expected one goal cell, found {len(goals)}")
        count, cy, cx = label_centroids(labels, s, len(PALETTE))
        expected = np.pi * (AGENT_RADIUS * grid.cell / s.step) ** 2
        if count[3] < 0.3 * expected:
            raise DecodeError("no agent visible")
        walls = tuple("".join("#" if k == 1 else "." for k in row) for row in kind)
        goal = (int(goals[0][0]), int(goals[0][1]))
        return MazeState(walls, nearest_cell(grid, cy[3], cx[3]), goal)

    def moves(self, state: MazeState) -> list[str]:
        return [] if state.agent is None else [mv for mv, _ in _neighbours(state.walls, state.agent)]

    def apply(self, state: MazeState, move: str) -> MazeState:
        if move not in self.moves(state):
            raise IllegalMove(f"{move!r} is not legal here; legal: {self.moves(state)}")
        return replace(state, agent=step(state.agent, move))  # type: ignore[arg-type]

    def is_goal(self, state: MazeState) -> bool:
        return state.agent == state.goal

    def solve(self, state: MazeState) -> list[str] | None:
        if state.agent is None:
            return None
        path = _solve(state)
        return None if path is None else list(path)

    def greedy(self, state: MazeState, rng: np.random.Generator, depth: int = LOOKAHEAD) -> MazeState:
        """Open moves that soon get closer to the goal (a few moves ahead); failing that, step
        toward the goal by Manhattan distance, through a wall if no open cell is closer."""
        if state.agent is None or self.is_goal(state):
            return state
        firsts = self.lookahead(state, lambda s: manhattan(s.agent, s.goal), depth)
        if firsts:
            return self.apply(state, firsts[int(rng.integers(len(firsts)))])
        here = manhattan(state.agent, state.goal)
        closer = [mv for mv in DIRS if manhattan(step(state.agent, mv), state.goal) < here]
        legal = [mv for mv in closer if mv in self.moves(state)]
        options = legal or closer
        return replace(state, agent=step(state.agent, options[int(rng.integers(len(options)))]))

    def violate(self, state: MazeState, rng: np.random.Generator) -> tuple[MazeState, str]:
        if state.agent is None:
            raise ValueError("the agent has already vanished")
        agent = state.agent
        far = [
            (r, c)
            for r in range(N)
            for c in range(N)
            if state.walls[r][c] == "." and manhattan((r, c), agent) > 1 and (r, c) != state.goal
        ]
        walls = [
            step(agent, mv)
            for mv in DIRS
            if state.is_wall(step(agent, mv)) and all(0 <= v < N for v in step(agent, mv))
        ]
        options: dict[str, list[Cell | None]] = {"teleport": far, "wall_pass": walls, "vanish": [None]}
        kinds = [k for k, v in options.items() if v]
        kind = kinds[int(rng.integers(len(kinds)))]
        cells = options[kind]
        return replace(state, agent=cells[int(rng.integers(len(cells)))]), kind

    def parse(self, text: str) -> list[str]:
        return parse_directions(text, _PATTERN)

    def describe(self, moves: list[str]) -> str:
        return describe_directions(moves, "move")

    def state_text(self, state: MazeState) -> str:
        agent = "missing" if state.agent is None else f"at row {state.agent[0] + 1}, col {state.agent[1] + 1}"
        return f"agent {agent}; goal at row {state.goal[0] + 1}, col {state.goal[1] + 1} (counted from the top-left)"
