"""Tests behind a claim that one method is above, below or level with another, on paired differences.

The percentile bootstrap CI of :mod:`collabvr.bench.stats` says how large a paired difference is;
it is a poor judge of *whether* there is one when few pairs differ (4 differing pairs out of 200
give a narrow interval that excludes 0, though 4 coin flips landing the same way happen one time
in eight), and it says nothing about a table of 20 comparisons read at once. So a verdict here:

* needs at least :data:`MIN_DIFFERING` pairs that differ, and rests on an exact test of them: a
  paired sign-flip permutation test of the mean difference (:func:`permutation_p`; every sign
  pattern when few pairs differ, else :data:`FLIPS` seeded random ones), with the exact sign
  test (:func:`sign_test`) beside it;
* is adjusted with Holm's step-down method over the family of comparisons read together (one
  table), so the chance of any false "above" or "below" in the table stays under :data:`ALPHA`;
* says "level" only when an equivalence test (two one-sided tests against :data:`MARGIN`, on the
  bootstrap distribution of the mean) rejects a difference of the margin or more; otherwise the
  comparison is "not separated". The margin was fixed here, with this rule, before the stored
  results were judged with it (docs/results-sim.md says when and why it is 0.03).

Break-even points along a knob (:func:`break_even`) get a bootstrap interval over instances and
the share of resamples in which the gain does not cross zero at all (:func:`break_even_bootstrap`).

Every function is deterministic under its seed and sorts its data first, so the digits do not
depend on the order in which episodes finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
MARGIN = 0.03  # equivalence margin in score (0..1): "level" means the mean difference is within +-0.03
MIN_DIFFERING = 10  # below this many differing pairs no verdict is given, whatever the p-value
FLIPS = 20_000  # random sign patterns of the permutation test when there are too many to list
EXACT_UP_TO = 16  # with this many differing pairs or fewer, every one of the 2**k sign patterns is used


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test of wins against losses (ties dropped): p-value."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def permutation_p(diffs: Sequence[float] | np.ndarray, *, seed: int = 0, flips: int = FLIPS) -> float:
    """Two-sided p-value of the paired sign-flip permutation test of mean difference 0.

    Under the null each pair's difference is as likely to have the other sign, so the observed
    |sum| is compared with the |sum| under every sign pattern of the nonzero differences (ties add
    nothing either way). With at most :data:`EXACT_UP_TO` nonzero differences all patterns are used
    and the p-value is exact; otherwise ``flips`` seeded random patterns, counted as
    ``(1 + extreme) / (1 + flips)`` so the p-value is never below its resolution."""
    d = np.sort(np.asarray(diffs, dtype=float))
    d = d[d != 0]
    k = d.size
    if k == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))
    if k <= EXACT_UP_TO:
        patterns = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1) * 2 - 1
        sums = np.abs(patterns @ d)
        return float(np.mean(sums >= observed - tol))
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, flips, 2000):  # in chunks: 2000 x k signs at a time
        signs = rng.integers(0, 2, size=(min(2000, flips - start), k), dtype=np.int8) * 2 - 1
        extreme += int(np.sum(np.abs(signs @ d) >= observed - tol))
    return (1 + extreme) / (1 + flips)


def tost_p(boot_means: np.ndarray, margin: float = MARGIN) -> float:
    """p-value of the equivalence test (two one-sided tests) that the mean difference lies within
    (-margin, +margin), read off the bootstrap distribution of the mean: the larger of the shares
    of resampled means at or beyond either margin, counted as ``(1 + beyond) / (1 + resamples)``.
    Below ALPHA exactly when the (1 - 2 ALPHA) percentile interval lies inside the margins."""
    means = np.asarray(boot_means, dtype=float)
    if means.size == 0:
        return 1.0
    lower = (1 + int(np.sum(means <= -margin))) / (1 + means.size)
    upper = (1 + int(np.sum(means >= margin))) / (1 + means.size)
    return float(min(1.0, max(lower, upper)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (the family-wise error stays under the
    level at which the adjusted values are read); the adjusted values in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def verdict(*, n: int, differing: int, diff: float, p: float, p_equiv: float, min_pairs: int) -> str:
    """'above' / 'below' (p < ALPHA with at least MIN_DIFFERING differing pairs), 'level' (the
    equivalence test passes at MARGIN), else 'not separated'; 'too few pairs' below ``min_pairs``."""
    if n < min_pairs:
        return "too few pairs"
    if differing >= MIN_DIFFERING and p < ALPHA:
        return "above" if diff > 0 else "below"
    if p_equiv < ALPHA:
        return "level"
    return "not separated"


# -- break-even points ------------------------------------------------------------------------------


def break_even(xs: Sequence[float], gains: Sequence[float]) -> float | None:
    """The first x where the gain reaches zero, interpolated linearly between neighbouring settings
    (``xs`` in the order the knob moves); None when it never does."""
    points = list(zip(xs, gains, strict=True))
    for (x0, g0), (x1, g1) in zip(points, points[1:], strict=False):
        if g0 == 0:
            return x0
        if (g0 > 0) != (g1 > 0) or g1 == 0:
            return x0 + (x1 - x0) * g0 / (g0 - g1)
    return None


@dataclass(frozen=True)
class Crossing:
    """A break-even point with its bootstrap interval over instances."""

    point: float | None  # on the data as observed
    ci: tuple[float, float] | None  # percentile interval of the crossings among resamples that cross
    no_cross: float  # share of resamples in which the gain does not reach zero within the settings
    resamples: int

    def text(self, digits: int = 2) -> str:
        fmt = f"{{:.{digits}f}}"
        cross = 1 - self.no_cross
        if self.point is None:
            where = "" if self.ci is None else f"; those that cross do so at {fmt.format(self.ci[0])}–{fmt.format(self.ci[1])}"
            return f"none (no crossing in {_share(self.no_cross)} of resamples{where})"
        ci = "" if self.ci is None else f" [{fmt.format(self.ci[0])}, {fmt.format(self.ci[1])}]"
        return f"≈ {fmt.format(self.point)}{ci} (no crossing in {_share(self.no_cross)} of resamples)" if cross < 1 else \
            f"≈ {fmt.format(self.point)}{ci} (every resample crosses)"


def _share(x: float) -> str:
    """A share as a percentage that never rounds a nonzero part to 0% or 100%."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 <= x < 1:
        return ">99%"
    return f"{x:.0%}"


