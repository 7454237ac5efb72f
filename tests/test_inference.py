"""Verdicts on paired differences: exact tests on the differing pairs, Holm over a table, equivalence
at a fixed margin, break-even points with bootstrap intervals; each on synthetic results with a
known answer."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from collabvr.bench.inference import (
    MARGIN,
    break_even,
    break_even_bootstrap,
    holm,
    permutation_p,
    sign_test,
    tost_p,
)
from collabvr.bench.results import read_run
from collabvr.bench.stats import bootstrap_means, holm_family, paired, paired_against, paired_methods


def _rows(method: str, scores: list[float], difficulty: str = "easy") -> list[dict]:
    return [{"method": method, "family": "maze", "difficulty": difficulty, "seed": i, "score": s} for i, s in enumerate(scores)]


def _write(tmp_path, rows: list[dict]):
    path = tmp_path / "results.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_four_differing_pairs_out_of_200_are_not_called_significant(tmp_path):
    """The bootstrap interval of 4 losses among 196 ties excludes 0; the exact tests do not reject."""
    a = [1.0] * 200
    b = [1.0] * 196 + [0.0] * 4  # b "loses" 4 of 200: a - b is +1 on 4 pairs
    results = read_run(_write(tmp_path, _rows("a", b) + _rows("b", a)))  # a - b = -1 on 4 pairs
    p = paired_methods(results, "a", "b")
    assert (p.wins, p.losses, p.ties) == (0, 4, 196)
    assert p.ci[1] < 0  # the percentile bootstrap alone would call it "below"
    assert p.p_raw == pytest.approx(2 / 16)  # every sign pattern of the 4: exact
    assert p.p_sign == pytest.approx(2 / 16)
    assert p.verdict == p.raw_verdict != "below"


def test_ten_differing_pairs_all_one_way_are_a_verdict_and_nine_are_not():
    for k, want in ((10, "above"), (9, "not separated")):
        p = paired({i: 1.0 if i < k else 0.5 for i in range(200)}, {i: 0.5 for i in range(200)})
        assert p.p_raw == pytest.approx(2 / 2**k)
        assert p.verdict == want, k  # 9 of 9 one way has p = 0.004, but 9 differing pairs are too few


def test_exact_and_random_sign_flips_agree_and_the_sign_test_is_binomial():
    d = np.array([0.3, 0.2, -0.1, 0.4, 0.25, 0.1, -0.05, 0.2, 0.3, 0.15, 0.2, 0.1])
    exact = permutation_p(d)
    assert 0 < exact < 0.05
    assert permutation_p(np.tile(d, 2)) < exact  # more of the same evidence
    assert permutation_p(d[::-1]) == exact  # order does not matter
    assert sign_test(10, 2) == pytest.approx(2 * sum(__import__("math").comb(12, i) for i in range(3)) / 2**12)
    assert sign_test(0, 0) == 1.0 and permutation_p([0.0, 0.0]) == 1.0
    # with many differing pairs the random flips estimate the same p-value
    rng = np.random.default_rng(1)
    many = rng.normal(0.05, 0.3, 80)
    big = permutation_p(many)
    assert big == pytest.approx(permutation_p(many, seed=7), abs=0.01)


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.2, 0.2, 0.2, 0.2, 0.2, 0.2]) == [1.0] * 6


def test_holm_over_the_table_flips_a_raw_verdict(tmp_path):
    """One real-looking lead among 20 comparisons: significant alone, not once the table is read whole."""
    rng = np.random.default_rng(0)
    n = 100
    base = np.full(n, 0.5)
    lead = np.zeros(n)
    lead[:30], lead[30:44] = 0.5, -0.5  # 30 wins and 14 losses of half a point: p about 0.02 alone
    rows = _rows("ref", list(base)) + _rows("lead", list(base - lead))
    for j in range(19):  # the other comparisons: a few differing pairs either way
        rows += _rows(f"null{j}", list(base + np.where(rng.random(n) < 0.1, rng.choice([-0.5, 0.5], n), 0.0)))
    results = read_run(_write(tmp_path, rows))
    table = {other: p for other, level, p in paired_against(results, "ref") if level == "all"}
    assert len(table) == 20 and table["lead"].family == 40  # easy and "all" rows: 20 methods x 2
    lead_p = table["lead"]
    assert lead_p.p_raw < 0.05 and lead_p.raw_verdict == "above"
    assert lead_p.p >= 0.05 and lead_p.verdict == "not separated"


def test_equivalence_needs_the_interval_inside_the_margin():
    rng = np.random.default_rng(0)
    tiny = {i: 0.5 + float(rng.normal(0, 0.02)) for i in range(300)}  # tiny differences around 0
    wide = {i: 0.5 + float(rng.choice([-0.5, 0.5])) * (i % 2) for i in range(300)}  # large ones, mean near 0
    zero = {i: 0.5 for i in range(300)}
    level = paired(tiny, zero)
    assert abs(level.diff) < MARGIN and level.verdict == "level"
    unsure = paired(wide, zero)
    assert abs(unsure.diff) < MARGIN and unsure.verdict == "not separated"
    # the TOST p-value is the larger share of resampled means at or beyond a margin
    assert tost_p(np.array([0.0] * 99 + [0.05])) == pytest.approx(2 / 101)
    assert tost_p(bootstrap_means([0.05] * 50)) == 1.0


def test_an_adjusted_family_keeps_the_raw_p_values():
    ps = [paired({i: 1.0 if i < k else 0.0 for i in range(100)}, {i: 0.0 for i in range(100)}) for k in (12, 0, 30)]
    adjusted = holm_family(ps)
    assert [p.p_raw for p in adjusted] == [p.p_raw for p in ps]
    assert all(a.p >= a.p_raw for a in adjusted) and {a.family for a in adjusted} == {3}


def test_break_even_interpolates_and_its_bootstrap_counts_resamples_that_do_not_cross():
    assert break_even([0.0, 0.5, 1.0], [0.2, 0.1, -0.1]) == pytest.approx(0.75)
    assert break_even([0.0, 0.5], [0.2, 0.1]) is None
    n = 120
    exact = break_even_bootstrap([0.0, 1.0], [[np.full(n, 0.2)], [np.full(n, -0.2)]])
    assert exact.point == pytest.approx(0.5) and exact.ci == pytest.approx((0.5, 0.5)) and exact.no_cross == 0.0
    rng = np.random.default_rng(0)
    noisy = [[rng.normal(0.2, 0.5, n)], [rng.normal(0.05, 0.5, n)], [rng.normal(-0.02, 0.5, n)]]
    crossing = break_even_bootstrap([0.0, 0.15, 0.3], noisy, seed=0)
    assert crossing.ci is not None and crossing.ci[0] < crossing.ci[1]
    assert 0.0 < crossing.no_cross < 0.9  # some resamples stay above zero up to 0.3
    assert "no crossing in" in crossing.text()


def test_break_even_against_the_best_of_several_baselines_repicks_it_per_resample():
    n = 50
    ours_minus = [[np.full(n, 0.3), np.full(n, 0.1)], [np.full(n, 0.1), np.full(n, -0.1)]]  # the second baseline is best
    c = break_even_bootstrap([0.0, 1.0], ours_minus)
    assert c.point == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same instances"):
        break_even_bootstrap([0.0, 1.0], [[np.zeros(3)], [np.zeros(4)]])


def test_a_predictive_interval_over_draws_widens_with_the_spread_between_draws():
    from collabvr.bench.inference import predictive_interval
    from collabvr.bench.stats import bootstrap_ci

    rng = np.random.default_rng(0)
    one = rng.normal(0.1, 0.3, 100)
    alike = predictive_interval([one, one, one, one])
    assert alike == pytest.approx(bootstrap_ci(one), abs=0.01)
    apart = predictive_interval([one - 0.2, one - 0.1, one + 0.1, one + 0.2])
    assert apart[1] - apart[0] > 1.5 * (alike[1] - alike[0])
    assert apart[0] < alike[0] and apart[1] > alike[1]


def test_the_page_table_bolds_only_what_the_adjusted_test_calls(tmp_path):
    from benchmarks.pool import page_table

    rows = _rows("ref", [1.0] * 200) + _rows("four", [1.0] * 196 + [0.0] * 4) + _rows("many", [1.0] * 150 + [0.0] * 50)
    text = page_table(paired_against(read_run(_write(tmp_path, rows)), "ref"), "ref")
    four = next(line for line in text.splitlines() if line.startswith("| four"))
    many = next(line for line in text.splitlines() if line.startswith("| many"))
    assert "**" not in four and "+0.020 [+0.005, +0.040]" in four  # its bootstrap CI excludes 0; the exact test does not
    assert many.count("**") == 4 and "over the 4 comparisons" in text
