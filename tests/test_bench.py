"""The benchmark runner: compute accounting, budgets, crash-safe resume, bad input, bootstrap CIs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collabvr.backends import registry
from collabvr.backends.sim import make as make_sim
from collabvr.bench.config import BenchConfig
from collabvr.bench.results import read_results, read_run
from collabvr.bench.runner import run_bench
from collabvr.bench.stats import bootstrap_ci
from collabvr.cli import app
from collabvr.graph import METHODS
from collabvr.prices import cost, load_prices
from collabvr.records import Usage
from tests.killing import kill_when

ROOT = Path(__file__).resolve().parents[1]
FAST = {"first_clip_seconds": 2.0, "clip_seconds": 1.0}


class Counting:
    """Wraps a sim backend: counts every call, and reports 100 input / 10 output tokens per VLM call."""

    def __init__(self, inner, counts, lock):
        self.inner, self.counts, self.lock = inner, counts, lock

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self.lock:
                self.counts[name] = self.counts.get(name, 0) + 1
            out = attr(*args, **kwargs)
            if hasattr(out, "usage"):
                out = out.model_copy(update={"usage": Usage(input_tokens=100, output_tokens=10)})
            return out

        return call


@pytest.fixture
def counting():
    counts: dict[str, int] = {}
    lock = threading.Lock()
    registry.register("counting", lambda role, model, options: Counting(make_sim(role, model, options), counts, lock))
    return counts


def test_compute_counters_equal_the_calls_made_and_cost_comes_from_the_price_table(counting, tmp_path):
    prices = tmp_path / "prices.json"
    # keyed by model name, as in collabvr.backends.api.PRICES: the specs below are counting:weak / counting:accurate
    prices.write_text(json.dumps({"weak": {"per_second": 0.5}, "accurate": {"input_per_mtok": 10.0, "output_per_mtok": 100.0}}))
    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/easy", n=3, concurrency=3, vgm="counting:weak",
                         vlm="counting:accurate", cache=False, context=FAST, prices=load_prices(prices))
    run_bench(config)
    results = read_results(tmp_path / "b" / "results.jsonl")
    assert len(results) == 3 and all(r["status"] != "error" for r in results)
    total = lambda key: sum(r["compute"].get(key, 0) for r in results)  # noqa: E731
    assert total("vgm_calls") == counting["generate"]
    vlm_calls = sum(v for k, v in counting.items() if k != "generate")
    assert total("vlm_calls") == vlm_calls
    assert total("input_tokens") == 100 * vlm_calls and total("output_tokens") == 10 * vlm_calls
    for r in results:
        c = r["compute"]
        assert r["cost"] == pytest.approx(c["clip_seconds"] * 0.5 + c["input_tokens"] / 1e6 * 10 + c["output_tokens"] / 1e6 * 100)
        assert r["cost"] > 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["totals"]["vgm_calls"] == counting["generate"]
    assert summary["totals"]["cost"] == pytest.approx(sum(r["cost"] for r in results))


def test_bench_prices_come_from_the_backends_table_and_unknown_models_stay_unpriced():
    from collabvr.backends.api import PRICES

    prices = load_prices()
    veo = PRICES["veo-3.1-generate-001"]["per_second"]
    gemini = PRICES["gemini-2.5-pro"]
    usage = {"clip_seconds": 8.0, "input_tokens": 2_000_000, "output_tokens": 1_000_000}
    assert cost(usage, vgm="veo:veo-3.1-generate-001", vlm="sim", prices=prices) == pytest.approx(8 * veo)
    assert cost(usage, vgm="sim:weak", vlm="gemini:gemini-2.5-pro", prices=prices) == pytest.approx(
        2 * gemini["input_per_mtok"] + gemini["output_per_mtok"])
    assert cost(usage, vgm="sim", vlm="sim:noisy", prices=prices) == 0.0
    assert cost(usage, vgm="nobody:x", vlm="sim", prices=prices) is None


def test_clip_seconds_of_every_episode_stay_within_the_budget(tmp_path):
    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/medium", n=3, concurrency=3, budget="3.5", context=FAST)
    run_bench(config)
    results = read_results(tmp_path / "b" / "results.jsonl")
    assert len(results) == 3
    for r in results:
        assert r["budget_seconds"] == 3.5
        assert 0 < r["compute"]["clip_seconds"] <= 3.5
    # unbudgeted, the same episodes spend more: the budget is what stopped them
    run_bench(BenchConfig(out=tmp_path / "free", suite="sim:maze/medium", n=3, concurrency=3, context=FAST))
    free = read_results(tmp_path / "free" / "results.jsonl")
    assert max(r["compute"]["clip_seconds"] for r in free) > 3.5


def test_matched_budget_gives_other_methods_the_first_methods_mean_clip_seconds(monkeypatch, tmp_path):
    monkeypatch.setitem(METHODS, "twin", METHODS["collabvr"])
    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/easy", methods=["twin"], n=3, concurrency=3,
                         budget="match:collabvr", context=FAST)
    run_bench(config)
    results = read_results(tmp_path / "b" / "results.jsonl")
    base = [r for r in results if r["method"] == "collabvr"]
    twins = [r for r in results if r["method"] == "twin"]
    assert len(base) == len(twins) == 3
    mean = sum(r["compute"]["clip_seconds"] for r in base) / 3
    assert all(r["budget_seconds"] == pytest.approx(mean) and r["compute"]["clip_seconds"] <= mean + 1e-9 for r in twins)
    assert all(r["budget_seconds"] == 0 for r in base)


# -- resume after kill -9 --------------------------------------------------------------------------


def _in_flight_steps(bench: Path) -> dict[str, str]:
    """thread_id -> sha256 of its first accepted clip, for episodes with a checkpointed accepted step
    and no line in results.jsonl yet."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = bench / "checkpoints.sqlite"
    if not db.exists():
        return {}
    finished = {(r["method"], r["seed"]) for r in read_results(bench / "results.jsonl")}
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        threads = [row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        out = {}
        for thread in threads:
            method, _, seed = thread.split("|")
            saved = saver.get_tuple({"configurable": {"thread_id": thread}})
            steps = saved.checkpoint["channel_values"].get("steps") or [] if saved else []
            if steps and (method, int(seed)) not in finished:
                out[thread] = steps[0]["clip"]["sha256"]
        return out
    except sqlite3.OperationalError:  # the table is not there yet, or busy
        return {}
    finally:
        conn.close()


def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing_and_keeps_accepted_clips(tmp_path):
    methods = "collabvr,single" if "single" in METHODS else "collabvr"
    n = 3 if "," in methods else 6
    bench = tmp_path / "b"
    cmd = [sys.executable, "-m", "collabvr.cli", "bench", "--suite", "sim:maze/medium", "--methods", methods,
           "--n", str(n), "--concurrency", "2", "--size", "128", "--out", str(bench), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_when(proc, lambda: bool(read_results(bench / "results.jsonl") and _in_flight_steps(bench)), within=40,
              every=0.01)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the bench finished before it could be killed mid-run"
    in_flight = _in_flight_steps(bench)  # re-read, as the bench died with it
    before = read_results(bench / "results.jsonl")
    assert in_flight and 1 <= len(before) < 2 * 3
    clips_before = {}
    for thread, sha in in_flight.items():
        method, _, seed = thread.split("|")
        found = list((bench / "episodes" / method / f"maze-medium-{seed}" / "artifacts").rglob(f"{sha}.mp4"))
        assert found, "the accepted clip was stored before the kill"
        clips_before[thread] = found[0]
    with open(bench / "results.jsonl", "a") as f:  # a torn last line, as a kill mid-write leaves
        f.write('{"method": "collabvr", "fam')

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    lines = [json.loads(line) for line in (bench / "results.jsonl").read_text().splitlines()]
    keys = [(r["method"], r["family"], r["difficulty"], r["seed"]) for r in lines]
    assert len(keys) == len(set(keys)), "no episode ran to the end twice"
    assert sorted(keys) == sorted((m, "maze", "medium", s) for m in methods.split(",") for s in range(n))
    by_key = {(r["method"], r["seed"]): r for r in lines}
    for thread, sha in in_flight.items():
        method, _, seed = thread.split("|")
        result = by_key[(method, int(seed))]
        assert result["resumed"] and result["status"] != "error"
        trace = json.loads((bench / result["run_dir"] / "trace.json").read_text())
        assert trace["steps"][0]["clip"]["sha256"] == sha
        assert clips_before[thread].is_file()
        assert [s["step"] for s in trace["steps"]] == list(range(len(trace["steps"])))
        # the thread was continued, not restarted: one input checkpoint, and its last one is the trace
        checkpoints = _thread_checkpoints(bench, thread)
        assert [c.metadata.get("source") for c in checkpoints].count("input") == 1
        assert checkpoints[0].checkpoint["channel_values"]["final"]["sha256"] == trace["final"]["sha256"]


def _thread_checkpoints(bench: Path, thread: str) -> list:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(bench / "checkpoints.sqlite"), check_same_thread=False)
    try:
        return list(SqliteSaver(conn).list({"configurable": {"thread_id": thread}}))
    finally:
        conn.close()


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--methods", "collabvr,nonsense"], "unknown method"),
    (["--methods", "pass@0"], "pass@k needs"),
    (["--budget", "-3"], "--budget"),
    (["--budget", "match:nonsense"], "unknown method"),
    (["--suite", "atari"], "unknown suite"),
    (["--suite", "sim:maze/extreme"], "unknown suite"),
    (["--n", "0"], "--n"),
    (["--concurrency", "0"], "--concurrency"),
    (["--all-samples"], "--all-samples widens a Gen-ViRe suite"),
    (["--evalkit-entry", "nonsense"], "--evalkit-entry must be one of run_evaluation, evaluate"),
])
def test_bad_bench_input_exits_2_with_one_line(args, words, tmp_path):
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error:")
    assert not (tmp_path / "b" / "results.jsonl").exists()


