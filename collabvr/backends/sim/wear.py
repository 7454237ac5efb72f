"""Visible wear: how far a generated frame has drifted, written into its border for the next clip.

A real video model conditioned on one of its own frames inherits that frame's artifacts, so its
errors can carry from one clip into the next. The sim models this only when the VGM knob
``drift_carry`` is above 0: each frame it renders then carries its *wear*, the drift index the
clip had reached there (moves made since a clean frame, scaled by ``drift_carry`` at each new
clip), as eight grey blocks in the top border strip, one bit each. The next clip reads it back
from the conditioning frame's pixels, so the wear survives H.264, checkpoints and the call cache
like any other pixel, and no state is kept between calls. A task's first frame, and any frame
the VGM made with ``drift_carry`` = 0, shows no blocks and reads as wear 0.

The blocks lie in the border margin, outside the board, and are 16 levels of grey off the
family's background: the decoders (and so the simulated VLM and the scorer) read the same state
with or without them (``tests/test_sim_knobs.py``). The simulated VLM cannot see wear, which is
itself an assumption: a real VLM may see a degraded frame.
"""

from __future__ import annotations

import numpy as np

from collabvr.backends.sim.families.base import Grid

BITS = 8
MAX_WEAR = 2**BITS - 1
OFFSET = 16  # grey levels off the background for a set bit
_THRESHOLD = OFFSET / 2


def _blocks(size: int) -> list[tuple[slice, slice]]:
    rows = Grid(size, 1).margin  # the top border strip, outside every family's board
    width = max(8, size // 16)
    return [(slice(0, rows), slice(width * (k + 1), width * (k + 2))) for k in range(BITS)]


def _sign(background: tuple[int, int, int]) -> int:
    return 1 if sum(background) < 3 * 128 else -1


def stamp(frame: np.ndarray, wear: int, background: tuple[int, int, int]) -> np.ndarray:
    """A copy of ``frame`` carrying ``wear`` (clipped to 0..255) in its top border."""
    wear = int(min(MAX_WEAR, max(0, wear)))
    out = frame.copy()
    grey = np.clip(np.array(background, dtype=np.int16) + _sign(background) * OFFSET, 0, 255).astype(np.uint8)
    for bit, (rows, cols) in enumerate(_blocks(frame.shape[0])):
        if wear >> bit & 1:
            out[rows, cols] = grey
    return out


def read(frame: np.ndarray, background: tuple[int, int, int]) -> int:
    """The wear a frame carries (0 for a frame without blocks)."""
    base = float(np.mean(background))
    wear = 0
    for bit, (rows, cols) in enumerate(_blocks(frame.shape[0])):
        if _sign(background) * (float(frame[rows, cols].mean()) - base) > _THRESHOLD:
            wear |= 1 << bit
    return wear
