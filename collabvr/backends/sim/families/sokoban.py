"""Sokoban family: a blue agent pushes one box onto one target in a small walled room."""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from .base import (
    DIRS,
    LOOKAHEAD,
    OPPOSITE,
    Cell,
    DecodeError,
    Family,
    Grid,
    IllegalMove,
    bfs_path,
    cell_votes,
    check_difficulty,
    classify,
    describe_directions,
    direction_pattern,
    fill_disc,
    fill_rect,
    label_centroids,
    lerp,
    manhattan,
    nearest_cell,
    parse_directions,
    sample,
    step,
    walled_board,
)

N = 8  # cells per side, outer walls included
FLOOR, WALL, TARGET = (215, 205, 180), (95, 75, 60), (120, 200, 230)
AGENT, BOX, BOX_ON = (30, 60, 220), (200, 120, 40), (250, 210, 40)
PALETTE = np.array([FLOOR, WALL, TARGET, AGENT, BOX, BOX_ON])
AGENT_RADIUS, BOX_HALF = 0.3, 0.32  # in cells: the cell colour stays visible around both, even mid-slide
_PATTERN = direction_pattern("move|go")


@dataclass(frozen=True)
class SokobanState:
    """walls: N strings of '#' / '.'; agent or box None once vanished."""

    walls: tuple[str, ...]
    agent: Cell | None
    box: Cell | None
    target: Cell

    def is_wall(self, cell: Cell) -> bool:
        r, c = cell
        return not (0 <= r < N and 0 <= c < N) or self.walls[r][c] == "#"


def _free(walls: tuple[str, ...], cell: Cell) -> bool:
    r, c = cell
    return 0 <= r < N and 0 <= c < N and walls[r][c] == "."


def _successors(walls: tuple[str, ...], agent: Cell, box: Cell) -> list[tuple[str, tuple[Cell, Cell]]]:
    out = []
    for mv in DIRS:
        nxt = step(agent, mv)
        if nxt == box:
            beyond = step(box, mv)
            if _free(walls, beyond):
                out.append((mv, (nxt, beyond)))
        elif _free(walls, nxt):
            out.append((mv, (nxt, box)))
    return out


def _distances_to_goal(walls: tuple[str, ...], target: Cell) -> dict[tuple[Cell, Cell], int]:
    """Reverse BFS (walks and pulls) from every solved state: exact distance of each solvable (agent, box)."""
    floor = [(r, c) for r in range(N) for c in range(N) if walls[r][c] == "."]
    dist = {(a, target): 0 for a in floor if a != target}
    queue = deque(dist)
    while queue:
        agent, box = queue.popleft()
        for dr, dc in DIRS.values():
            prev = (agent[0] - dr, agent[1] - dc)
            if not _free(walls, prev) or prev == box:
                continue
            preds = [(prev, box)]
            if box == (agent[0] + dr, agent[1] + dc):
                preds.append((prev, agent))  # the agent pushed the box from `agent` into `box`
            for p in preds:
                if p not in dist:
                    dist[p] = dist[(agent, box)] + 1
                    queue.append(p)
    return dist


@functools.lru_cache(maxsize=4096)
def _solve(state: SokobanState) -> tuple[str, ...] | None:
    path = bfs_path(
        (state.agent, state.box), lambda ab: _successors(state.walls, *ab), lambda ab: ab[1] == state.target
    )
    return None if path is None else tuple(path)


def _random_walls(rng: np.random.Generator) -> tuple[str, ...]:
    wall = np.ones((N, N), dtype=bool)
    wall[1:-1, 1:-1] = False
    for _ in range(int(rng.integers(2, 8))):
        wall[int(rng.integers(1, N - 1)), int(rng.integers(1, N - 1))] = True
    return tuple("".join("#" if w else "." for w in row) for row in wall)