def test_report_of_a_directory_without_results_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


# -- statistics ----------------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_mean_repeats_under_its_seed_and_narrows_with_n():
    import numpy as np

    rng = np.random.default_rng(3)
    small, large = rng.random(20), rng.random(2000)
    lo, hi = bootstrap_ci(small, seed=7)
    assert lo <= small.mean() <= hi and lo < hi
    assert bootstrap_ci(small, seed=7) == (lo, hi)
    assert bootstrap_ci(small, seed=8) != (lo, hi)
    lo2, hi2 = bootstrap_ci(large, seed=7)
    assert lo2 <= large.mean() <= hi2
    assert hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_ci([0.5]) == (0.5, 0.5)


def test_read_results_skips_a_torn_line_and_keeps_the_last_line_per_episode(tmp_path):
    path = tmp_path / "results.jsonl"
    row = {"method": "m", "family": "maze", "difficulty": "easy", "seed": 0}
    path.write_text(json.dumps({**row, "status": "error"}) + "\n" + json.dumps({**row, "status": "complete"}) + "\n" + '{"meth')
    results = read_results(path)
    assert [r["status"] for r in results] == ["complete"]


def test_read_run_takes_a_bench_directory_a_results_file_or_a_gzipped_one(tmp_path):
    import gzip

    lines = [{"method": "m", "family": "maze", "difficulty": "easy", "seed": s, "score": s / 4} for s in range(3)]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    (tmp_path / "results.jsonl").write_text(text)
    (tmp_path / "published.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    for where in (tmp_path, tmp_path / "results.jsonl", tmp_path / "published.jsonl.gz"):
        assert sorted(r["score"] for r in read_run(where)) == [0.0, 0.25, 0.5], where
    assert read_run(tmp_path / "missing") == []


def test_summary_cells_follow_method_then_family_then_difficulty_order():
    from collabvr.bench.stats import summarize

    rows = [{"method": m, "family": f, "difficulty": d, "score": 1.0, "solved": True}
            for m, f, d in [("collabvr", "tiles", "hard"), ("collabvr", "maze", "hard"), ("single", "maze", "easy"),
                            ("collabvr", "maze", "easy"), ("collabvr", "tiles", "easy")]]
    assert [(c.method, c.family, c.difficulty) for c in summarize(rows)] == [
        ("collabvr", "maze", "easy"), ("collabvr", "maze", "hard"), ("collabvr", "tiles", "easy"),
        ("collabvr", "tiles", "hard"), ("single", "maze", "easy")]


def test_a_step_whose_writes_were_saved_without_the_next_checkpoint_is_continued_on_resume(tmp_path):
    """kill -9 can land after a super-step's tasks saved their writes and before the checkpoint that
    applies them: LangGraph's snapshot then has tasks (with those writes) and an empty .next. The
    rerun must go on from there, not return the half-done state."""
    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/medium", n=1, concurrency=1, context=FAST)
    run_bench(config)
    [before] = read_results(tmp_path / "b" / "results.jsonl")
    db = sqlite3.connect(str(tmp_path / "b" / "checkpoints.sqlite"))
    with db:  # cut the thread back to a middle checkpoint that kept its tasks' writes
        ids = [row[0] for row in db.execute("SELECT DISTINCT checkpoint_id FROM writes ORDER BY checkpoint_id")]
        cut = ids[len(ids) // 2]
        db.execute("DELETE FROM checkpoints WHERE checkpoint_id > ?", (cut,))
        db.execute("DELETE FROM writes WHERE checkpoint_id > ?", (cut,))
    db.close()
    (tmp_path / "b" / "results.jsonl").write_text("")
    run_bench(config)
    [after] = read_results(tmp_path / "b" / "results.jsonl")
    assert after["resumed"] and after["status"] == before["status"] != "running"
    assert (after["score"], after["solved"]) == (before["score"], before["solved"])
