"""Shared pieces of the sim task families: the Family interface, errors, pixel layout, drawing,
pixel classification and the small action grammar.

Render and decode share one `Grid` layout so pixels map back to cells without hidden state.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

LOOKAHEAD = 4  # moves the greedy visual prior sees ahead (docs/simulator.md)
DIFFICULTIES = ("easy", "medium", "hard")
RGB = tuple[int, int, int]
Cell = tuple[int, int]
DIRS: dict[str, Cell] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
WORK_RES = 128  # decode works on roughly this many samples per side, whatever the frame size
MAX_COLOUR_DIST = 60.0  # farther than this from every palette colour: an edge blend, not a label


class DecodeError(ValueError):
    """The frame does not show a valid state of the family."""


class IllegalMove(ValueError):
    """The move is not legal in the given state."""


def check_difficulty(difficulty: str) -> None:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; valid: {', '.join(DIFFICULTIES)}")


def manhattan(a: Cell, b: Cell) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def step(cell: Cell, move: str) -> Cell:
    dr, dc = DIRS[move]
    return cell[0] + dr, cell[1] + dc


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Grid:
    """An n x n board inside a solid background margin (>= 4 px, so detect_family sees a clean border)."""

    size: int
    n: int

    @property
    def margin(self) -> int:
        return max(4, self.size // 32)

    @property
    def cell(self) -> float:
        return (self.size - 2 * self.margin) / self.n

    def px(self, v: float) -> float:
        """Pixel coordinate of a (fractional) cell coordinate."""
        return self.margin + v * self.cell

    def index(self, coords: np.ndarray) -> np.ndarray:
        """Cell index of pixel-centre coordinates; -1 outside the board."""
        idx = np.floor((coords - self.margin) / self.cell).astype(np.int64)
        return np.where((idx >= 0) & (idx < self.n), idx, -1)


# --------------------------------------------------------------------------- drawing


def blank_frame(size: int, background: RGB) -> np.ndarray:
    if size < 128 or size % 2:
        raise ValueError(f"size must be even and >= 128, got {size}")
    return np.full((size, size, 3), background, dtype=np.uint8)


def paint_cells(img: np.ndarray, grid: Grid, colours: np.ndarray) -> None:
    """Fill every board cell with colours[r, c] (an (n, n, 3) array), vectorised."""
    centres = np.arange(grid.size) + 0.5
    idx = grid.index(centres)
    inside = np.flatnonzero(idx >= 0)
    lo, hi = inside[0], inside[-1] + 1
    widths = np.bincount(idx[lo:hi], minlength=grid.n)  # pixels per cell row/column (idx rises)
    img[lo:hi, lo:hi] = np.repeat(np.repeat(colours, widths, axis=0), widths, axis=1)


@functools.lru_cache(maxsize=64)
def walled_board(
    size: int, n: int, background: RGB, walls: tuple[str, ...], wall: RGB, floor: RGB, mark: Cell, mark_colour: RGB
) -> np.ndarray:
    """The still part of a walled grid world ('#' walls, floor, one marked cell), read-only.

    Frames copy it and draw what moves on top: a clip shows the same board in every frame, and
    painting it was most of a frame's rendering time."""
    img = blank_frame(size, background)
    colours = np.array([[wall if ch == "#" else floor for ch in row] for row in walls], np.uint8)
    colours[mark] = mark_colour
    paint_cells(img, Grid(size, n), colours)
    img.flags.writeable = False
    return img


def fill_rect(img: np.ndarray, y0: float, y1: float, x0: float, x1: float, colour: RGB) -> None:
    h, w = img.shape[:2]
    ys, ye = max(0, round(y0)), min(h, round(y1))
    xs, xe = max(0, round(x0)), min(w, round(x1))
    img[ys:ye, xs:xe] = colour


