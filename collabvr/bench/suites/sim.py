"""The sim suite: which (family, difficulty) cells a spec names.

``sim`` is every sim family at every difficulty; ``sim:maze`` every difficulty of one family;
``sim:maze/hard`` one cell. Episodes of a cell use seeds ``seed .. seed+n-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from collabvr.backends.sim.families import FAMILIES
from collabvr.bench.suites import Sample
from collabvr.errors import BadInput
from collabvr.task import Task


def sim_cells(spec: str) -> list[tuple[str, str]]:
    """The (family, difficulty) cells of a sim suite spec, in a fixed order; BadInput if unknown."""
    kind, _, rest = spec.strip().partition(":")
    if kind != "sim":
        raise BadInput(f"unknown suite {spec!r}: use sim, sim:FAMILY or sim:FAMILY/DIFFICULTY (families: {', '.join(FAMILIES)})")
    family, _, difficulty = rest.partition("/")
    if not family:
        return [(f, d) for f in FAMILIES for d in FAMILIES[f].lengths]
    if family not in FAMILIES:
        raise BadInput(f"unknown suite {spec!r}: no sim family {family!r}; known: {', '.join(FAMILIES)}")
    levels = list(FAMILIES[family].lengths)
    if difficulty and difficulty not in levels:
        raise BadInput(f"unknown suite {spec!r}: no difficulty {difficulty!r}; known: {', '.join(levels)}")
    return [(family, d) for d in ([difficulty] if difficulty else levels)]


@dataclass(frozen=True)
class SimSuite:
    spec: str
    cells: tuple[tuple[str, str], ...]
    kind: str = "sim"

    @classmethod
    def parse(cls, spec: str) -> SimSuite:
        return cls(spec, tuple(sim_cells(spec)))

    def samples(self, n: int, seed: int) -> list[Sample]:
        return [Sample(f, d, None, s) for f, d in self.cells for s in range(seed, seed + n)]

    def task(self, sample: Sample, size: int) -> Task:
        return Task.sim(f"{sample.family}/{sample.difficulty}", seed=sample.seed, size=size)
