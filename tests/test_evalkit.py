"""VBVR-EvalKit run for the user: ``collabvr score vbvr`` and ``bench --evalkit`` on a stand-in clone
(tests/fakes/evalkit: the kit's command lines and result files, a toy score). The checks read what
the stand-in received (the videos and ground-truth files it opened) and recompute its toy rule from the
videos themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from collabvr.bench.config import BenchConfig
from collabvr.bench.runner import run_bench
from collabvr.bench.suites.vbvr import export_sim_suite
from collabvr.cli import app
from tests.test_benchmarks import make_vbvr

STANDIN = Path(__file__).parent / "fakes" / "evalkit"


@pytest.fixture
def kit(tmp_path: Path) -> tuple[Path, str]:
    """A clone of the stand-in, committed: (its folder, its short commit)."""
    root = tmp_path / "VBVR-EvalKit"
    shutil.copytree(STANDIN, root)
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "stand-in"], check=True)
    return root, subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def closeness(frame: np.ndarray, reference: Path) -> float:
    """The stand-in's documented toy rule (tests/fakes/evalkit/README.md)."""
    ref = np.asarray(PILImage.open(reference).convert("RGB"), dtype=float)
    frame = np.asarray(PILImage.fromarray(frame).resize((ref.shape[1], ref.shape[0])), dtype=float)
    return float(1.0 - np.abs(frame - ref).mean() / 255.0)


def make_export(data: Path, out: Path) -> Path:
    """Model "replay": every sample's ground truth; model "held": every sample's first frame, 4 frames."""
    for sample in sorted(data.glob("*/*/0*")):
        split, task, sid = sample.parts[-3:]
        (out / "replay" / split / task).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample / "ground_truth.mp4", out / "replay" / split / task / f"{sid}.mp4")
        first = np.asarray(PILImage.open(sample / "first_frame.png").convert("RGB"))
        (out / "held" / split / task).mkdir(parents=True, exist_ok=True)
        from collabvr.media import Video

        (out / "held" / split / task / f"{sid}.mp4").write_bytes(Video(frames=np.stack([first] * 4), fps=8).mp4)
    return out


def test_score_vbvr_runs_the_clone_on_each_model_and_reports_its_scores_by_task_split_and_overall(kit, tmp_path):
    root, commit = kit
    data = make_vbvr(tmp_path / "data")
    export = make_export(data, tmp_path / "exports" / "vbvr")
    result = CliRunner().invoke(app, ["score", "vbvr", str(export), "--evalkit", str(root), "--gt-base", str(data)])
    assert result.exit_code == 0, result.output
    assert f"run_evaluation.py (task-specific score), commit {commit}" in result.output
    where = tmp_path / "exports" / "vbvr-run_evaluation"  # beside the export, not inside it
    official = json.loads((where / "vbvr_official.json").read_text())
    for model in ("replay", "held"):
        kit_file = json.loads((where / model / f"{model}_vbvr_results.json").read_text())
        for sample in kit_file["samples"]:  # what the stand-in opened: our video, and the sample's own final frame
            split, task, sid = sample["folder"], sample["task_name"], sample["video_file"][:5]
            assert sample["received"]["video"] == str((export / model / split / task / f"{sid}.mp4").resolve())
            assert sample["received"]["gt_final_frame"] == str((data / split / task / sid / "final_frame.png").resolve())
            expected = closeness(frames(export / model / split / task / f"{sid}.mp4")[-1], data / split / task / sid / "final_frame.png")
            assert official["models"][model]["samples"][f"{split}/{task}/{sid}"] == pytest.approx(expected)
        # the Out-of-Domain task has no evaluator in this kit: not scored, and said so
        assert official["models"][model]["not_scored"] == ["Out-of-Domain_50/G-135_select_next_figure_data-generator/00000"]
        assert official["models"][model]["overall"][1] == 4 and official["models"][model]["exported"] == 5
    replay, held = (official["models"][m]["overall"][0] for m in ("replay", "held"))
    assert replay > 0.99 and held < 0.5  # 40 grey first frames against 200 grey final frames
    table = (where / "vbvr_official.md").read_text()
    assert f"| held | overall | | 4 | {held:.3f} |" in table and "| held | 5 | 4 | 0 | Out-of-Domain_50/G-135" in table
    assert subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True).stdout == ""  # unchanged


