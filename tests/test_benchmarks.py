"""VBVR-Bench and Gen-ViRe: loaders on fixtures in the official layouts, malformed data, the official
Gen-ViRe aggregation computed by hand, export layouts, ground-truth replay, and an offline end-to-end
Gen-ViRe run against the loopback fakes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collabvr.bench.config import BenchConfig
from collabvr.bench.export import export_run, score_genvire
from collabvr.bench.results import read_results
from collabvr.bench.runner import run_bench
from collabvr.bench.suites import parse_suite
from collabvr.bench.suites.genvire_official import aggregate, read_scores
from collabvr.bench.suites.vbvr import EPSILON, export_sim_suite
from collabvr.cli import app
from collabvr.errors import BadInput
from collabvr.media import Image, Video
from collabvr.runner import run
from collabvr.scoring import gvr_video_score
from tests.fakes import Brain, FakeGoogle, gemini_options, veo_options

# -- fixtures in the official layouts ---------------------------------------------------------------


def _png(path: Path, value: int, size: int = 32) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = Image(np.full((size, size, 3), value, np.uint8)).to_png()
    path.write_bytes(data)
    return data


def make_vbvr(root: Path, *, index: bool = True) -> Path:
    """Two tasks in In-Domain_50 (two samples each) and one in Out-of-Domain_50, with VBVR-Bench.json."""
    entries = []
    for split, task, ids in (("In-Domain_50", "O-47_sliding_puzzle_data-generator", ("00000", "00001")),
                             ("In-Domain_50", "G-45_key_door_matching_data-generator", ("00000", "00001")),
                             ("Out-of-Domain_50", "G-135_select_next_figure_data-generator", ("00000",))):
        for sid in ids:
            rel = Path(split) / task / sid
            first = _png(root / rel / "first_frame.png", 40)
            _png(root / rel / "final_frame.png", 200)
            frames = np.linspace(40, 200, 8).astype(np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
            (root / rel / "ground_truth.mp4").write_bytes(Video(frames=frames, fps=8).mp4)
            (root / rel / "prompt.txt").write_text(f"solve {task} {sid}\n")
            entries.append({"id": f"{task}_{sid}", "prompt": f"solve {task} {sid}",
                            "first_image": "data:image/png;base64," + base64.b64encode(first).decode(),
                            "first_frame_path": str(rel / "first_frame.png"), "final_frame_path": str(rel / "final_frame.png"),
                            "prompt_path": str(rel / "prompt.txt"), "ground_truth_video_path": str(rel / "ground_truth.mp4")})
    if index:
        (root / "VBVR-Bench.json").write_text(json.dumps(entries))
    return root


RAVEN_RUBRIC = ("Score the matrix. 1. **Criterion_1_Accuracy** [Max: 4 points] 2. **Criterion_2_Environment_Stability** "
                '[Max: 2 points] Output: {"Criterion_1_Accuracy": {"score": 0-4}, "Criterion_2_Environment_Stability": {"score": 0-2}}')
MAZE_RUBRIC = ('# Role: maze scorer. {"Criterion_1_Path_Validity": {"Description": "no wall", "Score": 0, "Rationale": ""}, '
               '"Criterion_2_Task_Completion": {"Description": "reaches goal", "Score": 0, "Rationale": ""}}')
SYM_RUBRIC = '{"Criterion_1_Generated_Pattern_Accuracy": {"score": 0}, "Criterion_2_Scene_Integrity": {"score": 0}}'


def make_genvire(root: Path) -> Path:
    """A GVR clone in miniature: maze (one id without an image), symmetry (non-numeric ids, imgs/ folder),
    raven (a max_score rubric with a ground-truth image)."""
    def subtask(cat: str, sub: str, name: str, samples: dict) -> None:
        folder = root / cat / sub
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}_eval.json").write_text(json.dumps(samples))

    _png(root / "c6_spatial_reasoning/maze/input_images/01_input.png", 60)
    subtask("c6_spatial_reasoning", "maze", "maze", {
        "01": {"input_image_path": "input_images/01_input.png", "i2v_prompt": "solve the maze", "eval_task_description": MAZE_RUBRIC},
        "02": {"input_image_path": "input_images/02_input.png", "i2v_prompt": "solve the maze", "eval_task_description": MAZE_RUBRIC}})
    _png(root / "c1_abstract_reasoning/symmetry/imgs/random_01_input.png", 70)
    subtask("c1_abstract_reasoning", "symmetry", "symmetry", {
        "random_01": {"input_image_path": "imgs/random_01_input.png", "i2v_prompt": "mirror it", "eval_task_description": SYM_RUBRIC}})
    _png(root / "c1_abstract_reasoning/raven_matrix/input_images/iq01.png", 80)
    _png(root / "c1_abstract_reasoning/raven_matrix/gt_images/iq01_gt.png", 90)
    subtask("c1_abstract_reasoning", "raven_matrix", "raven", {
        "01": {"input_image_path": "input_images/iq01.png", "i2v_prompt": "complete the matrix", "max_score": 8,
               "eval_task_description": RAVEN_RUBRIC}})
    return root


# -- loaders ---------------------------------------------------------------------------------------------


def test_vbvr_index_and_folder_scan_give_the_same_samples_and_filters_select(tmp_path):
    indexed = parse_suite(f"vbvr:{make_vbvr(tmp_path / 'a')}")
    scanned = parse_suite(f"vbvr:{make_vbvr(tmp_path / 'b', index=False)}")
    assert [r.key for r in indexed.rows] == [r.key for r in scanned.rows]
    assert len(indexed.rows) == 5
    one = parse_suite(f"vbvr:{tmp_path / 'a'}:In-Domain_50/O-47_sliding_puzzle_data-generator")
    assert [s.id for s in one.samples(50, 0)] == ["In-Domain_50/O-47_sliding_puzzle_data-generator/00000",
                                                  "In-Domain_50/O-47_sliding_puzzle_data-generator/00001"]
    assert len(one.samples(1, 0)) == 1  # --n limits samples per task
    task = one.task(one.samples(1, 0)[0], 128)
    assert task.suite == "vbvr" and task.prompt.startswith("solve O-47") and Path(task.meta["final_frame_path"]).is_file()
    assert len(parse_suite(f"vbvr:{tmp_path / 'a'}:Out-of-Domain_50").rows) == 1


def test_genvire_reads_non_numeric_ids_other_image_folders_and_skips_ids_without_image(tmp_path):
    suite = parse_suite(f"genvire:{make_genvire(tmp_path / 'gvr')}")
    assert sorted(r.key for r in suite.rows) == ["abstract_reasoning/raven_matrix/01", "abstract_reasoning/symmetry/random_01",
                                                 "spatial_reasoning/maze/01"]
    assert suite.skipped and "spatial_reasoning/maze/02" in suite.skipped[0]
    by_folder = parse_suite(f"genvire:{tmp_path / 'gvr'}:c1_abstract_reasoning/symmetry")
    by_name = parse_suite(f"genvire:{tmp_path / 'gvr'}:abstract_reasoning/symmetry")
    assert [r.key for r in by_folder.rows] == [r.key for r in by_name.rows] == ["abstract_reasoning/symmetry/random_01"]
    raven = parse_suite(f"genvire:{tmp_path / 'gvr'}:abstract_reasoning/raven_matrix").rows[0]
    assert raven.meta["max_score"] == 8 and raven.meta["gt_image_path"].endswith("iq01_gt.png")


def test_genvire_reads_a_jsonl_dataset_export_with_image_bytes(tmp_path):
    root = make_genvire(tmp_path / "gvr")
    png = (root / "c1_abstract_reasoning/symmetry/imgs/random_01_input.png").read_bytes()
    row = {"id": "random_01", "main_category": "abstract_reasoning", "sub_category": "symmetry", "i2v_prompt": "mirror it",
           "image": {"bytes": base64.b64encode(png).decode(), "path": None},
           "eval_json_path": "c1_abstract_reasoning/symmetry/symmetry_eval.json"}
    (root / "gen_vire.jsonl").write_text(json.dumps(row) + "\n")
    suite = parse_suite(f"genvire:{root / 'gen_vire.jsonl'}")
    assert [r.key for r in suite.rows] == ["abstract_reasoning/symmetry/random_01"]
    assert suite.rows[0].rubric == SYM_RUBRIC and Image.open(suite.rows[0].image).array[0, 0, 0] == 70


def write_parquet(path: Path, rows: list[dict]) -> Path:
    """A dataset export as ``datasets`` writes it: ``image`` a struct {bytes, path}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("id", pa.string()), ("main_category", pa.string()), ("sub_category", pa.string()),
                        ("i2v_prompt", pa.string()), ("image", image), ("eval_json_path", pa.string())])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def test_genvire_reads_a_parquet_dataset_export_with_image_bytes_and_paths(tmp_path):
    gvr = make_genvire(tmp_path / "gvr")
    png = (gvr / "c1_abstract_reasoning/symmetry/imgs/random_01_input.png").read_bytes()
    write_parquet(tmp_path / "ds" / "train.parquet", [
        {"id": "random_01", "main_category": "abstract_reasoning", "sub_category": "symmetry", "i2v_prompt": "mirror it",
         "image": {"bytes": png, "path": None}, "eval_json_path": "../gvr/c1_abstract_reasoning/symmetry/symmetry_eval.json"},
        {"id": "01", "main_category": "spatial_reasoning", "sub_category": "maze", "i2v_prompt": "solve the maze",
         "image": {"bytes": None, "path": str(gvr / "c6_spatial_reasoning/maze/input_images/01_input.png")},
         "eval_json_path": "../gvr/c6_spatial_reasoning/maze/maze_eval.json"}])
    suite = parse_suite(f"genvire:{tmp_path / 'ds'}")  # the directory, as users type it
    assert [r.key for r in suite.rows] == ["abstract_reasoning/symmetry/random_01", "spatial_reasoning/maze/01"]
    assert [r.prompt for r in suite.rows] == ["mirror it", "solve the maze"]
    assert [r.rubric for r in suite.rows] == [SYM_RUBRIC, MAZE_RUBRIC]
    assert [Image.open(r.image).array[0, 0, 0] for r in suite.rows] == [70, 60]
    maze = parse_suite(f"genvire:{tmp_path / 'ds'}:spatial_reasoning/maze")
    assert [r.key for r in maze.rows] == ["spatial_reasoning/maze/01"]
    task = maze.task(maze.samples(1, 0)[0], 128)
    assert task.prompt == "solve the maze" and task.rubric == MAZE_RUBRIC


