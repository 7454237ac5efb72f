"""What ``collabvr bench`` tells the person waiting on it: the plan before any work (at once, even
for a huge --n), the pace once the first episodes finish, unreadable result lines, and a results
table whose rows stay whole in a log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from collabvr.bench.pace import Pace
from collabvr.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_bench_prints_its_plan_then_the_pace_after_the_first_episodes(tmp_path):
    result = runner.invoke(app, ["bench", "--suite", "sim:maze", "--methods", "single,pass@2", "--n", "2",
                                 "--concurrency", "2", "--out", str(tmp_path / "b"), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("plan: 12 episodes (2 methods x 3 cells x 2 seeds; single, pass@2), 2 at once; "
                        "a time estimate follows the first episodes")
    pace = [line for line in lines if line.startswith("pace: ")]
    assert pace and pace[0].startswith("pace: 2 episodes in ") and "for the 10 left at this rate" in pace[0]


def test_the_pace_is_told_after_the_first_wave_and_again_only_when_it_moves():
    now = [100.0]
    pace = Pace(concurrency=3, clock=lambda: now[0])
    pace.start(total=63, done=3)  # 60 left

    def episodes(count: int, seconds_each: float) -> list[str | None]:
        said = []
        for _ in range(count):
            now[0] += seconds_each / 3  # three at once
            said.append(pace.finished())
        return said

    first = episodes(3, 10)  # the first wave: 10 s an episode, three at once
    assert first[:2] == [None, None] and first[2] == "pace: 3 episodes in 10 s; about 3 min for the 57 left at this rate"
    assert [line for line in episodes(12, 11) if line] == []  # about the same pace: nothing more to say
    slower = [line for line in episodes(12, 30) if line]  # three times slower (another method's episodes)
    assert slower == ["pace: 6 episodes in 60 s; about 6 min for the 39 left at this rate"]


def test_a_huge_n_is_answered_at_once_with_one_line(tmp_path):
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "collabvr.cli", "bench", "--n", "100000000", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "1,200,000,000 episodes" in proc.stderr and "lower --n" in proc.stderr
    assert time.perf_counter() - started < 30 and not (tmp_path / "b").exists()


def test_unreadable_result_lines_are_named_not_skipped_in_silence(tmp_path):
    bench = tmp_path / "b"
    args = ["bench", "--suite", "sim:maze/easy", "--methods", "single", "--n", "2", "--out", str(bench), "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    results = bench / "results.jsonl"
    first, second = results.read_text().splitlines()
    results.write_text(f"{first}\nthis line was edited by hand\n{second}\n")
    report = runner.invoke(app, ["report", str(bench)])
    assert report.exit_code == 0, report.output
    assert f"warning: {results}: 1 line(s) cannot be read and are skipped (line 2)" in report.output
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0 and "line 2" in rerun.output


def test_the_results_table_is_not_wrapped_at_80_columns_in_a_log(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "collabvr.cli", "bench", "--suite", "sim:maze/easy", "--methods",
                           "single,pass@2,collabvr", "--n", "1", "--out", str(tmp_path / "b"), "--quiet"],
                          capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "method" in line and "difficulty" in line)
    assert "score [95% CI]" in header and "cost/episode" in header, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if "collabvr " in line and "maze" in line]
    assert len(rows) == 1 and re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", rows[0]), proc.stdout  # whole, on one line
