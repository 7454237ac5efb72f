"""A user's mistake gets one line, the fix and exit 2, never a traceback, and leaves no partial run
directory: out-of-range numbers, an output path that cannot be written, a damaged checkpoint file,
an unreachable Ray head, a missing optional dependency. Ctrl-C says how to resume and exits 130."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collabvr.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
QUICK = ["--first-seconds", "2", "--seconds", "1", "--max-steps", "2", "--quiet"]


def one_line(args: list[str]) -> str:
    """Run the CLI in-process; assert exit 2 with one line and no exception; return the line."""
    result = runner.invoke(app, args, prog_name="collabvr")
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("plan:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A directory this process cannot create anything in: read-only by its mode, or, where the tests
    run as root (whom the mode does not stop), sysfs, which refuses new entries to everyone."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").mkdir()
    except PermissionError:
        return folder
    (folder / "probe").rmdir()  # the mode did not stop us: root
    folder = Path("/sys/kernel")
    with pytest.raises(OSError):
        (folder / "collabvr-probe").mkdir()
    return folder


@pytest.mark.parametrize("command", [
    ["run", "--task", "sim:maze/easy"],
    ["bench", "--suite", "sim:maze/easy", "--n", "1"],
    ["export-suite", "sim:maze/easy"],
    ["calibrate", "--vlm", "sim"],
])
def test_a_negative_seed_is_one_line_for_every_command(command, tmp_path):
    line = one_line([*command, "--seed", "-1", "--out", str(tmp_path / "out")])
    assert "'--seed'" in line and "greater than or equal to 0" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--seed", "--max-steps"])
def test_a_number_beyond_64_bits_is_refused_before_a_run_directory_exists(option, tmp_path):
    line = one_line(["run", "--task", "sim:maze/easy", option, str(2**70), "--out", str(tmp_path / "run")])
    assert option in line
    assert not (tmp_path / "run").exists()


def test_an_absurd_fps_is_refused_before_any_frame_is_made(tmp_path):
    started = time.perf_counter()
    line = one_line(["run", "--task", "sim:maze/easy", "--fps", "100000", "--out", str(tmp_path / "run")])
    assert "--fps" in line and "120" in line
    assert time.perf_counter() - started < 10 and not (tmp_path / "run").exists()


def test_a_bench_whose_seeds_run_past_the_seed_range_is_refused(tmp_path):
    line = one_line(["bench", "--suite", "sim:maze/easy", "--seed", str(2**32 - 2), "--n", "5", "--out", str(tmp_path / "b")])
    assert "SEED+N-1" in line and not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", [
    ["run", "--task", "sim:maze/easy", *QUICK],
    ["bench", "--suite", "sim:maze/easy", "--n", "1", "--methods", "single", "--quiet"],
])
def test_an_out_that_is_a_file_is_one_line(command, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = one_line([*command, "--out", str(afile)])
    assert str(afile) in line and "a file stands where a directory belongs" in line
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("command", [
    ["run", "--task", "sim:maze/easy", *QUICK],
    ["bench", "--suite", "sim:maze/easy", "--n", "1", "--methods", "single", "--quiet"],
    ["export-suite", "sim:maze/easy", "--n", "1"],
    ["calibrate", "--vlm", "sim", "--n", "4"],
])
def test_an_output_directory_that_cannot_be_written_is_one_line(command, unwritable):
    line = one_line([*command, "--out", str(unwritable / "out")])
    assert f"cannot use {unwritable}" in line and "choose a place you can write to" in line


def test_report_into_a_directory_that_cannot_be_written_is_one_line(tmp_path):
    bench = tmp_path / "bench"
    done = runner.invoke(app, ["bench", "--suite", "sim:maze/easy", "--n", "1", "--methods", "single", "--quiet",
                               "--out", str(bench)])
    assert done.exit_code == 0, done.output
    (bench / "report").write_text("a file where the report folder goes")  # stops root too
    bench.chmod(0o555)
    try:
        line = one_line(["report", str(bench)])
    finally:
        bench.chmod(0o755)
    assert "report" in line and "cannot use" in line


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 3)


def test_a_truncated_checkpoint_file_on_resume_says_what_to_move_aside(tmp_path):
    run_dir = tmp_path / "run"
    first = runner.invoke(app, ["run", "--task", "sim:maze/easy", *QUICK, "--out", str(run_dir)])
    assert first.exit_code in (0, 3), first.output
    _truncate(run_dir / "checkpoints.sqlite")
    line = one_line(["run", "--resume", str(run_dir), "--quiet"])
    assert f"mv {run_dir / 'checkpoints.sqlite'} " in line and f"collabvr run --resume {run_dir}" in line


def test_a_truncated_bench_checkpoint_file_says_what_to_move_aside_and_that_the_results_are_intact(tmp_path):
    bench = tmp_path / "bench"
    args = ["bench", "--suite", "sim:maze/easy", "--n", "2", "--methods", "single", "--quiet", "--out", str(bench)]
    assert runner.invoke(app, args).exit_code == 0
    results = (bench / "results.jsonl").read_text()
    kept = results.splitlines()[0] + "\n"
    (bench / "results.jsonl").write_text(kept)  # one episode left to run: the bench opens its checkpoints
    _truncate(bench / "checkpoints.sqlite")
    line = one_line(args)
    assert f"mv {bench / 'checkpoints.sqlite'} " in line and f"{bench / 'results.jsonl'} are intact" in line
    assert (bench / "results.jsonl").read_text() == kept


def test_an_unreachable_ray_head_is_one_line_within_seconds(tmp_path):
    """In a child process with a deadline: without the check, Ray waits on a dead address for minutes."""
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "collabvr.cli", "bench", "--suite", "sim:maze/easy", "--n", "1", "--methods",
                           "single", "--executor", "ray", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if not line.startswith("plan: ")]
    assert line.startswith(f"error: cannot reach the Ray head at 127.0.0.1:{port}") and "ray start --head" in line
    assert time.perf_counter() - started < 30 and not (tmp_path / "b").exists()


def test_a_missing_optional_dependency_names_the_pip_command(tmp_path):
    """google-genai is installed here: the child process blocks its import, as an install without it would fail."""
    code = ("import sys; sys.modules['google.genai'] = None; from collabvr.cli import main; "
            f"sys.argv = ['collabvr', 'run', '--vlm', 'gemini:gemini-2.5-pro', '--out', {str(tmp_path / 'run')!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'collabvr[google]'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_misspelt_method_name_is_called_unknown_not_a_bad_k(tmp_path):
    line = one_line(["run", "--task", "sim:maze/easy", "--method", "pas@4", "--out", str(tmp_path / "run")])
    assert "unknown method 'pas@4'" in line and "pass@k" in line


def test_a_bad_option_value_is_one_line_naming_the_help(tmp_path):
    line = one_line(["run", "--max-attempts", "lots", "--out", str(tmp_path / "run")])
    assert "--max-attempts" in line and "collabvr run --help" in line


# -- Ctrl-C --------------------------------------------------------------------------------------


def _interrupt(args: list[str], cwd: Path, ready) -> subprocess.CompletedProcess:
    """Start the command, send SIGINT (Ctrl-C) once ``ready()`` holds, return what it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "collabvr.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_in_run_says_how_to_resume_and_the_resume_finishes_the_episode(tmp_path):
    run_dir = tmp_path / "run"
    slow = ["--vlm-option", "latency_s=0.3"]
    done = _interrupt(["run", "--task", "sim:maze/hard", "--seed", "7", "--out", str(run_dir), "--quiet", *slow], tmp_path,
                      lambda: (run_dir / "run.json").is_file())
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"interrupted; run `collabvr run --resume {run_dir}` to resume"
    assert "Traceback" not in done.stderr
    resumed = runner.invoke(app, ["run", "--resume", str(run_dir), "--quiet"])
    assert resumed.exit_code in (0, 3), resumed.output
    assert json.loads((run_dir / "trace.json").read_text())["status"] != "error"


