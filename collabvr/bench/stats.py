"""Summary statistics of benchmark results: means with seeded percentile-bootstrap CIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collabvr.backends.sim.families import DIFFICULTIES, FAMILIES

RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_ci(values: Any, *, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``: deterministic under ``seed``.

    One value gives a zero-width interval at that value; no values give (nan, nan).
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


@dataclass
class Cell:
    """Aggregates of one method x family x difficulty (or a pooled group)."""

    method: str
    family: str
    difficulty: str
    n: int
    mean_score: float
    ci: tuple[float, float]
    solved_rate: float
    mean_clip_seconds: float
    mean_vgm_calls: float
    mean_vlm_calls: float
    mean_cost: float | None  # None when some episode's backend has no price
    total_cost: float | None
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "results"} | {"ci": list(self.ci)}


def episode_score(result: dict[str, Any]) -> float:
    """An episode's score; an episode that errored or has no score counts as 0."""
    score = result.get("score")
    return float(score) if isinstance(score, int | float) else 0.0


def summarize_group(method: str, family: str, difficulty: str, results: list[dict[str, Any]], *, seed: int = 0) -> Cell:
    scores = [episode_score(r) for r in results]
    computes = [r.get("compute") or {} for r in results]
    costs = [r.get("cost") for r in results]
    known = all(isinstance(c, int | float) for c in costs)
    n = len(results)
    mean = lambda xs: float(np.mean(xs)) if n else float("nan")  # noqa: E731
    return Cell(
        method=method, family=family, difficulty=difficulty, n=n,
        mean_score=mean(scores), ci=bootstrap_ci(scores, seed=seed),
        solved_rate=mean([1.0 if r.get("solved") else 0.0 for r in results]),
        mean_clip_seconds=mean([c.get("clip_seconds", 0.0) for c in computes]),
        mean_vgm_calls=mean([c.get("vgm_calls", 0.0) for c in computes]),
        mean_vlm_calls=mean([c.get("vlm_calls", 0.0) for c in computes]),
        mean_cost=mean(costs) if known else None,
        total_cost=float(sum(costs)) if known else None,
        results=list(results),
    )


def summarize(results: list[dict[str, Any]], *, seed: int = 0) -> list[Cell]:
    """One cell per method x family x difficulty: methods in the order the results first name them,
    then families and difficulties in the simulator's order (easy, medium, hard)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["method"], r["family"], r["difficulty"]), []).append(r)
    methods = list(dict.fromkeys(key[0] for key in groups))
    families = list(FAMILIES)

    def order(key: tuple[str, str, str]) -> tuple:
        method, family, difficulty = key
        return (methods.index(method), families.index(family) if family in families else len(families), family,
                DIFFICULTIES.index(difficulty) if difficulty in DIFFICULTIES else len(DIFFICULTIES), difficulty)

    return [summarize_group(*key, groups[key], seed=seed) for key in sorted(groups, key=order)]