# -- malformed data: one clear error naming the file -------------------------------------------------------


def _breaks(tmp_path: Path, case: str) -> tuple[str, str]:
    if case == "index file missing":
        root = make_vbvr(tmp_path / "v")
        (root / "In-Domain_50/G-45_key_door_matching_data-generator/00001/final_frame.png").unlink()
        return f"vbvr:{root}", "00001/final_frame.png: missing"
    if case == "first frame missing":
        root = make_vbvr(tmp_path / "v", index=False)
        (root / "Out-of-Domain_50/G-135_select_next_figure_data-generator/00000/first_frame.png").unlink()
        return f"vbvr:{root}", "00000/first_frame.png: missing"
    if case == "unreadable video":
        root = make_vbvr(tmp_path / "v")
        (root / "In-Domain_50/O-47_sliding_puzzle_data-generator/00000/ground_truth.mp4").write_bytes(b"not a video")
        return f"vbvr:{root}", "ground_truth.mp4: unreadable video"
    if case == "folder outside index":
        root = make_vbvr(tmp_path / "v")
        (root / "In-Domain_50/X-1_extra/00000").mkdir(parents=True)
        return f"vbvr:{root}", "X-1_extra: task folder not listed in"
    if case == "row without i2v_prompt":
        root = make_genvire(tmp_path / "g")
        (root / "ds.jsonl").write_text(json.dumps({"id": "01", "main_category": "spatial_reasoning", "sub_category": "maze",
                                                   "image": "c6_spatial_reasoning/maze/input_images/01_input.png"}) + "\n")
        return f"genvire:{root / 'ds.jsonl'}", "ds.jsonl: row 1 has no i2v_prompt"
    if case == "parquet row without i2v_prompt":
        root = make_genvire(tmp_path / "g")
        maze = {"main_category": "spatial_reasoning", "sub_category": "maze", "eval_json_path": "c6_spatial_reasoning/maze/maze_eval.json",
                "image": {"bytes": None, "path": "c6_spatial_reasoning/maze/input_images/01_input.png"}}
        write_parquet(root / "ds.parquet", [{**maze, "id": "01", "i2v_prompt": "solve the maze"},
                                            {**maze, "id": "02", "i2v_prompt": None}])
        return f"genvire:{root / 'ds.parquet'}", "ds.parquet: row 2 has no i2v_prompt"
    root = make_genvire(tmp_path / "g")
    (root / "c1_abstract_reasoning/symmetry/symmetry_eval.json").write_text("{not json")
    return f"genvire:{root}", "symmetry_eval.json: not valid JSON"


