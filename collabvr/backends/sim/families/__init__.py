"""The sim task families, keyed by name, and family detection from a frame's border colour."""

from __future__ import annotations

import numpy as np

from .base import DIFFICULTIES, DecodeError, Family, IllegalMove, border_colour, check_frame
from .maze import Maze
from .sokoban import Sokoban
from .sort import Sort
from .tiles import Tiles

FAMILIES: dict[str, Family] = {f.name: f for f in (Maze(), Tiles(), Sokoban(), Sort())}

__all__ = ["DIFFICULTIES", "FAMILIES", "DecodeError", "Family", "IllegalMove", "detect_family", "get_family"]


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown sim family {name!r}; known: {', '.join(FAMILIES)}") from None


def detect_family(frame: np.ndarray) -> Family:
    """The family whose background colour is the frame's border colour (within 40)."""
    check_frame(frame)
    colour = border_colour(frame)
    dist = {f: float(np.linalg.norm(colour - np.array(f.background))) for f in FAMILIES.values()}
    best = min(dist, key=dist.__getitem__)
    if dist[best] > 40:
        raise DecodeError(f"border colour {colour.round().tolist()} matches no sim family")
    return best
