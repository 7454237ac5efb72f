"""Summary statistics of benchmark results: means with seeded percentile-bootstrap CIs, and paired
differences between methods on the same instances, with the tests behind their verdicts
(:mod:`collabvr.bench.inference`: an exact test on the differing pairs, an equivalence test at a
fixed margin, Holm's adjustment over a table read at once: :func:`holm_family`).

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

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from collabvr.backends.sim.families import DIFFICULTIES, FAMILIES
from collabvr.bench import inference

RESAMPLES = 2000
LEVEL = 0.95
MIN_PAIRS = 10  # below this a percentile bootstrap CI is too unreliable to call a difference


def bootstrap_means(values: Any, *, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """The means of ``resamples`` seeded bootstrap resamples of ``values`` (sorted first, so any order
    of the values gives the same means); empty for no values."""
    data = np.sort(np.asarray(list(values), dtype=float))
    if data.size == 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    return data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)


def bootstrap_ci(values: Any, *, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``: deterministic under ``seed``, and the
    same for any order of the values (they are sorted first).

    One value gives a zero-width interval at that value; no values give (nan, nan).
    """
    means = bootstrap_means(values, seed=seed, resamples=resamples)
    if means.size == 0:
        return (float("nan"), float("nan"))
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
    """``a - b`` over the instances both methods ran, with the tests behind its verdict.

    ``p`` and ``p_equiv`` are what the verdict reads: the raw p-values, or, in a copy made by
    :func:`holm_family`, the Holm-adjusted ones over the ``family`` comparisons read together
    (``p_raw`` and ``p_equiv_raw`` keep the raw ones either way)."""

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
    p: float = 1.0  # the paired permutation test of no difference (inference.permutation_p)
    p_sign: float = 1.0  # the exact sign test of wins against losses, for reference
    p_equiv: float = 1.0  # the equivalence test at inference.MARGIN (inference.tost_p)
    p_raw: float = 1.0
    p_equiv_raw: float = 1.0
    family: int = 1  # comparisons the p-values are adjusted over (1: not adjusted)

    @property
    def differing(self) -> int:
        return self.wins + self.losses

    @property
    def verdict(self) -> str:
        """'above' / 'below' / 'level' / 'not separated' (or 'too few pairs'), from ``p`` and ``p_equiv``:
        see :func:`collabvr.bench.inference.verdict`."""
        return inference.verdict(n=self.n, differing=self.differing, diff=self.diff, p=self.p, p_equiv=self.p_equiv,
                                 min_pairs=MIN_PAIRS)

    @property
    def raw_verdict(self) -> str:
        """The verdict from the unadjusted p-values (what one comparison read alone would say)."""
        return inference.verdict(n=self.n, differing=self.differing, diff=self.diff, p=self.p_raw,
                                 p_equiv=self.p_equiv_raw, min_pairs=MIN_PAIRS)

    def text(self, digits: int = 3) -> str:
        return f"{self.diff:+.{digits}f} [{self.ci[0]:+.{digits}f}, {self.ci[1]:+.{digits}f}]"

    def public(self) -> dict[str, Any]:
        return {**self.__dict__, "ci": list(self.ci), "verdict": self.verdict, "raw_verdict": self.raw_verdict}


def differences(scores_a: dict[Any, float], scores_b: dict[Any, float], keys: Any = None) -> tuple[list[Any], np.ndarray]:
    """(the instances both score, in :func:`matched_pairs`' order; ``a - b`` on them); ``keys`` narrows them further."""
    wanted = None if keys is None else set(keys)
    pairs = [(k, x, y) for k, x, y in matched_pairs(scores_a, scores_b) if wanted is None or k in wanted]
    return [k for k, _, _ in pairs], np.array([x - y for _, x, y in pairs], dtype=float)


def paired(scores_a: dict[Any, float], scores_b: dict[Any, float], *, a: str = "a", b: str = "b", seed: int = 0) -> Paired:
    """The paired difference ``a - b`` on the keys both score (:func:`matched_pairs`), with its bootstrap CI and
    its tests."""
    pairs = matched_pairs(scores_a, scores_b)
    xs = np.array([x for _, x, _ in pairs], dtype=float)
    ys = np.array([y for _, _, y in pairs], dtype=float)
    d = xs - ys
    nan = float("nan")
    means = bootstrap_means(d, seed=seed)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p, p_equiv = inference.permutation_p(d, seed=seed), inference.tost_p(means)
    return Paired(a=a, b=b, n=len(pairs), mean_a=float(xs.mean()) if pairs else nan, mean_b=float(ys.mean()) if pairs else nan,
                  diff=float(d.mean()) if pairs else nan, ci=bootstrap_ci(d, seed=seed),
                  wins=wins, losses=losses, ties=int((d == 0).sum()), p=p, p_sign=inference.sign_test(wins, losses),
                  p_equiv=p_equiv, p_raw=p, p_equiv_raw=p_equiv)


def holm_family(pairs: list[Paired]) -> list[Paired]:
    """The comparisons of one table, read together: copies whose ``p`` and ``p_equiv`` are Holm-adjusted
    over the family (the differences and the equivalences each as one family of tests)."""
    p = inference.holm([x.p_raw for x in pairs])
    p_equiv = inference.holm([x.p_equiv_raw for x in pairs])
    return [replace(x, p=p[i], p_equiv=p_equiv[i], family=len(pairs)) for i, x in enumerate(pairs)]


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
    """(other method, difficulty or 'all', reference - other) for every other method in the results;
    the p-values are Holm-adjusted over all of them, the table they are read in."""
    methods = [m for m in dict.fromkeys(r["method"] for r in results) if m != reference]
    levels = [d for d in DIFFICULTIES if any(r["difficulty"] == d for r in results)]
    out = []
    for other in methods:
        for level in [*levels, "all"]:
            p = paired_methods(results, reference, other, seed=seed, where=lambda r, lv=level: lv == "all" or r["difficulty"] == lv)
            if p.n:
                out.append((other, level, p))
    adjusted = holm_family([p for _, _, p in out])
    return [(other, level, p) for (other, level, _), p in zip(out, adjusted, strict=True)]


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
