"""The command line: a successful run, the graph, and one clear line with exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from collabvr.backends.sim.families import FAMILIES
from collabvr.cli import app
from collabvr.graph import METHODS
from collabvr.status import EXIT_INCOMPLETE, EXIT_OK, completed

runner = CliRunner()


def test_run_writes_outputs_and_prints_a_summary(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "collabvr.cli", "run", "--task", "sim:sort/easy", "--seed", "2", "--out", str(out),
         "--first-seconds", "2", "--seconds", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sim:sort/easy#2" in proc.stdout and "score" in proc.stdout
    assert "step 1 plan:" in proc.stderr  # live progress
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"] == "complete"  # seeded and deterministic: this episode completes
    assert f"│ attempts                 │ {len(trace['attempts'])}" in proc.stdout  # every attempt, not this step's
    assert (out / "final.mp4").stat().st_size > 0 and (out / "contact_sheet.png").stat().st_size > 0


def test_graph_prints_a_mermaid_diagram_of_the_real_edges():
    result = runner.invoke(app, ["graph"])
    assert result.exit_code == 0
    text = result.stdout
    for edge in ("plan -.-> generate", "generate -.-> verify", "verify -.-> repair", "repair --> generate", "verify -.-> plan"):
        assert edge in text, edge


def _bad(args: list[str], tmp_path) -> str:
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) <= 2  # one line (rich may wrap a long one)
    assert not (tmp_path / "bad" / "trace.json").exists()
    return message


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--task", "sim:nope/hard"], "unknown sim task family"),
        (["run", "--task", "sim:maze/impossible"], "unknown difficulty"),
        (["run", "--task", "vbvr:task1"], "unknown task"),
        (["run", "--task", "sim:maze/easy", "--vlm", "nosuch:model"], "unknown backend provider"),
        (["run", "--task", "sim:maze/easy", "--vgm", "sim:ultra"], "unknown sim preset"),
        (["run", "--task", "sim:maze/easy", "--max-steps", "0"], "--max-steps"),
        (["run", "--task", "sim:maze/easy", "--max-attempts", "-1"], "--max-attempts"),
        (["run", "--task", "sim:maze/easy", "--seconds", "0"], "clip_seconds"),
        (["run", "--task", "sim:maze/easy", "--seed-policy", "random"], "seed_policy"),
        (["run", "--task", "sim:maze/easy", "--vgm-option", "drift_base=2"], "probability"),
        (["run", "--method", "nosuch", "--task", "sim:maze/easy"], "unknown method"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_code_2(args, needle, tmp_path):
    assert needle in _bad(args, tmp_path)


def test_unreadable_image_is_bad_input(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    assert "cannot read image" in _bad(["run", "--image", str(junk), "--prompt", "solve it", "--vlm", "x:y"], tmp_path)
    assert "cannot read image" in _bad(["run", "--image", str(tmp_path / "missing.png"), "--prompt", "p"], tmp_path)


def test_sim_backend_refuses_a_task_that_is_not_a_sim_task(tmp_path, user_task):
    message = _bad(["run", "--image", user_task.image_path, "--prompt", "solve it"], tmp_path)
    assert "only solves sim tasks" in message


def test_image_without_prompt_is_bad_input(tmp_path, user_task):
    assert "--image and --prompt go together" in _bad(["run", "--image", user_task.image_path], tmp_path)


CLI_METHODS = [m.replace("pass_at_k", "pass@3") for m in METHODS]


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("method", CLI_METHODS)
def test_every_method_runs_through_the_cli_live_log_on_every_family(method, family, tmp_path):
    """Not --quiet: the live log renders every event each method emits."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--task", f"sim:{family}/easy", "--seed", "1", "--method", method, "--out", str(out),
                                 "--first-seconds", "2", "--seconds", "1", "--max-steps", "2"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    trace = json.loads((out / "trace.json").read_text())
    assert result.exit_code == (EXIT_OK if completed(trace["status"]) else EXIT_INCOMPLETE), (trace["status"], result.output)
    assert f"{trace['status']}:" in result.output  # the finalized event's line


def test_an_episode_that_ends_without_completing_exits_3_and_one_that_completes_exits_0(tmp_path):
    done = runner.invoke(app, ["run", "--task", "sim:maze/easy", "--seed", "0", "--out", str(tmp_path / "a"), "--quiet"])
    assert done.exit_code == EXIT_OK, done.output
    assert json.loads((tmp_path / "a" / "trace.json").read_text())["status"] == "complete"
    # a budget too small for even the first clip: the episode ends before any generation
    cut = runner.invoke(app, ["run", "--task", "sim:maze/easy", "--seed", "0", "--out", str(tmp_path / "b"), "--budget", "1",
                              "--quiet"])
    assert cut.exit_code == EXIT_INCOMPLETE, cut.output
    assert json.loads((tmp_path / "b" / "trace.json").read_text())["status"] == "budget_spent"


def test_the_live_log_shows_an_event_kind_it_does_not_know_without_failing(capsys):
    from collabvr.cli import _Progress

    progress = _Progress()
    progress({"event": "something_new", "step": 0, "detail": "x"})
    progress({"event": "verified", "step": 0})  # a known kind with fields missing: completed from its schema
    err = capsys.readouterr().err
    assert "something_new" in err and "detail=x" in err and "rejected" in err


def test_a_run_without_out_says_it_replaces_the_earlier_run_in_the_default_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--task", "sim:maze/easy", "--quiet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "replaces" not in first.output, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "note: this run replaces the earlier run in runs/latest; give --out DIR to keep each run" in second.output
    kept = runner.invoke(app, [*args, "--out", "runs/latest"])  # named on purpose: no note
    assert kept.exit_code == 0 and "replaces" not in kept.output
