"""Summary statistics of benchmark results: means with seeded percentile-bootstrap CIs, and paired
differences between methods on the same instances.

Every bootstrap here sorts its data before resampling, so the interval depends on the values
only, never on the order in which episodes finished (``results.jsonl`` is in completion order,
which changes from run to run): a rerun prints the same digits. A claim that one method scores
above another is a paired difference on the instances both ran, with the bootstrap CI of its mean,
not two separate intervals.

An instance is what makes two episodes comparable (:func:`instance`): the sim's (family,
difficulty, seed), a benchmark's (suite, split or category, task, sample, run). Every paired
number goes through :func:`matched_pairs`, and :func:`method_scores` refuses two episodes of one
method on one instance: a key that lumped a benchmark's samples together once made four samples one
"pair".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collabvr.backends.sim.families import DIFFICULTIES, FAMILIES

RESAMPLES = 2000
LEVEL = 0.95
MIN_PAIRS = 10  # below this a percentile bootstrap CI is too unreliable to call a difference


def bootstrap_ci(values: Any, *, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``: deterministic under ``seed``, and the
    same for any order of the values (they are sorted first).

    One value gives a zero-width interval at that value; no values give (nan, nan).
    """
    data = np.sort(np.asarray(list(values), dtype=float))
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


Instance = tuple[Any, ...]


def instance(result: dict[str, Any]) -> Instance:
    """What makes two methods' episodes comparable: the same task instance.

    The sim: (family, difficulty, seed); the seed picks the instance. A benchmark (a line with a
    ``sample``): (suite, split or category, task, sample, run); every sample of a run shares one seed,
    so the seed says nothing there. Lines written before ``suite`` was recorded take it from ``task``.
    """
    if result.get("sample") is None:
        return (result["family"], result["difficulty"], result["seed"])
    suite = result.get("suite") or str(result.get("task") or "").partition(":")[0]
    return (suite, result["family"], result["difficulty"], result["sample"], int(result.get("run") or 0))


def _order(key: Any) -> tuple[str, ...]:
    return tuple(str(part) for part in key) if isinstance(key, tuple) else (str(key),)


def matched_pairs(scores_a: dict[Any, float], scores_b: dict[Any, float]) -> list[tuple[Any, float, float]]:
    """(instance, a's value, b's value) for every instance both sides have, in a fixed order.

    The one place paired statistics find their pairs: the differences, CIs, win/loss counts and
    verdicts of this module (and any test built on them) read these and nothing else.
    """
    keys = sorted(scores_a.keys() & scores_b.keys(), key=_order)
    return [(k, float(scores_a[k]), float(scores_b[k])) for k in keys]


@dataclass(frozen=True)
class Paired:
    """``a - b`` over the instances both methods ran."""

    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float]
    wins: int  # instances where a scored higher
    losses: int
    ties: int

    @property
    def verdict(self) -> str:
        """'above' / 'below' when the CI excludes 0, else 'not distinguishable' (or 'too few pairs')."""
        if self.n < MIN_PAIRS:
            return "too few pairs"
        if self.ci[0] > 0:
            return "above"
        if self.ci[1] < 0:
            return "below"
        return "not distinguishable"

    def text(self, digits: int = 3) -> str:
        return f"{self.diff:+.{digits}f} [{self.ci[0]:+.{digits}f}, {self.ci[1]:+.{digits}f}]"

    def public(self) -> dict[str, Any]:
        return {**self.__dict__, "ci": list(self.ci), "verdict": self.verdict}


def paired(scores_a: dict[Any, float], scores_b: dict[Any, float], *, a: str = "a", b: str = "b", seed: int = 0) -> Paired:
    """The paired difference ``a - b`` on the keys both score (:func:`matched_pairs`), with its bootstrap CI."""
    pairs = matched_pairs(scores_a, scores_b)
    xs = np.array([x for _, x, _ in pairs], dtype=float)
    ys = np.array([y for _, _, y in pairs], dtype=float)
    d = xs - ys
    nan = float("nan")
    return Paired(a=a, b=b, n=len(pairs), mean_a=float(xs.mean()) if pairs else nan, mean_b=float(ys.mean()) if pairs else nan,
                  diff=float(d.mean()) if pairs else nan, ci=bootstrap_ci(d, seed=seed),
                  wins=int((d > 0).sum()), losses=int((d < 0).sum()), ties=int((d == 0).sum()))


def method_scores(results: list[dict[str, Any]], method: str, value: Any = None) -> dict[Instance, float]:
    """One method's per-instance values (its score unless ``value(result)`` says otherwise).

    ValueError when two of its episodes are one instance: pairing would keep one and drop the other.
    """
    get = value or episode_score
    scores: dict[Instance, float] = {}
    for r in results:
        if r["method"] != method:
            continue
        key = instance(r)
        if key in scores:
            raise ValueError(f"two {method} episodes are the same instance {key}: their pairing would be ambiguous")
        scores[key] = float(get(r))
    return scores


def paired_methods(results: list[dict[str, Any]], a: str, b: str, *, seed: int = 0, where: Any = None) -> Paired:
    """``a - b`` in score on the instances of ``results`` both methods ran (``where(result)`` filters)."""
    rows = [r for r in results if where is None or where(r)]
    return paired(method_scores(rows, a), method_scores(rows, b), a=a, b=b, seed=seed)


def paired_against(results: list[dict[str, Any]], reference: str, *, seed: int = 0) -> list[tuple[str, str, Paired]]:
    """(other method, difficulty or 'all', reference - other) for every other method in the results."""
    methods = [m for m in dict.fromkeys(r["method"] for r in results) if m != reference]
    levels = [d for d in DIFFICULTIES if any(r["difficulty"] == d for r in results)]
    out = []
    for other in methods:
        for level in [*levels, "all"]:
            p = paired_methods(results, reference, other, seed=seed, where=lambda r, lv=level: lv == "all" or r["difficulty"] == lv)
            if p.n:
                out.append((other, level, p))
    return out


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
    # the same digits whatever order the episodes finished in
    results = sorted(results, key=lambda r: tuple(str(r.get(k, "")) for k in ("family", "difficulty", "seed", "method")))
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