def test_score_vbvr_with_evaluate_gives_the_weighted_score_of_every_video(kit, tmp_path):
    root, commit = kit
    data = make_vbvr(tmp_path / "data")
    export = make_export(data, tmp_path / "exports" / "vbvr")
    result = CliRunner().invoke(app, ["score", "vbvr", str(export / "held"), "--evalkit", str(root), "--gt-base", str(data),
                                      "--entry", "evaluate", "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert f"evaluate.py (weighted score), commit {commit}" in result.output
    held = json.loads((tmp_path / "w" / "vbvr_official.json").read_text())["models"]["held"]
    assert held["exported"] == 5 and held["not_scored"] == [] and held["overall"][1] == 5
    sample = data / "In-Domain_50/O-47_sliding_puzzle_data-generator/00001"
    video = frames(export / "held/In-Domain_50/O-47_sliding_puzzle_data-generator/00001.mp4")
    task = closeness(video[-1], sample / "final_frame.png")
    weighted = 0.15 * closeness(video[0], sample / "first_frame.png") + 0.35 * task + 0.25 + 0.25 * task
    assert held["samples"]["In-Domain_50/O-47_sliding_puzzle_data-generator/00001"] == pytest.approx(weighted)
    assert held["splits"]["Out_of_Domain"][1] == 1


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("  evalkit:")]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_score_vbvr_fails_in_one_line_on_a_folder_that_is_not_an_evalkit_clone(tmp_path):
    data = make_vbvr(tmp_path / "data")
    export = make_export(data, tmp_path / "exports" / "vbvr")
    (tmp_path / "notkit").mkdir()
    line = _one_error_line(CliRunner().invoke(app, ["score", "vbvr", str(export), "--evalkit", str(tmp_path / "notkit"),
                                                    "--gt-base", str(data)]))
    assert "not a VBVR-EvalKit clone (no run_evaluation.py" in line and "git clone https://github.com/Video-Reason/VBVR-EvalKit" in line
    line = _one_error_line(CliRunner().invoke(app, ["score", "vbvr", str(export), "--gt-base", str(data)]))
    assert "needs --evalkit" in line
    assert not (tmp_path / "exports" / "vbvr-run_evaluation").exists()


def test_score_vbvr_fails_in_one_line_when_the_interpreter_lacks_the_kits_requirements(kit, tmp_path):
    root, _ = kit
    data = make_vbvr(tmp_path / "data")
    export = make_export(data, tmp_path / "exports" / "vbvr")
    bare = tmp_path / "bare-python"  # this interpreter without its site-packages: no numpy, no av
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    line = _one_error_line(CliRunner().invoke(app, ["score", "vbvr", str(export), "--evalkit", str(root), "--gt-base", str(data),
                                                    "--python", str(bare)]))
    assert f"{bare} cannot import VBVR-EvalKit (ModuleNotFoundError: No module named" in line
    assert f"-m pip install -r {root / 'requirements.txt'}" in line


def test_score_vbvr_fails_in_one_line_with_the_kits_last_lines_when_it_crashes(kit, tmp_path, monkeypatch):
    root, _ = kit
    data = make_vbvr(tmp_path / "data")
    export = make_export(data, tmp_path / "exports" / "vbvr")
    (tmp_path / "elsewhere").mkdir()
    line = _one_error_line(CliRunner().invoke(app, ["score", "vbvr", str(export), "--evalkit", str(root),
                                                    "--gt-base", str(tmp_path / "elsewhere")]))
    assert "elsewhere: not a VBVR-Bench download (no In-Domain_50 or Out-of-Domain_50)" in line
    monkeypatch.setenv("STANDIN_FAIL", "1")
    line = _one_error_line(CliRunner().invoke(app, ["score", "vbvr", str(export), "--evalkit", str(root), "--gt-base", str(data),
                                                    "--quiet"]))
    assert "run_evaluation.py (task-specific score)" in line and "failed (exit 1)" in line
    assert "RuntimeError: stand-in told to fail (STANDIN_FAIL)" in line and "evalkit-run_evaluation.log" in line


FAST = {"first_clip_seconds": 4.0, "clip_seconds": 1.0}


def still_bench(tmp_path: Path, n: int, **extra: str) -> tuple[Path, Path]:
    """A bench of ``single`` with the still VGM on n samples of the sim's maze in VBVR's layout: (data, bench)."""
    data, out = tmp_path / "simvbvr", tmp_path / "b"
    export_sim_suite(data, spec="sim:maze/easy", n=n, size=128)
    run_bench(BenchConfig(out=out, suite=f"vbvr:{data}", methods=["single"], vgm="still", vlm="sim", size=128, context=FAST,
                          concurrency=1, **extra))
    return data, out


def test_bench_with_evalkit_scores_methods_floor_and_ceiling_by_the_same_entry_point(kit, tmp_path):
    root, commit = kit
    data, out = still_bench(tmp_path, 2, evalkit=str(root), evalkit_entry="evaluate")
    official = json.loads((out / "summary.json").read_text())["benchmark"]["official"]
    assert official["entry"] == "evaluate" and official["commit"] == commit
    assert set(official["models"]) == {"single", "floor-still", "ceiling-groundtruth"}
    videos = out / "official" / "videos"
    for sid in ("00000", "00001"):
        sample = data / "In-Domain_50/sim-maze-easy" / sid
        still = frames(videos / "floor-still/In-Domain_50/sim-maze-easy" / f"{sid}.mp4")
        truth = frames(sample / "ground_truth.mp4")
        assert len(still) == len(truth) and all(np.abs(f.astype(int) - still[0]).max() <= 8 for f in still)  # held, as long as GT
        assert closeness(still[0], sample / "first_frame.png") > max(0.97, closeness(still[0], sample / "final_frame.png"))
        kit_file = json.loads((out / "official/evaluate/floor-still/floor-still_eval_results.json").read_text())
        received = {d["received"]["video"] for d in kit_file["detailed"]}
        assert str((videos / "floor-still/In-Domain_50/sim-maze-easy" / f"{sid}.mp4").resolve()) in received
    floor = np.mean(list(official["models"]["floor-still"]["samples"].values()))
    ceiling = np.mean(list(official["models"]["ceiling-groundtruth"]["samples"].values()))
    method = np.mean(list(official["models"]["single"]["samples"].values()))
    assert ceiling > floor
    text = (out / "results.md").read_text()
    assert f"evaluate.py (weighted score), commit {commit}" in text
    assert f"| In-Domain_50 | sim-maze-easy | {floor:.3f} | {ceiling:.3f} | {method:.3f} | {(method - floor) / (ceiling - floor):.3f} |" in text
    assert "NOT the official VBVR-EvalKit score" in text  # the first-order table stays, beside it


def test_bench_with_a_bad_evalkit_fails_before_any_episode(tmp_path):
    data = tmp_path / "simvbvr"
    export_sim_suite(data, spec="sim:maze/easy", n=1, size=128)
    (tmp_path / "notkit").mkdir()
    result = CliRunner().invoke(app, ["bench", "--suite", f"vbvr:{data}", "--methods", "single", "--vgm", "still", "--vlm", "sim",
                                      "--out", str(tmp_path / "b"), "--evalkit", str(tmp_path / "notkit"), "--quiet"])
    assert "not a VBVR-EvalKit clone" in _one_error_line(result)
    assert not (tmp_path / "b" / "results.jsonl").exists()
    result = CliRunner().invoke(app, ["bench", "--suite", "sim:maze/easy", "--out", str(tmp_path / "s"), "--evalkit", str(tmp_path)])
    assert "--evalkit scores a VBVR-Bench suite" in _one_error_line(result)


def test_the_bounds_script_scores_floor_and_ceiling_by_both_entry_points_and_the_first_order_scorer(kit, tmp_path):
    from collabvr.bench.suites import parse_suite
    from collabvr.bench.suites.vbvr import floor_and_ceiling

    root, commit = kit
    data = make_vbvr(tmp_path / "data")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "vbvr_bounds.py"
    proc = subprocess.run([sys.executable, str(script), str(data), "--evalkit", str(root), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bounds = json.loads((tmp_path / "o" / "bounds.json").read_text())
    assert bounds["commits"] == {"run_evaluation": commit, "evaluate": commit}
    o47 = bounds["tasks"]["In-Domain_50/O-47_sliding_puzzle_data-generator"]
    rows = [r for r in parse_suite(f"vbvr:{data}").rows if r.task.startswith("O-47")]
    assert o47["first-order"]["floors"] == pytest.approx([floor_and_ceiling(r)[0] for r in rows])
    for r, floor in zip(rows, o47["run_evaluation"]["floors"], strict=True):  # the kit scored the held first frame
        still = frames(tmp_path / "o" / "videos" / "floor-still" / r.split / r.task / f"{r.id}.mp4")
        assert floor == pytest.approx(closeness(still[-1], r.final_frame))
    g135 = bounds["tasks"]["Out-of-Domain_50/G-135_select_next_figure_data-generator"]
    assert g135["run_evaluation"]["n"] == 0 and g135["evaluate"]["n"] == 1  # skipped by one entry point, scored by the other
    assert "| In-Domain_50/O-47_sliding_puzzle_data-generator | 2 |" in proc.stdout


def test_report_with_evalkit_scores_a_finished_bench_and_shows_the_official_table(kit, tmp_path):
    root, commit = kit
    _, out = still_bench(tmp_path, 1)
    assert "official" not in json.loads((out / "summary.json").read_text())["benchmark"]
    result = CliRunner().invoke(app, ["report", str(out), "--evalkit", str(root)])
    assert result.exit_code == 0, result.output
    official = json.loads((out / "summary.json").read_text())["benchmark"]["official"]
    floor = official["models"]["floor-still"]["samples"]["In-Domain_50/sim-maze-easy/00000"]
    ceiling = official["models"]["ceiling-groundtruth"]["samples"]["In-Domain_50/sim-maze-easy/00000"]
    html = (out / "report" / "index.html").read_text()
    assert f"run_evaluation.py (task-specific score), commit {commit}" in html
    assert f"<td>In-Domain_50</td><td>sim-maze-easy</td><td>{floor:.3f}</td><td>{ceiling:.3f}</td>" in html


@pytest.mark.parametrize("args, words", [
    (["vbvr", "x", "--evalkit", "k", "--strict"], "--strict is for genvire"),
    (["genvire", "x", "--evalkit", "k"], "--evalkit, --gt-base and --python are for vbvr"),
    (["atari", "x"], "unknown benchmark 'atari'"),
    (["vbvr", "x", "--evalkit", "k", "--entry", "fast"], "--entry must be one of run_evaluation, evaluate"),
])
def test_score_with_options_of_the_other_benchmark_exits_2_with_one_line(args, words, tmp_path):
    make_vbvr(tmp_path / "x")
    (tmp_path / "x" / "collabvr_export.json").write_text(json.dumps({"gt_base": str(tmp_path / "x")}))
    result = CliRunner().invoke(app, ["score", *[str(tmp_path / a) if a in ("x", "k") else a for a in args]])
    assert words in _one_error_line(result)
