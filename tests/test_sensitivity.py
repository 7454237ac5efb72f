"""benchmarks/sensitivity.py: paired gains per setting, the break-even point, the tornado plot."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from benchmarks.sensitivity import (
    DEFAULT,
    KNOBS,
    METHODS,
    _crossing,
    _numeric,
    _store,
    adjusted,
    gains,
    main,
    tornado,
    write_tables,
)
from collabvr.backends.sim.config import VGMConfig, VLMConfig
from collabvr.bench.inference import Crossing


def _results(shift: dict[str, float]) -> list[dict]:
    rng = np.random.default_rng(0)
    base = rng.random(40)
    return [{"method": m, "family": "maze", "difficulty": "hard", "seed": i, "score": float(np.clip(b + shift[m], 0, 1))}
            for m in METHODS for i, b in enumerate(base)]


def test_gain_over_the_best_critique_baseline_picks_the_higher_one_and_pairs_instances():
    g = gains(_results({"collabvr": 0.2, "pass@4": 0.0, "posthoc_critique": 0.05, "prompt_opt": 0.1}), seed=0)
    assert g["best_critic"] == "prompt_opt"
    assert g["vs_pass"].verdict == "above" and g["vs_best"].diff < g["vs_pass"].diff
    assert g["vs_best"].n == 40


def test_break_even_is_interpolated_with_a_bootstrap_over_the_instances_every_setting_ran():
    knob = next(k for k in KNOBS if k.name == "plan_noise")
    at = [_results({"collabvr": shift, "pass@4": 0.0, "posthoc_critique": 0.05, "prompt_opt": 0.1}) for shift in (0.2, 0.1, -0.1)]
    vs_pass = _crossing(knob, at[0], at[1:], ("pass@4",), seed=0)
    assert vs_pass.point == pytest.approx(0.15 + 0.15 * 0.1 / 0.2, abs=0.02)  # between 0.15 and 0.3, nearer 0.3
    assert vs_pass.ci[0] <= vs_pass.point <= vs_pass.ci[1] and vs_pass.no_cross < 0.05
    vs_best = _crossing(knob, at[0], at[1:], ("posthoc_critique", "prompt_opt"), seed=0)
    assert vs_best.point < vs_pass.point  # against the stronger baseline the gain turns earlier
    lookahead = next(k for k in KNOBS if k.name == "prior_lookahead")
    assert not _numeric(lookahead) and _crossing(lookahead, at[0], at[1:], ("pass@4",), seed=0) is None  # 4 -> 2 and 6


def test_every_swept_knob_is_a_sim_option_and_every_setting_moves_off_the_default():
    fields = set(VGMConfig.__dataclass_fields__) | set(VLMConfig.__dataclass_fields__)
    for knob in KNOBS:
        for value in knob.values:
            assert set(knob.options(value)) <= fields, knob.name
            assert value != knob.default


def test_tables_and_tornado_are_written(tmp_path):
    at_default = gains(_results({"collabvr": 0.2, "pass@4": 0.0, "posthoc_critique": 0.05, "prompt_opt": 0.1}), seed=0)
    worse = gains(_results({"collabvr": 0.0, "pass@4": 0.0, "posthoc_critique": 0.05, "prompt_opt": 0.1}), seed=0)
    rows = [{"knob": KNOBS[0], "settings": [{"value": 1.0, **worse}], "default_vs_pass": at_default["vs_pass"],
             "default_vs_best": at_default["vs_best"], "break_even": Crossing(0.5, (0.4, 0.6), 0.02, 2000),
             "break_even_pass": Crossing(None, None, 1.0, 2000), "numeric": True}]
    at_default, rows = adjusted(at_default, rows)
    assert at_default["vs_pass"].family == 4  # both gains at the defaults and at the one setting
    args = argparse.Namespace(suite="sim", n=1, seed=0, vgm="sim:weak", vlm="sim:accurate", budget="48", out=tmp_path)
    write_tables(args, "cmd", at_default, rows, 0.1)
    assert tornado(rows, tmp_path / "t.png", "title").stat().st_size > 1000
    text = (tmp_path / "sensitivity.md").read_text()
    assert "`drift_carry` | 0 → 1" in text and "none between 0 and 1" in text
    assert "≈ 0.50 [0.40, 0.60] (no crossing in 2% of resamples)" in text
    assert "**+0.175 [" in text and "above (p <0.001; Holm <0.001)" in text  # the verdicts, adjusted over the table


def test_a_stored_sweep_recomputes_the_same_tables_without_running(tmp_path):
    knob = next(k for k in KNOBS if k.name == "plan_noise")
    base = _results({"collabvr": 0.2, "pass@4": 0.0, "posthoc_critique": 0.05, "prompt_opt": 0.1})
    ran = {DEFAULT: base}
    for value, shift in zip(knob.values, (0.1, -0.1), strict=True):  # plan_noise runs CollabVR only
        ran[f"plan_noise={value:g}"] = [r | {"score": float(np.clip(r["score"] - 0.2 + shift, 0, 1))}
                                        for r in base if r["method"] == "collabvr"]
    args = argparse.Namespace(suite="sim:maze/hard", n=40, seed=0, budget="48", vgm="sim:weak", vlm="sim:accurate")
    stored = _store(tmp_path / "results.jsonl.gz", args, ran)
    rows = main(["--from", str(stored), "--out", str(tmp_path / "again")])
    assert [r["knob"].name for r in rows] == ["plan_noise"]  # the knobs the stored sweep ran
    assert rows[0]["settings"][1]["means"]["pass@4"] == pytest.approx(np.mean([r["score"] for r in base if r["method"] == "pass@4"]))
    text = (tmp_path / "again" / "sensitivity.md").read_text()
    assert "Suite `sim:maze/hard`, n = 40 per cell" in text and "`plan_noise` | 0.05 → 0.3" in text