@pytest.mark.parametrize("case", ["index file missing", "first frame missing", "unreadable video", "folder outside index",
                                  "row without i2v_prompt", "parquet row without i2v_prompt",
                                  "eval json not json"])
def test_malformed_data_fails_once_naming_the_file(case, tmp_path):
    spec, words = _breaks(tmp_path, case)
    with pytest.raises(BadInput) as caught:
        parse_suite(spec)
    assert words in str(caught.value)
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path / "b"), "--suite", spec])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:")


# -- Gen-ViRe's official rules ----------------------------------------------------------------------------------


def test_per_video_rules_reproduce_each_official_script():
    raven = {"Criterion_1_Accuracy": {"score": 3}, "Criterion_2_Environment_Stability": {"score": 1}, "total_score": 9}
    assert gvr_video_score(raven, "raven_matrix", 8) == (0.5, 4.0, 2)  # sum / max_score
    sym = {"Criterion_1_A": {"score": 1}, "Criterion_2_B": {"score": 0}, "Other": {"score": 1}}
    assert gvr_video_score(sym, "symmetry") == (0.5, 1.0, 2)  # mean over Criterion_ keys
    maze_lower = {"Criterion_1_Path_Validity": {"score": 1}, "Criterion_2_Task_Completion": {"score": 1}}
    assert gvr_video_score(maze_lower, "maze")[0] == 0.0  # maze_eval.py reads only "Score": the official quirk
    assert gvr_video_score(maze_lower, "maze", any_case=True)[0] == 1.0  # --strict reads it
    assert gvr_video_score({"Criterion_1": {"Score": 1}, "Criterion_2": {"Score": 0}}, "maze")[0] == 0.5


