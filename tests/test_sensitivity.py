"""benchmarks/sensitivity.py: paired gains per setting, the break-even point, the tornado plot."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.sensitivity import KNOBS, METHODS, break_even, gains, tornado, write_tables
from collabvr.backends.sim.config import VGMConfig, VLMConfig
from collabvr.bench.stats import paired


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


def test_break_even_is_interpolated_where_the_gain_changes_sign_and_absent_otherwise():
    def p(diff: float):
        return paired({1: diff}, {1: 0.0})

    assert break_even([(0.0, p(0.2)), (0.5, p(0.1)), (1.0, p(-0.1))]) == 0.75
    assert break_even([(0.0, p(0.2)), (0.5, p(0.1))]) is None


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
             "default_vs_best": at_default["vs_best"], "break_even": 0.5, "break_even_pass": None, "numeric": True}]
    args = argparse.Namespace(suite="sim", n=1, seed=0, vgm="sim:weak", vlm="sim:accurate", budget="48", out=tmp_path)
    write_tables(args, "cmd", at_default, rows, 0.1)
    assert tornado(rows, tmp_path / "t.png", "title").stat().st_size > 1000
    text = (tmp_path / "sensitivity.md").read_text()
    assert "`drift_carry` | 0 → 1" in text and "| none between 0 and 1 | ≈ 0.5 (interpolated" in text
