"""Shared sim plumbing: seeded generators, and reading a world from pixels."""

from __future__ import annotations

import hashlib

import numpy as np

from collabvr.backends.sim.families import FAMILIES, detect_family
from collabvr.backends.sim.families.base import DecodeError, Family
from collabvr.errors import InvalidOutput, UnsupportedTask


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded from the call's inputs, so the same inputs give the same draws."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
        h.update(b"\x00")
    return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))


def family_of(frame: np.ndarray, hint: str | None = None) -> Family:
    """The family shown in a frame; the task's family name is only a hint that must agree."""
    try:
        family = detect_family(frame)
    except DecodeError as exc:
        raise UnsupportedTask(
            "the sim backend only works on sim tasks (sim:FAMILY/DIFFICULTY); this frame is not a sim world"
        ) from exc
    if hint is not None and hint in FAMILIES and FAMILIES[hint] is not family:
        raise UnsupportedTask(f"the frame shows a {family.name} world, not {hint}")
    return family


def read_state(family: Family, frame: np.ndarray, what: str = "frame") -> object:
    try:
        return family.read(frame)
    except DecodeError as exc:
        raise InvalidOutput(f"cannot make out the {family.name} world in the {what}: {exc}") from exc