def _score_file(folder: Path, sid: str, value: float | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sid}.mp4").write_bytes(b"video")
    if value is not None:
        (folder / f"{sid}_score.json").write_text(json.dumps({"Criterion_1": {"score": value}, "normalized_score": value}))


def test_official_aggregation_on_a_synthetic_tree_matches_the_hand_computation(tmp_path):
    m = tmp_path / "0_generated_videos" / "wan"  # subtasks Gen-ViRe does not have: no official ids are expected
    for run_, values in ((0, {"sym": [1.0, 0.5], "raven": [0.25], "path": [1.0, None]}),
                        (1, {"sym": [0.0, 0.5], "raven": [0.75], "path": [0.5, 0.5]})):
        for sub, dim in (("sym", "abstract_reasoning"), ("raven", "abstract_reasoning"), ("path", "spatial_reasoning")):
            for i, v in enumerate(values[sub]):
                _score_file(m / f"wan_{run_}" / dim / sub, f"0{i}", v)
    agg = aggregate(read_scores(m))
    abstract, spatial = agg["dimensions"]["abstract_reasoning"], agg["dimensions"]["spatial_reasoning"]
    assert abstract["pooled"] == pytest.approx((1 + 0.5 + 0.25 + 0 + 0.5 + 0.75) / 6)  # every score file pooled
    assert abstract["subtask_mean"] == pytest.approx(((1 + 0.5 + 0 + 0.5) / 4 + (0.25 + 0.75) / 2) / 2)
    assert spatial["pooled"] == pytest.approx((1 + 0.5 + 0.5) / 3) and spatial["dropped"] == 1  # the failed one is left out
    assert agg["avg_pooled"] == pytest.approx((abstract["pooled"] + spatial["pooled"]) / 2)
    assert agg["score_files"] == 9 and agg["dropped"] == 1
    strict = aggregate(read_scores(m, strict=True))["dimensions"]["spatial_reasoning"]
    assert strict["pooled"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "0_generated_videos").rglob("*"))
    _, table, where = score_genvire(tmp_path / "0_generated_videos")
    assert f"| wan | 9 | {agg['avg_pooled']:.3f} | {abstract['pooled']:.3f} | 0.000 | 0.000 | 0.000 | 0.000 | {spatial['pooled']:.3f} |" in table
    assert "| wan | wan_0, wan_1 | 10 | 9 | 1 | 0 |  |  |  |  | 1 |" in table  # the dropped judgement, apart from step4's table
    assert (where / "wan_summary.csv").read_text().splitlines()[1].startswith("wan,9,")
    assert where == tmp_path / "0_generated_videos-step4"  # beside the tree ...
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "0_generated_videos").rglob("*")) == before  # ... never inside


