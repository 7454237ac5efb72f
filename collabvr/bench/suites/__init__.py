"""Benchmark suites: which samples a ``--suite`` spec names, each as a :class:`Task` with its metadata.

* ``sim``, ``sim:FAMILY``, ``sim:FAMILY/DIFFICULTY``: the simulator; the seed picks the instance.
* ``vbvr:DIR[:SPLIT[/TASK]]``: VBVR-Bench as downloaded (:mod:`.vbvr`).
* ``genvire:DIR[:CATEGORY[/SUBTASK]]``: Gen-ViRe, a clone of its toolkit or a local dataset export (:mod:`.genvire`).

A suite yields :class:`Sample` rows. ``family``/``difficulty`` are the two table keys every
results line carries (for VBVR the split and task folder, for Gen-ViRe the main category and
subtask), so the runner, resume and tables need no suite-specific code; ``id`` names a benchmark
sample (None for sim, where the seed is the instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from collabvr.errors import BadInput
from collabvr.task import Task


@dataclass(frozen=True)
class Sample:
    """One row of a suite: the table keys, the sample id (benchmarks) or the seed (sim)."""

    family: str
    difficulty: str
    id: str | None = None
    seed: int = 0


def first_per_group(groups: list[tuple[str, str, str]], n: int, seed: int) -> list[Sample]:
    """Samples for the first ``n`` rows of each (family, difficulty) group, in the suite's order;
    ``groups`` holds one (family, difficulty, sample id) per row."""
    out, seen = [], {}
    for family, difficulty, key in groups:
        seen[(family, difficulty)] = seen.get((family, difficulty), 0) + 1
        if seen[(family, difficulty)] <= n:
            out.append(Sample(family, difficulty, key, seed))
    return out


class Suite(Protocol):
    """What the bench runner needs of a suite."""

    kind: str  # "sim", "vbvr" or "genvire"
    spec: str

    def samples(self, n: int, seed: int) -> list[Sample]:
        """The samples to run: sim, seeds seed..seed+n-1 per cell; benchmarks, the first n per task."""
        ...

    def task(self, sample: Sample, size: int) -> Task:
        """The task of one sample."""
        ...


def parse_suite(spec: str, *, all_samples: bool = False) -> Suite:
    """The suite a spec names; BadInput naming the spec and what is accepted if it is unknown or its data is bad.

    ``all_samples`` (Gen-ViRe): every id of the eval jsons, not only the official three per subtask.
    """
    kind = spec.strip().partition(":")[0]
    if all_samples and kind != "genvire":
        raise BadInput(f"--all-samples widens a Gen-ViRe suite to every id of its eval jsons; suite {spec!r} is not one")
    if kind == "sim":
        from collabvr.bench.suites.sim import SimSuite

        return SimSuite.parse(spec)
    if kind == "vbvr":
        from collabvr.bench.suites.vbvr import VBVRSuite

        return VBVRSuite.parse(spec)
    if kind == "genvire":
        from collabvr.bench.suites.genvire import GenViReSuite

        return GenViReSuite.parse(spec, all_samples=all_samples)
    raise BadInput(f"unknown suite {spec!r}: use sim, sim:FAMILY, sim:FAMILY/DIFFICULTY, vbvr:DIR, vbvr:DIR:SPLIT/TASK, "
                   "genvire:DIR or genvire:DIR:CATEGORY/SUBTASK (docs/benchmarks.md)")


__all__ = ["Sample", "Suite", "parse_suite"]
