"""benchmarks/cost_matched.py: each baseline gets, per instance, the dollars CollabVR spent there."""

from __future__ import annotations

import pytest

from benchmarks.cost import HORIZON_S
from benchmarks.cost_matched import BASELINES, NO_VIDEO, budgets, main, spend, videos
from collabvr.bench.results import read_results

PRO = ("veo-3.1-generate-001", "gemini-2.5-pro")


def test_the_dollars_buy_the_most_whole_videos_whose_worst_case_fits():
    one_video = 12 * 0.20  # $2.40 of Veo 3.1
    _, posthoc, _ = BASELINES["posthoc_critique"]
    _, pass_k, _ = BASELINES["pass@8"]
    assert videos(one_video, posthoc, 8, *PRO, 0) == 1  # one video, no critique
    assert videos(one_video, pass_k, 8, *PRO, 0) == 0  # and a selection call that does not fit
    assert videos(2 * one_video + 0.1, posthoc, 8, *PRO, 0) == 2
    assert videos(2 * one_video + 0.1, posthoc, 8, *PRO, 20_000) == 1  # thinking 20k tokens a call: the critique no longer fits
    assert videos(1000.0, pass_k, 8, *PRO, 0) == 8  # never more than the method can make
    reference = [{"method": "collabvr", "family": "maze", "difficulty": "easy", "seed": s,
                  "compute": {"clip_seconds": secs, "vlm_plan_calls": 3, "vlm_verify_calls": 4}}
                 for s, secs in enumerate((9.0, 12.0, 27.0))]
    per = budgets(reference, "posthoc_critique", *PRO, 1000)
    assert per == {"maze/easy/0": NO_VIDEO, "maze/easy/1": HORIZON_S, "maze/easy/2": 2 * HORIZON_S}


def test_a_matched_run_never_spends_more_than_collabvr_and_the_second_price_set_reuses_equal_budgets(tmp_path):
    text = main(["docs/results/runs/weak-accurate.jsonl.gz", "--suite", "sim:sort/hard", "--n", "3", "--out", str(tmp_path)])
    for name in ("pro", "flash"):
        rows = [r for m in BASELINES for r in read_results(tmp_path / name / m / "results.jsonl")]
        assert len(rows) == 9 and all(r["status"] != "error" for r in rows)
    assert "| pass@k | 3 |" in text and text.count("instances over CollabVR's $ |") == 2
    for line in text.splitlines():
        if line.startswith(("| pass@k | 3", "| posthoc_critique | 3", "| prompt_opt | 3")):
            assert line.rstrip(" |").endswith("| 0")  # no instance over CollabVR's dollars
    reused = [r for m in BASELINES for r in read_results(tmp_path / "flash" / m / "results.jsonl") if r.get("reused_from")]
    assert reused  # most budgets are the same whole videos at both price sets
    stored = main(["docs/results/runs/weak-accurate.jsonl.gz", "--suite", "sim:sort/hard", "--n", "3",
                   "--from", str(tmp_path / "{prices}" / "pass@8" / "results.jsonl")])
    assert "| pass@k | 3 |" in stored and spend({"compute": {"clip_seconds": 12.0}}, *PRO, 0) == pytest.approx(2.4)
