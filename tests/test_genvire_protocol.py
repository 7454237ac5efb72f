"""Gen-ViRe to the letter: run folders are generated videos (the official five, more only by name),
judge repeats stay in one score file, the official sample set, and ``score genvire`` as step4 reads a
tree (five run folders, nothing written inside it, failed judgements counted even without videos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collabvr.bench.config import BenchConfig
from collabvr.bench.export import export_run, score_genvire
from collabvr.bench.runner import run_bench
from collabvr.bench.suites import parse_suite
from collabvr.cli import app
from collabvr.media import Image
from tests.fakes import Brain, FakeGoogle, gemini_options, veo_options
from tests.test_pairing import RUBRIC, make_tool_use


class Alternating(Brain):
    """The judge gives a video's first call both criteria and its second call one: 1.0, then 0.5."""

    def __init__(self) -> None:
        super().__init__(steps=1)
        self.calls = 0

    def answer(self, role, text, media):
        if role != "rubric":
            return super().answer(role, text, media)
        self.calls += 1
        scores = (1, 1) if self.calls % 2 else (0, 1)
        return {"criteria": [{"name": n, "description": "d", "score": s, "max_score": 1.0, "rationale": "r"}
                             for n, s in zip(("Criterion_1_Goal", "Criterion_2_Stability"), scores, strict=True)]}


def test_runs_are_run_folders_the_official_five_unless_named_and_judge_repeats_stay_in_one_score_file(tmp_path):
    root = make_tool_use(tmp_path / "gvr")
    with FakeGoogle(brain=Alternating()) as google:
        run_bench(BenchConfig(out=tmp_path / "b", suite=f"genvire:{root}:planning_reasoning/tool_use_selection", n=1,
                              methods=["single"], runs=6, judge_repeats=2, concurrency=1, cache=False,
                              vgm="veo:veo-3.1-generate-001", vlm="gemini:gemini-2.5-pro", vgm_options=veo_options(google),
                              vlm_options=gemini_options(google), context={"first_clip_seconds": 4.0}))
    written, note = export_run(tmp_path / "b", "genvire", tmp_path / "x")
    model = tmp_path / "x" / "0_generated_videos" / "single"
    assert sorted(p.name for p in model.iterdir() if p.is_dir()) == [f"single_{k}" for k in range(5)]  # six runs, five folders
    assert len(written) == 5 and "runs 5..5 not exported" in note and "--runs 6" in note
    score = json.loads((model / "single_3" / "planning_reasoning" / "tool_use_selection" / "01_score.json").read_text())
    assert [r["normalized_score"] for r in score["repeats"]] == [1.0, 0.5]  # both judge calls, in the video's one file
    assert score["normalized_score"] == 0.75 and score["task_id"] == "01" and score["judge_calls"] == 2
    results_md = (tmp_path / "b" / "results.md").read_text()
    assert "5 run(s), one generated video each (the official five)" in results_md and "runs 5..5 beyond the official five left out" in results_md
    assert "| single | 5 | 0.750 | 0.000 | 0.000 | 0.000 | 0.000 | 0.750 | 0.000 |" in results_md  # step4's batch row: five videos
    written, note = export_run(tmp_path / "b", "genvire", tmp_path / "y", runs=6)  # more, asked for by name
    assert len(written) == 6 and note == "" and (tmp_path / "y/0_generated_videos/single/single_5").is_dir()
    aggs, _, _ = score_genvire(tmp_path / "y" / "0_generated_videos")
    assert aggs[0]["videos"] == 5 and aggs[0]["run_folders"] == [f"single_{k}" for k in range(5)]  # step4 reads five
    assert score_genvire(tmp_path / "y" / "0_generated_videos", runs=6, out=tmp_path / "six")[0][0]["videos"] == 6
    strict, _, _ = score_genvire(tmp_path / "y" / "0_generated_videos", strict=True, out=tmp_path / "strict")
    assert strict[0]["dimensions"]["planning_reasoning"]["pooled"] == pytest.approx(0.75)  # each repeat rescored


def test_the_official_sample_set_leaves_extra_ids_out_and_the_bench_says_how_many(tmp_path):
    root = make_tool_use(tmp_path / "gvr")
    suite = parse_suite(f"genvire:{root}")
    assert [r.id for r in suite.rows] == ["01", "02", "03"] and suite.left_out == ("planning_reasoning/tool_use_selection/04",)
    assert [r.id for r in parse_suite(f"genvire:{root}", all_samples=True).rows] == ["01", "02", "03", "04"]
    with FakeGoogle(brain=Brain(steps=1)) as google:
        run_bench(BenchConfig(out=tmp_path / "b", suite=f"genvire:{root}", n=1, methods=["single"], concurrency=1, cache=False,
                              vgm="veo:veo-3.1-generate-001", vlm="gemini:gemini-2.5-pro", vgm_options=veo_options(google),
                              vlm_options=gemini_options(google), context={"first_clip_seconds": 4.0}))
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())["config"]
    assert summary["samples"] == ["planning_reasoning/tool_use_selection/01"] and summary["left_out"] == list(suite.left_out)
    text = (tmp_path / "b" / "results.md").read_text()
    assert "1 sample(s) (listed under Samples), 1 run(s) per sample (seeds 0..0)" in text and "seeds 0..49" not in text
    assert "1 id(s) beyond the official three per subtask left out (--all-samples keeps them)" in text
    assert "| planning_reasoning | tool_use_selection | 1 | 01 |" in text
    assert "Left out (not in the official sample set): planning_reasoning/tool_use_selection/04" in text


