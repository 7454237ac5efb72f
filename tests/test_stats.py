"""Bench statistics: bootstraps that do not depend on the order of results.jsonl, and paired
differences on the same instances."""

from __future__ import annotations

import json
import random

import pytest

from collabvr.bench.runner import BenchConfig, run_bench
from collabvr.bench.stats import bootstrap_ci, paired, paired_against, paired_methods, summarize


def _results(order_seed: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for seed in range(30):
        for difficulty in ("easy", "hard"):
            base = rng.random()
            rows.append({"method": "a", "family": "maze", "difficulty": difficulty, "seed": seed, "score": min(1.0, base + 0.05)})
            rows.append({"method": "b", "family": "maze", "difficulty": difficulty, "seed": seed, "score": base})
    random.Random(order_seed).shuffle(rows)  # completion order differs from run to run
    return rows


def test_bootstrap_ci_is_the_same_for_any_order_of_the_values():
    values = [r["score"] for r in _results(0)]
    assert bootstrap_ci(values) == bootstrap_ci(sorted(values)) == bootstrap_ci(values[::-1])


def test_summary_and_paired_digits_do_not_depend_on_the_order_of_results():
    one, two = _results(1), _results(2)
    assert [c.public() for c in summarize(one)] == [c.public() for c in summarize(two)]
    assert paired_against(one, "a") == paired_against(two, "a")


def test_paired_difference_uses_only_instances_both_methods_ran_and_sees_what_separate_cis_miss():
    rows = _results(0)
    p = paired_methods(rows, "a", "b")
    assert p.n == 60 and p.wins > 50 and p.losses == 0
    assert p.diff == pytest.approx(p.mean_a - p.mean_b)
    assert p.verdict == "above"
    # the two separate intervals overlap widely; the paired interval is far from 0
    a, b = (bootstrap_ci([r["score"] for r in rows if r["method"] == m]) for m in "ab")
    assert a[0] < b[1] and p.ci[0] > 0.02
    fewer = paired({("x", 1): 1.0, ("x", 2): 0.0}, {("x", 1): 0.5, ("y", 9): 0.0})
    assert fewer.n == 1 and fewer.diff == 0.5 and fewer.verdict == "too few pairs"


def test_no_difference_is_called_not_distinguishable():
    rows = [{"method": m, "family": "f", "difficulty": "easy", "seed": s, "score": (s * 7 + (m == "a")) % 3 / 2}
            for s in range(40) for m in "ab"]
    assert paired_methods(rows, "a", "b").verdict == "not separated"


def test_bench_summary_reports_paired_differences_against_collabvr(tmp_path):
    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/easy", methods=["single", "collabvr"], n=2, concurrency=2,
                         cache=False, context={"first_clip_seconds": 2.0, "clip_seconds": 1.0})
    run_bench(config)
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert {(p["other"], p["difficulty"], p["a"]) for p in summary["paired"]} == {("single", "easy", "collabvr"), ("single", "all", "collabvr")}
    assert "## Paired differences" in (tmp_path / "b" / "results.md").read_text()