# -- VBVR: ground-truth replay, floors, export --------------------------------------------------------------------

FAST = {"first_clip_seconds": 4.0, "clip_seconds": 1.0}


def test_ground_truth_replay_scores_at_the_top_and_exports_the_official_layout(tmp_path):
    data = tmp_path / "simvbvr"
    export_sim_suite(data, spec="sim:maze/easy", n=1, size=128)
    assert json.loads((data / "VBVR-Bench.json").read_text())[0]["first_frame_path"] == "In-Domain_50/sim-maze-easy/00000/first_frame.png"
    runs = {}
    for vgm in ("groundtruth", "still"):
        out = tmp_path / vgm
        run_bench(BenchConfig(out=out, suite=f"vbvr:{data}", methods=["single"], vgm=vgm, vlm="sim", size=128,
                              context=FAST, concurrency=1))
        runs[vgm] = read_results(out / "results.jsonl")
    gt, still = runs["groundtruth"][0], runs["still"][0]
    assert gt["sample"] == "In-Domain_50/sim-maze-easy/00000" and gt["run"] == 0
    assert gt["score"] >= 1.0 - EPSILON and gt["solved"]  # the sim scorer on the replayed optimal solution
    assert still["score"] < 0.5
    table = (tmp_path / "groundtruth" / "results.md").read_text()
    assert "NOT the official VBVR-EvalKit score" in table and "| In-Domain_50 | sim-maze-easy |" in table
    written, _ = export_run(tmp_path / "groundtruth", "vbvr", tmp_path / "export")
    assert [p.relative_to(tmp_path / "export").as_posix() for p in written] == ["single/In-Domain_50/sim-maze-easy/00000.mp4"]
    from collabvr.scoring import first_order_score

    first = Image.open(data / "In-Domain_50/sim-maze-easy/00000/first_frame.png").array
    final = Image.open(data / "In-Domain_50/sim-maze-easy/00000/final_frame.png").array
    assert first_order_score(Video.open(written[0]).frames, first, final)["score"] >= 1.0 - EPSILON