def test_ctrl_c_in_bench_says_to_run_the_same_command_again_and_that_resumes(tmp_path):
    bench = tmp_path / "bench"

    def args(n: int) -> list[str]:
        return ["bench", "--suite", "sim:maze/easy", "--methods", "single", "--n", str(n), "--concurrency", "1",
                "--vgm-option", "latency_s=0.2", "--out", str(bench), "--quiet"]

    results = bench / "results.jsonl"
    done = _interrupt(args(40), tmp_path, lambda: results.is_file() and results.read_text().count("\n") >= 1)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"interrupted; run the same command again to resume (the finished episodes in {results} are kept)")
    assert "Traceback" not in done.stderr
    before = results.read_text().splitlines()
    again = runner.invoke(app, args(max(2, len(before))))  # the same command, fewer seeds: it resumes
    assert again.exit_code == 0, again.output
    after = results.read_text().splitlines()
    assert after[:len(before)] == before and len(after) == max(2, len(before))  # nothing finished ran again


def test_ctrl_c_in_bench_stops_the_episode_in_flight_after_its_running_call_and_the_rerun_finishes_it(tmp_path):
    """Ctrl-C says at once that it is stopping, and the episode in flight stops after the model call it is
    making (one of about eight 0.5 s generations), with no results line; running the command again
    continues it from its checkpoint to the same result as an uninterrupted run."""
    bench = tmp_path / "bench"

    def args(out: Path, *slow: str) -> list[str]:
        return ["bench", "--suite", "sim:maze/hard", "--methods", "collabvr", "--n", "1", "--concurrency", "1",
                *slow, "--out", str(out), "--quiet"]

    slow = ("--vgm-option", "latency_s=0.5")
    done = _interrupt(args(bench, *slow), tmp_path, lambda: any(bench.glob("episodes/*/*/run.json")))
    assert done.returncode == 130, done.stderr
    *_, stopping, last = done.stderr.strip().splitlines()
    assert stopping.startswith("stopping: no episode starts, and the 1 episode in flight stop after"), done.stderr
    assert last.startswith("interrupted; run the same command again to resume")
    results = bench / "results.jsonl"
    assert not results.is_file() or not results.read_text().strip()  # stopped, not finished
    again = runner.invoke(app, args(bench, *slow))
    assert again.exit_code == 0, again.output
    (resumed,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert resumed["resumed"] is True
    fresh = runner.invoke(app, args(tmp_path / "fresh"))  # the latency changes no result
    assert fresh.exit_code == 0, fresh.output
    (reference,) = [json.loads(line) for line in (tmp_path / "fresh" / "results.jsonl").read_text().splitlines()]
    for key in ("status", "score", "solved"):
        assert resumed[key] == reference[key], key
    for key in ("clip_seconds", "vgm_calls", "vlm_calls"):
        assert resumed["compute"][key] == reference["compute"][key], key