def test_a_dataset_row_finds_its_rubric_under_the_name_the_official_scripts_give_its_id(tmp_path):
    folder = tmp_path / "gvr" / "c1_abstract_reasoning" / "symmetry"
    folder.mkdir(parents=True)
    (folder / "symmetry_eval.json").write_text(json.dumps({"random_01": {"i2v_prompt": "mirror", "eval_task_description": RUBRIC}}))
    image = Image(np.full((32, 32, 3), 70, np.uint8)).to_png()
    (folder / "in.png").write_bytes(image)
    row = {"id": "01", "main_category": "abstract_reasoning", "sub_category": "symmetry", "i2v_prompt": "mirror it",
           "image": "c1_abstract_reasoning/symmetry/in.png", "eval_json_path": "c1_abstract_reasoning/symmetry/symmetry_eval.json"}
    (tmp_path / "gvr" / "ds.jsonl").write_text(json.dumps(row) + "\n")
    rows = parse_suite(f"genvire:{tmp_path / 'gvr' / 'ds.jsonl'}").rows
    assert [(r.id, r.rubric) for r in rows] == [("01", RUBRIC)]  # code/sample_psdl.py: symmetry's 01 is random_01


def _score_only_tree(gen: Path, missing: tuple[int, str]) -> dict[tuple[int, str], float]:
    """wan's run folders _0 .. _5 of maze (ids 01-03) with score files only, one of them missing."""
    values = {}
    for run in range(6):
        for i, sid in enumerate(("01", "02", "03")):
            if (run, sid) == missing:
                continue
            folder = gen / "wan" / f"wan_{run}" / "spatial_reasoning" / "maze"
            folder.mkdir(parents=True, exist_ok=True)
            values[(run, sid)] = (run + i) % 3 / 2
            (folder / f"{sid}_score.json").write_text(json.dumps({"normalized_score": values[(run, sid)], "task_id": sid}))
    return values


def test_score_genvire_reads_five_runs_counts_a_failed_judgement_without_videos_and_prints_step4s_tables(tmp_path):
    gen = tmp_path / "0_generated_videos"
    values = _score_only_tree(gen, missing=(2, "03"))
    result = CliRunner().invoke(app, ["score", "genvire", str(gen)])
    assert result.exit_code == 0, result.output
    read = [v for (run, _), v in values.items() if run < 5]  # step4: wan_0 .. wan_4, the present score files
    mean = sum(read) / len(read)
    assert len(read) == 14
    assert f"| wan | 14 | {mean:.3f} | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | {mean:.3f} |" in result.output  # batch mode
    assert f"| wan | 14 | {mean:.3f} | {mean:.3f} |" in result.output  # dimension mode: spatial_reasoning, maze
    assert "| wan | wan_0, wan_1, wan_2, wan_3, wan_4 | 15 | 14 | 1 |" in result.output  # 3 ids x 5 runs expected
    assert "avg_subtask_mean" not in result.output and result.output.count("| Methods | #Videos | Avg. |") == 2
    where = tmp_path / "0_generated_videos-step4"
    assert (where / "wan_summary.csv").read_text().splitlines() == [
        "Methods,#Videos,Avg.,Abstract,Algorithmic & Logical,Analogy,Perceptual,Planning,Spatial",
        f"wan,14,{mean:.3f},0.000,0.000,0.000,0.000,0.000,{mean:.3f}"]
    assert sorted(p.name for p in gen.rglob("*") if p.is_file() and not p.name.endswith("_score.json")) == []  # nothing inside
    inside = CliRunner().invoke(app, ["score", "genvire", str(gen), "--out", str(gen / "wan" / "scores")])
    assert inside.exit_code == 2 and "is inside" in inside.output


def test_score_genvire_of_our_export_expects_exactly_the_videos_the_bench_ran(tmp_path):
    gen = tmp_path / "0_generated_videos"
    _score_only_tree(gen, missing=(0, "02"))
    (gen / "wan" / "collabvr_expected.json").write_text(json.dumps({"runs": 1, "videos": [[0, "spatial_reasoning", "maze", "01"],
                                                                                        [0, "spatial_reasoning", "maze", "02"]]}))
    for run in range(1, 6):
        for path in (gen / "wan" / f"wan_{run}").rglob("*"):
            path.unlink() if path.is_file() else None
    aggs, _, _ = score_genvire(gen / "wan", out=tmp_path / "s")
    assert (aggs[0]["videos"], aggs[0]["score_files"], aggs[0]["dropped"]) == (3, 2, 1)  # 01, 02 (failed) and the file 03