def break_even_bootstrap(xs: Sequence[float], settings: Sequence[Sequence[np.ndarray]], *, seed: int = 0,
                         resamples: int = 2000, level: float = 0.95) -> Crossing:
    """Where the gain crosses zero along a knob, with a bootstrap over instances.

    ``settings[j]`` holds, at knob value ``xs[j]``, one array of paired differences (reference
    minus a baseline) per baseline, every array over the same instances in the same order. The gain
    at a setting is the smallest mean difference, i.e. the one against the baseline with the
    highest mean there (a single baseline: its mean difference), so a resample re-picks the best
    baseline as the point estimate did. Instances are resampled once per replicate and used at
    every setting, keeping the pairing across settings."""
    arrays = [[np.asarray(d, dtype=float) for d in per] for per in settings]
    n = arrays[0][0].size
    if any(d.size != n for per in arrays for d in per):
        raise ValueError("every setting's differences must be over the same instances")
    point = break_even(xs, [min(float(d.mean()) for d in per) for per in arrays]) if n else None
    if n == 0:
        return Crossing(None, None, 1.0, 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    # (settings, baselines, resamples) means, then the gain per setting and resample
    gains = np.stack([np.min(np.stack([d[idx].mean(axis=1) for d in per]), axis=0) for per in arrays])
    found = [break_even(xs, list(gains[:, r])) for r in range(resamples)]
    crossed = np.array([f for f in found if f is not None], dtype=float)
    ci = None
    if crossed.size:
        alpha = (1 - level) / 2
        lo, hi = np.quantile(crossed, [alpha, 1 - alpha])
        ci = (float(lo), float(hi))
    return Crossing(point, ci, 1 - crossed.size / resamples, resamples)


# -- predictions over uncertain inputs ----------------------------------------------------------------


def predictive_interval(per_draw: Sequence[Sequence[float] | np.ndarray], *, seed: int = 0, resamples: int = 2000,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a mean difference over draws of uncertain inputs and over instances.

    ``per_draw[d]`` holds the paired differences measured with the d-th draw of the inputs (e.g. a
    VLM's error rates drawn from their posteriors). Each replicate picks a draw at random, then
    resamples that draw's instances (sorted first): the interval covers both the spread between
    draws and each draw's sampling error. With every draw alike it is the bootstrap CI of one."""
    draws = [np.sort(np.asarray(d, dtype=float)) for d in per_draw]
    draws = [d for d in draws if d.size]
    if not draws:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(draws), size=resamples)
    means = np.empty(resamples)
    for i, d in enumerate(draws):
        rows = np.flatnonzero(which == i)
        if rows.size:
            means[rows] = d[rng.integers(0, d.size, size=(rows.size, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))