def test_the_html_report_of_a_vbvr_bench_shows_floor_ceiling_and_normalized_score(tmp_path):
    from collabvr.bench.report import write_report

    data = tmp_path / "simvbvr"
    export_sim_suite(data, spec="sim:maze/easy", n=1, size=128)
    out = tmp_path / "still"
    run_bench(BenchConfig(out=out, suite=f"vbvr:{data}", methods=["single"], vgm="still", vlm="sim", size=128,
                          context=FAST, concurrency=1))
    bounds = json.loads((out / "summary.json").read_text())["benchmark"]["bounds"]["In-Domain_50/sim-maze-easy/00000"]
    score = read_results(out / "results.jsonl")[0]["score"]
    norm = (score - bounds["floor"]) / (bounds["ceiling"] - bounds["floor"])
    html = write_report(out).read_text()
    assert "NOT the official VBVR-EvalKit score" in html
    assert "<th>floor</th><th>ceiling</th><th>single</th><th>single norm</th>" in html
    assert (f"<td>In-Domain_50</td><td>sim-maze-easy</td><td>{bounds['floor']:.3f}</td><td>{bounds['ceiling']:.3f}</td>"
            f"<td>{score:.3f}</td><td>{norm:.3f}</td>") in html
    assert "| floor |" not in html  # rendered as a table, not pasted Markdown


# -- Gen-ViRe end to end, offline -----------------------------------------------------------------------------------


class RavenFails(Brain):
    """Judges everything with full marks, except that its raven answers never validate."""

    def answer(self, role, text, media):
        if role == "rubric" and "Score the matrix" in text:
            return {"nonsense": True}
        return super().answer(role, text, media)


def test_genvire_end_to_end_with_the_api_fakes_exports_official_score_files(tmp_path):
    root = make_genvire(tmp_path / "gvr")
    with FakeGoogle(brain=RavenFails(steps=1)) as google:
        config = BenchConfig(out=tmp_path / "bench", suite=f"genvire:{root}", methods=["collabvr"], concurrency=1,
                             vgm="veo:veo-3.1-generate-001", vlm="gemini:gemini-2.5-pro", vgm_options=veo_options(google),
                             vlm_options=gemini_options(google), context={"first_clip_seconds": 4.0, "max_steps": 1},
                             judge_repeats=2)
        run_bench(config)
    results = {r["sample"]: r for r in read_results(tmp_path / "bench" / "results.jsonl")}
    assert set(results) == {"abstract_reasoning/raven_matrix/01", "abstract_reasoning/symmetry/random_01", "spatial_reasoning/maze/01"}
    maze = results["spatial_reasoning/maze/01"]
    assert maze["score"] == 1.0 and maze["judge"]["calls"] == 2 and maze["judge"]["status"] == "judged"
    raven = results["abstract_reasoning/raven_matrix/01"]
    assert raven["score"] is None and raven["judge"]["status"] == "judge_failed"  # a typed failure, never a score
    assert maze["compute"]["vlm_calls"] == 2  # plan and verify: the two judge calls are counted apart
    export_run(tmp_path / "bench", "genvire", tmp_path / "out")
    gen = tmp_path / "out" / "0_generated_videos" / "collabvr"
    video = gen / "collabvr_0" / "spatial_reasoning" / "maze" / "01.mp4"
    assert video.is_file() and (gen / "collabvr_0" / "abstract_reasoning" / "symmetry" / "random_01.mp4").is_file()
    assert sorted(p.name for p in gen.iterdir() if p.is_dir()) == ["collabvr_0"]  # one run: one folder, the repeats inside
    official = json.loads((video.parent / "01_score.json").read_text())
    assert [r["Criterion_1_Path_Validity"]["Score"] for r in official["repeats"]] == [1.0, 1.0]  # maze's own key
    assert official["normalized_score"] == 1.0 and official["judge_calls"] == 2 and official["task_id"] == "01"
    assert not (gen / "collabvr_0" / "abstract_reasoning" / "raven_matrix" / "01_score.json").exists()
    aggs, table, _ = score_genvire(tmp_path / "out" / "0_generated_videos")
    abstract = aggs[0]["dimensions"]["abstract_reasoning"]
    assert abstract["pooled"] == 1.0 and abstract["dropped"] == 1  # raven's one video dropped, officially
    strict, _, _ = score_genvire(tmp_path / "out" / "0_generated_videos", strict=True)
    assert strict[0]["dimensions"]["abstract_reasoning"]["pooled"] == pytest.approx(0.5)
    assert "NOT the official one" in (tmp_path / "bench" / "results.md").read_text()
    from collabvr.bench.report import write_report

    html = write_report(tmp_path / "bench").read_text()  # the same Gen-ViRe tables in the HTML report
    assert "NOT the official one" in html and "<th>Abstract</th>" in html and "<td>1.000</td>" in html