class Sokoban(Family):
    name = "sokoban"
    background = (20, 80, 20)
    lengths = {"easy": (3, 6), "medium": (8, 12), "hard": (14, 20)}

    def generate(self, difficulty: str, rng: np.random.Generator) -> SokobanState:
        check_difficulty(difficulty)
        lo, hi = self.lengths[difficulty]
        while True:
            walls = _random_walls(rng)
            floor = [(r, c) for r in range(N) for c in range(N) if walls[r][c] == "."]
            target = floor[int(rng.integers(len(floor)))]
            dist = _distances_to_goal(walls, target)
            want = int(rng.integers(lo, hi + 1))
            starts = [ab for ab, d in dist.items() if d == want]
            if starts:
                agent, box = starts[int(rng.integers(len(starts)))]
                return SokobanState(walls, agent, box, target)

    def prompt(self, state: SokobanState) -> str:
        return (
            "Push the orange box onto the light-blue target square. The blue agent walks one "
            "cell at a time, can only push the box (never pull it), and cannot walk through walls."
        )

    def _draw(
        self,
        state: SokobanState,
        agent: tuple[float, float] | None,
        box: tuple[float, float] | None,
        box_on: bool,
        size: int,
    ) -> np.ndarray:
        img = walled_board(size, N, self.background, state.walls, WALL, FLOOR, state.target, TARGET).copy()
        grid = Grid(size, N)
        if box is not None:
            (y, x), h = (grid.px(v + 0.5) for v in box), BOX_HALF * grid.cell
            fill_rect(img, y - h, y + h, x - h, x + h, BOX_ON if box_on else BOX)
        if agent is not None:
            fill_disc(img, grid.px(agent[0] + 0.5), grid.px(agent[1] + 0.5), AGENT_RADIUS * grid.cell, AGENT)
        return img

    def render(self, state: SokobanState, size: int = 256) -> np.ndarray:
        return self._draw(state, state.agent, state.box, state.box == state.target, size)

    def render_motion(self, s0: SokobanState, s1: SokobanState, alpha: float, size: int = 256) -> np.ndarray:
        pairs = [(s0.agent, s1.agent), (s0.box, s1.box)]
        shifts = {(b[0] - a[0], b[1] - a[1]) for a, b in pairs if a is not None and b is not None and a != b}
        slides = (
            s0.walls == s1.walls
            and s0.target == s1.target
            and None not in (s0.agent, s0.box, s1.agent, s1.box)
            and len(shifts) == 1
            and manhattan((0, 0), shifts.pop()) == 1
        )  # one object, or a push
        if not slides or alpha <= 0 or alpha >= 1:
            return self.render(s0 if alpha < 0.5 else s1, size)
        box_on = (s0 if alpha < 0.5 else s1).box == s0.target
        return self._draw(
            s0,
            lerp(s0.agent, s1.agent, alpha),
            lerp(s0.box, s1.box, alpha),  # type: ignore[arg-type]
            box_on,
            size,
        )

    def decode(self, frame: np.ndarray) -> SokobanState:
        s = sample(frame, self.background, self.name)
        grid = Grid(frame.shape[0], N)
        labels = classify(s.px, PALETTE)
        votes = cell_votes(labels, s, grid, len(PALETTE))[..., :3]
        if (votes.sum(-1) == 0).any():
            raise DecodeError("sokoban cells not visible")
        kind = votes.argmax(-1)
        targets = np.argwhere(kind == 2)
        if len(targets) != 1:
            raise DecodeError(f"expected one target cell, found {len(targets)}")
        labels[labels == 5] = 4  # a box on the target is still the box
        count, cy, cx = label_centroids(labels, s, len(PALETTE))
        unit = (grid.cell / s.step) ** 2
        if count[3] < 0.3 * np.pi * AGENT_RADIUS**2 * unit:
            raise DecodeError("no agent visible")
        if count[4] < 0.3 * (2 * BOX_HALF) ** 2 * unit:
            raise DecodeError("no box visible")
        walls = tuple("".join("#" if k == 1 else "." for k in row) for row in kind)
        agent, box = nearest_cell(grid, cy[3], cx[3]), nearest_cell(grid, cy[4], cx[4])
        dr, dc = round((cy[4] - cy[3]) / grid.cell), round((cx[4] - cx[3]) / grid.cell)
        if (
            abs(dr) + abs(dc) == 1
        ):  # side by side (maybe mid-push): round the pair together, never half-pushed
            agent = nearest_cell(
                grid, (cy[3] + cy[4] - dr * grid.cell) / 2, (cx[3] + cx[4] - dc * grid.cell) / 2
            )
            box = (agent[0] + dr, agent[1] + dc)
        if agent == box:
            raise DecodeError("agent and box decode to the same cell")
        return SokobanState(walls, agent, box, (int(targets[0][0]), int(targets[0][1])))

    def moves(self, state: SokobanState) -> list[str]:
        if state.agent is None or state.box is None:
            return []
        return [mv for mv, _ in _successors(state.walls, state.agent, state.box)]

    def apply(self, state: SokobanState, move: str) -> SokobanState:
        if state.agent is not None and state.box is not None:
            for mv, (agent, box) in _successors(state.walls, state.agent, state.box):
                if mv == move:
                    return replace(state, agent=agent, box=box)
        raise IllegalMove(f"{move!r} is not legal here; legal: {self.moves(state)}")

    def is_goal(self, state: SokobanState) -> bool:
        return state.box == state.target

    def solve(self, state: SokobanState) -> list[str] | None:
        if state.agent is None or state.box is None:
            return None
        path = _solve(state)
        return None if path is None else list(path)

    def _naive(self, state: SokobanState) -> int:
        return 10 * manhattan(state.box, state.target) + manhattan(state.agent, state.box)  # type: ignore[arg-type]

    def greedy(self, state: SokobanState, rng: np.random.Generator, depth: int = LOOKAHEAD) -> SokobanState:
        """Head for the box and shove it toward the target, ignoring walls and corners when stuck."""
        if state.agent is None or state.box is None or self.is_goal(state):
            return state
        firsts = self.lookahead(state, self._naive, depth)
        if firsts:
            return self.apply(state, firsts[int(rng.integers(len(firsts)))])
        agent, box = state.agent, state.box
        if manhattan(agent, box) > 1:
            toward = [mv for mv in DIRS if manhattan(step(agent, mv), box) < manhattan(agent, box)]
            return replace(state, agent=step(agent, toward[int(rng.integers(len(toward)))]))
        toward = [mv for mv in DIRS if manhattan(step(box, mv), state.target) < manhattan(box, state.target)]
        shoves = [mv for mv in toward if step(box, mv) != agent]
        if shoves:  # the box slides toward the target on its own, whatever side the agent is on
            return replace(state, box=step(box, shoves[int(rng.integers(len(shoves)))]))
        mv = toward[int(rng.integers(len(toward)))]  # the agent stands in the way: it hops round to push
        return replace(state, agent=step(box, OPPOSITE[mv]))

    def violate(self, state: SokobanState, rng: np.random.Generator) -> tuple[SokobanState, str]:
        if state.agent is None or state.box is None:
            raise ValueError("an object has already vanished")
        objects = {"agent": state.agent, "box": state.box}
        taken = set(objects.values())
        options: dict[str, list[tuple[str, Cell | None]]] = {"teleport": [], "wall_pass": [], "vanish": []}
        for name, cell in objects.items():
            options["vanish"].append((name, None))
            options["teleport"] += [
                (name, (r, c))
                for r in range(N)
                for c in range(N)
                if state.walls[r][c] == "."
                and (r, c) not in taken
                and manhattan((r, c), cell) > 1
                and not (name == "box" and (r, c) == state.target)
            ]
            options["wall_pass"] += [
                (name, step(cell, mv))
                for mv in DIRS
                if state.is_wall(step(cell, mv)) and all(0 <= v < N for v in step(cell, mv))
            ]
        kinds = [k for k, v in options.items() if v]
        kind = kinds[int(rng.integers(len(kinds)))]
        name, cell = options[kind][int(rng.integers(len(options[kind])))]
        return replace(state, **{name: cell}), kind

    def parse(self, text: str) -> list[str]:
        return parse_directions(text, _PATTERN)

    def describe(self, moves: list[str]) -> str:
        return describe_directions(moves, "move")

    def state_text(self, state: SokobanState) -> str:
        def where(cell: Cell | None) -> str:
            return "missing" if cell is None else f"at row {cell[0] + 1}, col {cell[1] + 1}"

        return (
            f"agent {where(state.agent)}; box {where(state.box)}; target {where(state.target)} "
            "(counted from the top-left)"
        )