def fill_disc(img: np.ndarray, cy: float, cx: float, r: float, colour: RGB) -> None:
    h, w = img.shape[:2]
    y0, y1 = max(0, int(cy - r) - 1), min(h, int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    mask = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r
    img[y0:y1, x0:x1][mask] = colour


def lerp(a: Cell, b: Cell, alpha: float) -> tuple[float, float]:
    return a[0] + alpha * (b[0] - a[0]), a[1] + alpha * (b[1] - a[1])


# --------------------------------------------------------------------------- decoding helpers


def border_colour(frame: np.ndarray) -> np.ndarray:
    """Median colour of the 4-pixel border strip (the family's background)."""
    k = max(1, frame.shape[0] // WORK_RES)
    strips = [frame[:4, ::k], frame[-4:, ::k], frame[::k, :4], frame[::k, -4:]]
    return np.median(np.concatenate([s.reshape(-1, 3) for s in strips]), axis=0)


def check_frame(frame: Any) -> int:
    """Validate shape/dtype and return the frame size."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise DecodeError("expected an (H, W, 3) array")
    if frame.shape[0] != frame.shape[1] or frame.shape[0] < 64:
        raise DecodeError(f"expected a square frame of at least 64 px, got {frame.shape}")
    if frame.dtype != np.uint8:
        raise DecodeError(f"expected uint8 pixels, got {frame.dtype}")
    return frame.shape[0]


@dataclass(frozen=True)
class Samples:
    """A subsampled view of a frame: pixels plus their pixel-centre coordinates in the full frame."""

    px: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    step: int


def sample(frame: Any, background: RGB, family: str) -> Samples:
    """Subsample a frame for decoding, after checking it carries this family's border."""
    size = check_frame(frame)
    if np.linalg.norm(border_colour(frame) - np.array(background)) > 40:
        raise DecodeError(f"border colour is not the {family} background")
    k = max(1, size // WORK_RES)
    off = k // 2
    px = frame[off::k, off::k]
    coords = off + np.arange(px.shape[0]) * k + 0.5
    return Samples(px, coords, coords[: px.shape[1]], k)


@functools.lru_cache(maxsize=16)
def _label_table(palette: bytes, max_dist: float) -> np.ndarray:
    """Label of every 5-bit-per-channel colour bucket (at its centre): decoding becomes one table lookup."""
    pal = np.frombuffer(palette, dtype=np.int64).reshape(-1, 3).astype(np.float64)
    levels = np.arange(32) * 8 + 3.5
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)
    d2 = ((grid - pal) ** 2).sum(-1)
    labels = d2.argmin(1)
    labels[d2.min(1) > max_dist * max_dist] = -1
    return labels.astype(np.int64)


def classify(px: np.ndarray, palette: np.ndarray, max_dist: float = MAX_COLOUR_DIST) -> np.ndarray:
    """Nearest-palette label per pixel; -1 where no palette colour is close (blends, noise)."""
    table = _label_table(palette.astype(np.int64).tobytes(), max_dist)
    q = (px >> 3).astype(np.uint16)  # 5 bits a channel: the 15-bit bucket index fits in uint16
    return table.take((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2])


@functools.lru_cache(maxsize=16)
def _sample_cells(grid: Grid, ys: bytes, xs: bytes) -> np.ndarray:
    """The board cell (r * n + c) under every sample, -1 outside the board; the same for every
    frame of a size, so it is worked out once (read-only: shared by every caller)."""
    r, c = grid.index(np.frombuffer(ys)), grid.index(np.frombuffer(xs))
    cells = np.where((r >= 0)[:, None] & (c >= 0)[None, :], r[:, None] * grid.n + c[None, :], -1)
    cells.flags.writeable = False
    return cells


def cell_votes(labels: np.ndarray, s: Samples, grid: Grid, n_labels: int) -> np.ndarray:
    """(n, n, n_labels) counts of each label inside each cell."""
    cells = _sample_cells(grid, s.ys.tobytes(), s.xs.tobytes())
    valid = (cells >= 0) & (labels >= 0)
    counts = np.bincount((cells * n_labels + labels)[valid], minlength=grid.n * grid.n * n_labels)
    return counts.reshape(grid.n, grid.n, n_labels)


@functools.lru_cache(maxsize=16)
def _line_offsets(rows: int, cols: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, its row times ``stride`` and its column times ``stride`` (read-only)."""
    by_row = np.repeat(np.arange(rows) * stride, cols).reshape(rows, cols)
    by_col = np.tile(np.arange(cols) * stride, rows).reshape(rows, cols)
    for plane in (by_row, by_col):
        plane.flags.writeable = False
    return by_row, by_col


def label_centroids(
    labels: np.ndarray, s: Samples, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label pixel counts and centroid (y, x) in full-frame pixels (nan where absent).

    Counted per sample row and per sample column, then weighted by their coordinates. Sample
    coordinates are half-integers, so every sum is exact and the centroids do not depend on the
    order of the additions."""
    stride = n_labels + 1
    flat = labels + 1  # -1 (no label) lands in column 0, dropped below
    rows, cols = labels.shape
    by_row, by_col = _line_offsets(rows, cols, stride)
    per_row = np.bincount((by_row + flat).ravel(), minlength=rows * stride).reshape(rows, stride)[:, 1:]
    per_col = np.bincount((by_col + flat).ravel(), minlength=cols * stride).reshape(cols, stride)[:, 1:]
    count = per_row.sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (per_row * s.ys[:, None]).sum(0) / count
        cx = (per_col * s.xs[:, None]).sum(0) / count
    return count, cy, cx


def nearest_cell(grid: Grid, y: float, x: float) -> Cell:
    """The cell whose centre is nearest a centroid (clamped to the board)."""
    r = int(np.clip(np.floor((y - grid.margin) / grid.cell), 0, grid.n - 1))
    c = int(np.clip(np.floor((x - grid.margin) / grid.cell), 0, grid.n - 1))
    return r, c


# --------------------------------------------------------------------------- search


def bfs_path(
    start: Hashable, successors: Callable[[Any], Iterable[tuple[str, Any]]], is_goal: Callable[[Any], bool]
) -> list[str] | None:
    """Shortest move list from start to a goal node (moves in successor order), or None."""
    parent: dict[Hashable, tuple[Hashable, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if is_goal(node):
            path: list[str] = []
            while parent[node] is not None:
                node, move = parent[node]  # type: ignore[misc]
                path.append(move)
            return path[::-1]
        for move, nxt in successors(node):
            if nxt not in parent:
                parent[nxt] = (node, move)
                queue.append(nxt)
    return None


def bfs_distances(start: Hashable, successors: Callable[[Any], Iterable[Any]]) -> dict[Any, int]:
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in successors(node):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return dist


# --------------------------------------------------------------------------- grammar

_CORRECTION = re.compile(r"^[ \t]*correction\s*:", re.IGNORECASE | re.MULTILINE)
_SEPARATORS = re.compile(r"[,;.\n]|\bthen\b", re.IGNORECASE)
LEAD = r"(?:[-*•]\s*|step\s*\d+\s*:\s*)?(?:(?:and|please|now|first|next|finally)\s+)*"


def segments(text: str) -> list[str]:
    """Lower-cased action segments of a prompt, dropping everything from a 'Correction:' line on."""
    m = _CORRECTION.search(text)
    if m:
        text = text[: m.start()]
    return [s.strip().lower() for s in _SEPARATORS.split(text) if s.strip()]


def direction_pattern(verbs: str) -> re.Pattern[str]:
    """'<verb> up', 'up', with optional count: 'up 3 times', 'up x3', 'up 2'."""
    count = r"(?:\s*[x×]\s*(\d{1,2})|\s+(\d{1,2})(?:\s*times?)?)?"
    return re.compile(rf"{LEAD}(?:(?:{verbs})\s+)?(up|down|left|right){count}\s*!*")


def parse_directions(text: str, pattern: re.Pattern[str]) -> list[str]:
    moves: list[str] = []
    for seg in segments(text):
        m = pattern.fullmatch(seg)
        if m:
            moves += [m.group(1)] * int(m.group(2) or m.group(3) or 1)
    return moves


def describe_directions(moves: list[str], verb: str) -> str:
    """Run-length action text, e.g. 'move up 2 times, then move left'."""
    runs: list[list[Any]] = []
    for mv in moves:
        if runs and runs[-1][0] == mv:
            runs[-1][1] += 1
        else:
            runs.append([mv, 1])
    return ", then ".join(f"{verb} {mv}" + (f" {n} times" if n > 1 else "") for mv, n in runs)


# --------------------------------------------------------------------------- interface


_READ_LIMIT = 8192  # decoded frames remembered by Family.read, across families (a few MB of states)
MEMO_MAX_SIDE = 2 * WORK_RES  # larger frames cost more to hash than to decode (Family.read)
_read_memo: OrderedDict[tuple[str, tuple[int, ...], bytes], tuple[bool, Any]] = OrderedDict()
_read_lock = threading.Lock()


def forget_reads() -> None:
    """Empty the memory of ``Family.read`` (benchmarks that compare two runs of the same frames)."""
    with _read_lock:
        _read_memo.clear()


class Family(ABC):
    """A puzzle world the simulator can render, decode from pixels, and reason about."""

    name: str
    background: RGB
    lengths: dict[str, tuple[int, int]]

    @abstractmethod
    def generate(self, difficulty: str, rng: np.random.Generator) -> Any: ...

    @abstractmethod
    def prompt(self, state: Any) -> str: ...

    @abstractmethod
    def render(self, state: Any, size: int = 256) -> np.ndarray: ...

    @abstractmethod
    def render_motion(self, s0: Any, s1: Any, alpha: float, size: int = 256) -> np.ndarray: ...

    @abstractmethod
    def decode(self, frame: np.ndarray) -> Any: ...

    @abstractmethod
    def moves(self, state: Any) -> list[str]: ...

    @abstractmethod
    def apply(self, state: Any, move: str) -> Any: ...

    @abstractmethod
    def is_goal(self, state: Any) -> bool: ...

    @abstractmethod
    def solve(self, state: Any) -> list[str] | None: ...

    @abstractmethod
    def greedy(self, state: Any, rng: np.random.Generator, depth: int = LOOKAHEAD) -> Any:
        """One move of the greedy visual prior, seeing ``depth`` moves ahead (:meth:`lookahead`)."""

    @abstractmethod
    def violate(self, state: Any, rng: np.random.Generator) -> tuple[Any, str]: ...

    @abstractmethod
    def parse(self, text: str) -> list[str]: ...

    @abstractmethod
    def describe(self, moves: list[str]) -> str: ...

    @abstractmethod
    def state_text(self, state: Any) -> str: ...

    def read(self, frame: np.ndarray) -> Any:
        """``decode(frame)``, remembered by the frame's content (states are immutable).

        The same pixels are read many times: the verifier reads a clip, the scorer reads it again
        inside the final video (which shows exactly the clips' pixels), and the planner and the
        video model read its last frame. Decoding is the simulator's largest CPU cost, and at
        128 px a content hash costs about a twentieth of it. Decoding works on about ``WORK_RES``
        samples a side whatever the frame size, while hashing reads every pixel, so frames larger
        than ``MEMO_MAX_SIDE`` a side are decoded afresh each time. A frame that does not decode
        raises the same ``DecodeError`` every time.
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.size > 3 * MEMO_MAX_SIDE**2:
            return self.decode(frame)  # decode names any problem
        data = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
        key = (self.name, frame.shape, hashlib.sha1(data, usedforsecurity=False).digest())
        with _read_lock:
            known = _read_memo.get(key)
            if known is not None:
                _read_memo.move_to_end(key)
        if known is None:
            try:
                known = (True, self.decode(frame))
            except DecodeError as exc:
                known = (False, str(exc))
            with _read_lock:
                _read_memo[key] = known
                while len(_read_memo) > _READ_LIMIT:
                    _read_memo.popitem(last=False)
        ok, value = known
        if not ok:
            raise DecodeError(value)
        return value

    def transition_ok(self, s0: Any, s1: Any) -> bool:
        return s1 == s0 or any(self.apply(s0, m) == s1 for m in self.moves(s0))

    def distance(self, state: Any) -> int | None:
        path = self.solve(state)
        return None if path is None else len(path)

    def lookahead(self, state: Any, naive: Callable[[Any], float], depth: int = LOOKAHEAD) -> list[str]:
        """First moves of the legal sequences of up to ``depth`` moves that get closest to the goal
        by a naive measure, if that beats standing still. The greedy visual prior of a video
        model: it sees a few moves ahead, never a whole plan."""
        frontier: list[tuple[Any, str | None]] = [(state, None)]
        seen = {state}
        best, firsts = naive(state), []
        for _ in range(depth):
            nxt = []
            for current, first in frontier:
                for mv in self.moves(current):
                    after = self.apply(current, mv)
                    if after in seen:
                        continue
                    seen.add(after)
                    head = first or mv
                    score = naive(after)
                    if score < best:
                        best, firsts = score, [head]
                    elif score == best and firsts and head not in firsts:
                        firsts.append(head)
                    nxt.append((after, head))
            frontier = nxt
        return sorted(firsts)

    def wrong_move(self, state: Any, move: str, rng: np.random.Generator) -> str | None:
        others = [m for m in self.moves(state) if m != move]
        return others[int(rng.integers(len(others)))] if others else None

    def vocabulary(self) -> tuple[str, ...]:
        """Every move the family's grammar can name, legal or not somewhere (directions by default)."""
        return tuple(DIRS)

    def illegal_move(self, state: Any, rng: np.random.Generator) -> str | None:
        """A move the grammar can name that is illegal in ``state`` (into a wall, off the board), at
        random; None when every move of the vocabulary is legal there."""
        legal = set(self.moves(state))
        illegal = [m for m in self.vocabulary() if m not in legal]
        return illegal[int(rng.integers(len(illegal)))] if illegal else None

    def __repr__(self) -> str:
        return f"<Family {self.name}>"
