"""Paired statistics on benchmark suites: one pair per (suite, split or category, task, sample, run),
never one per (task, seed). The benches below really run; the expected pairs come from their results
lines, matched by sample."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from collabvr.bench.config import BenchConfig
from collabvr.bench.results import read_results
from collabvr.bench.runner import run_bench
from collabvr.bench.stats import instance, matched_pairs, method_scores, paired_methods
from collabvr.bench.suites.vbvr import export_sim_suite
from collabvr.media import Image
from tests.fakes import Brain, FakeGoogle, gemini_options, veo_options

FAST = {"first_clip_seconds": 4.0, "clip_seconds": 1.0}


def _expected(results: list[dict], a: str, b: str) -> dict[str, float]:
    """Per sample key: a's score minus b's, from the results lines themselves."""
    by = {(r["method"], r["sample"], r["run"]): r["score"] or 0.0 for r in results}
    return {s: by[(a, s, run)] - by[(b, s, run)] for (m, s, run) in by if m == a}


def _paired_all(bench: Path) -> dict:
    return next(p for p in json.loads((bench / "summary.json").read_text())["paired"] if p["difficulty"] == "all")


def test_a_four_sample_vbvr_task_gives_four_pairs_with_the_per_sample_differences(tmp_path):
    data = tmp_path / "simvbvr"
    export_sim_suite(data, spec="sim:maze/easy", n=4, size=128)  # one task folder, four samples, every episode seed 0
    run_bench(BenchConfig(out=tmp_path / "b", suite=f"vbvr:{data}", methods=["single", "collabvr"], vlm="sim", size=128,
                          context=FAST, concurrency=2, cache=False))
    results = read_results(tmp_path / "b" / "results.jsonl")
    assert {r["seed"] for r in results} == {0} and len({r["sample"] for r in results}) == 4
    diffs = _expected(results, "collabvr", "single")
    p = _paired_all(tmp_path / "b")
    assert p["n"] == 4 and p["diff"] == pytest.approx(np.mean(list(diffs.values())))
    assert (p["wins"], p["losses"], p["ties"]) == (sum(d > 0 for d in diffs.values()), sum(d < 0 for d in diffs.values()),
                                                   sum(d == 0 for d in diffs.values()))
    assert any(d != 0 for d in diffs.values())  # the sim makes the two methods differ somewhere, so the check has teeth
    assert "(suite, split or category, task, sample, run)" in (tmp_path / "b" / "results.md").read_text()


RUBRIC = ('Evaluate against these criteria: **Criterion_1_Goal**, **Criterion_2_Stability**. Return JSON with '
          '"Criterion_1_Goal": {"score": 0}, "Criterion_2_Stability": {"score": 0}')
# per sample (named in its prompt), the judge's two criteria for the first and the second video it sees
SCRIPT = {"open the box 01": ([1, 1], [0, 1]), "open the box 02": ([0, 0], [1, 1]), "open the box 03": ([1, 0], [1, 0])}


class Scripted(Brain):
    """Judges each sample's first video (single's: it runs first) and second video (collabvr's) by script."""

    def __init__(self) -> None:
        super().__init__(steps=1)
        self.seen: dict[str, int] = {}

    def answer(self, role, text, media):
        if role != "rubric":
            return super().answer(role, text, media)
        prompt = re.search(r"open the box 0\d", text).group(0)
        k = self.seen[prompt] = self.seen.get(prompt, 0) + 1
        scores = SCRIPT[prompt][k - 1]
        return {"criteria": [{"name": n, "description": "d", "score": s, "max_score": 1.0, "rationale": "r"}
                             for n, s in zip(("Criterion_1_Goal", "Criterion_2_Stability"), scores, strict=True)]}


def make_tool_use(root: Path) -> Path:
    """tool_use_selection as in the GVR clone: ids 01-04, of which the official set is 01-03."""
    folder = root / "c5_planing_reasoning" / "tool_use_selection"
    entries = {}
    for i in range(1, 5):
        (folder / "imgs").mkdir(parents=True, exist_ok=True)
        (folder / "imgs" / f"0{i}.png").write_bytes(Image(np.full((32, 32, 3), 40 * i, np.uint8)).to_png())
        entries[f"0{i}"] = {"input_image_path": f"imgs/0{i}.png", "i2v_prompt": f"open the box 0{i}", "eval_task_description": RUBRIC}
    (folder / "tool_use_eval.json").write_text(json.dumps(entries))
    return root


def test_a_three_sample_genvire_subtask_gives_three_pairs_with_the_per_sample_differences(tmp_path):
    root = make_tool_use(tmp_path / "gvr")
    with FakeGoogle(brain=Scripted()) as google:
        run_bench(BenchConfig(out=tmp_path / "b", suite=f"genvire:{root}", methods=["single", "collabvr"], concurrency=1,
                              vgm="veo:veo-3.1-generate-001", vlm="gemini:gemini-2.5-pro", vgm_options=veo_options(google),
                              vlm_options=gemini_options(google), context={"first_clip_seconds": 4.0, "max_steps": 1},
                              cache=False))
    results = read_results(tmp_path / "b" / "results.jsonl")
    received = {m: {r["sample"].rsplit("/", 1)[-1]: r["score"] for r in results if r["method"] == m} for m in ("single", "collabvr")}
    # what the judge was asked to score, as the script answered it: the mean of the criteria
    assert received["single"] == {"01": 1.0, "02": 0.0, "03": 0.5} and received["collabvr"] == {"01": 0.5, "02": 1.0, "03": 0.5}
    diffs = _expected(results, "collabvr", "single")
    p = _paired_all(tmp_path / "b")
    assert p["n"] == 3 and p["diff"] == pytest.approx((-0.5 + 1.0 + 0.0) / 3)
    assert (p["wins"], p["losses"], p["ties"]) == (1, 1, 1) and sorted(diffs.values()) == [-0.5, 0.0, 1.0]


def test_pairs_match_by_instance_and_an_instance_run_twice_is_refused():
    rows = [{"method": m, "family": "In-Domain_50", "difficulty": "O-47", "seed": 0, "suite": "vbvr",
             "sample": f"In-Domain_50/O-47/0000{i}", "run": 0, "score": s} for m, scores in (("a", [1, 0, 1]), ("b", [0, 0, 1]))
            for i, s in enumerate(scores)]
    pairs = matched_pairs(method_scores(rows, "a"), method_scores(rows, "b"))
    assert [(key[3], x, y) for key, x, y in pairs] == [("In-Domain_50/O-47/00000", 1.0, 0.0), ("In-Domain_50/O-47/00001", 0.0, 0.0),
                                                       ("In-Domain_50/O-47/00002", 1.0, 1.0)]
    assert paired_methods(rows, "a", "b").n == 3
    second_run = [{**r, "run": 1, "seed": 1} for r in rows]
    assert paired_methods(rows + second_run, "a", "b").n == 6  # each run of a sample is its own instance
    with pytest.raises(ValueError, match="same instance"):
        method_scores(rows + [rows[0]], "a")
    sim = {"method": "a", "family": "maze", "difficulty": "easy", "seed": 7, "score": 1.0}
    assert instance(sim) == ("maze", "easy", 7)  # the sim's key, as the published runs were paired
    old = {k: v for k, v in rows[0].items() if k != "suite"} | {"task": "vbvr:In-Domain_50/O-47/00000"}
    assert instance(old) == instance(rows[0])  # a line written before `suite` was recorded