def test_a_user_task_with_a_rubric_is_judged_by_a_separate_judge(user_task, tmp_path):
    from collabvr.scoring import JudgeSpec

    with FakeGoogle(brain=Brain(steps=1)) as google:
        task = user_task.with_rubric('{"Criterion_1_Goal": {"score": 0}, "Criterion_2_Clean": {"score": 0}}')
        episode = run(task, vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001", vlm_options=gemini_options(google),
                      vgm_options=veo_options(google), out_dir=str(tmp_path / "run"),
                      judge=JudgeSpec("gemini:gemini-2.5-flash", gemini_options(google)))
        judged = [c for c in google.calls("generateContent") if "gemini-2.5-flash" in c.path]
    assert episode.score["score"] == 1.0 and episode.score["judge"]["spec"] == "gemini:gemini-2.5-flash"
    assert len(judged) == 1 and episode.score["repeats"][0]["score_file"]["criterion_count"] == 2
    assert episode.compute["vlm_calls"] == 2  # plan and verify only: judge calls are counted apart


def _opts(flag: str, options: dict) -> list[str]:
    return [x for k, v in options.items() for x in (flag, f"{k}={v}")]


def test_cli_run_with_a_rubric_scores_a_user_task_and_export_suite_writes_the_vbvr_layout(user_task, tmp_path):
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Give Criterion_1_Goal 1 point if the goal is reached.")
    with FakeGoogle(brain=Brain(steps=1)) as google:
        result = CliRunner().invoke(app, [
            "run", "--image", user_task.image_path, "--prompt", "reach the goal", "--rubric", str(rubric),
            "--vlm", "gemini:gemini-2.5-pro", "--vgm", "veo:veo-3.1-generate-001", *_opts("--vlm-option", gemini_options(google)),
            *_opts("--vgm-option", veo_options(google)), "--out", str(tmp_path / "run"), "--yes", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "trace.json").read_text())["score"]["score"] == 1.0
    result = CliRunner().invoke(app, ["export-suite", "sim:maze/easy", "--out", str(tmp_path / "sx"), "--n", "2", "--size", "128"])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "sx").as_posix() for p in (tmp_path / "sx").rglob("*.*")) == [
        "In-Domain_50/sim-maze-easy/00000/final_frame.png", "In-Domain_50/sim-maze-easy/00000/first_frame.png",
        "In-Domain_50/sim-maze-easy/00000/ground_truth.mp4", "In-Domain_50/sim-maze-easy/00000/prompt.txt",
        "In-Domain_50/sim-maze-easy/00001/final_frame.png", "In-Domain_50/sim-maze-easy/00001/first_frame.png",
        "In-Domain_50/sim-maze-easy/00001/ground_truth.mp4", "In-Domain_50/sim-maze-easy/00001/prompt.txt",
        "VBVR-Bench.json"]
