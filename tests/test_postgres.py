"""Durable episodes: killed with SIGKILL after an accepted step, resumed from the checkpoint,
keeping (not regenerating) the accepted clips; on PostgreSQL, and on SQLite under
``LANGGRAPH_STRICT_MSGPACK=true``.

The PostgreSQL test needs a server: set ``COLLABVR_TEST_POSTGRES`` to its DSN (``.ci/run`` starts
a throwaway one on 127.0.0.1 and sets it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from collabvr.graph.collabvr import build_collabvr
from collabvr.runner import run
from tests.durable_run import EPISODE, register_counting, saver, thread_config
from tests.killing import kill_when

ROOT = Path(__file__).resolve().parents[1]
DSN = os.environ.get("COLLABVR_TEST_POSTGRES")
DELAY_S = 0.4  # each generation: long enough to kill between steps


def _start(kind: str, where: str, out: Path, calls: Path, thread: str, *extra: str, env: dict | None = None):
    cmd = [sys.executable, "-m", "tests.durable_run", kind, where, str(out), str(calls), str(DELAY_S), thread, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _accepted(kind: str, where: str, thread: str) -> tuple[list[str], tuple[str, ...]]:
    """The accepted clips' sha256 in the thread's latest checkpoint, and what runs next."""
    try:
        with saver(kind, where) as checkpointer:
            state = build_collabvr().compile(checkpointer=checkpointer).get_state(thread_config(thread))
    except Exception:  # noqa: BLE001 - not written yet, or busy
        return [], ()
    return [s["clip"]["sha256"] for s in state.values.get("steps", [])], tuple(state.next)


def _kill_after_first_step(proc, kind: str, where: str, thread: str) -> list[str]:
    kill_when(proc, lambda: all(_accepted(kind, where, thread)), within=25)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the episode ended before it could be killed: {err[-2000:]}"
    steps, pending = _accepted(kind, where, thread)  # re-read, as the episode died with it
    assert steps and pending, f"killed mid-episode, with work left: {steps} {pending}"
    return steps


def _calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.skipif(not DSN, reason="COLLABVR_TEST_POSTGRES (a PostgreSQL DSN) is not set; .ci/run starts a server and sets it")
def test_postgres_episode_killed_after_an_accepted_step_resumes_without_regenerating_it(tmp_path):
    thread, out = f"pg-{uuid.uuid4().hex}", tmp_path / "run"
    killed_calls = tmp_path / "killed_calls"
    proc = _start("postgres", DSN, out, killed_calls, thread)
    before = _kill_after_first_step(proc, "postgres", DSN, thread)
    assert _calls(killed_calls) >= len(before)

    resumed_calls = tmp_path / "resumed_calls"
    register_counting(resumed_calls, 0.0)
    with saver("postgres", DSN) as checkpointer:
        graph = build_collabvr().compile(checkpointer=checkpointer, name="collabvr")
        episode = run(EPISODE["task"], graph=graph, config=thread_config(thread), resume=True, out_dir=str(out),
                      **{k: v for k, v in EPISODE.items() if k != "task"})
    _check_resumed(json.loads((out / "trace.json").read_text()), before, episode.attempts, _calls(resumed_calls))


def _check_resumed(trace: dict[str, Any], before: list[str], attempts: list[dict], resumed: int) -> None:
    assert trace["status"] == "complete"  # the same ending as the episode run without a kill
    steps = [s["clip"]["sha256"] for s in trace["steps"]]
    assert steps[:len(before)] == before, "the accepted clips of the killed run are the episode's first steps"
    assert len(steps) > len(before), "the resumed run went on to the next steps"
    # not regenerated: the resumed process generated only the later steps' attempts (less one, when
    # the killed process had checkpointed a generated clip it had not verified yet)
    later = [a for a in attempts if a["step"] >= len(before)]
    assert len(later) - 1 <= resumed <= len(later), (resumed, len(later))
    assert resumed < len(attempts)


def test_sqlite_episode_under_strict_msgpack_is_killed_and_resumed(tmp_path):
    thread, out, db = "strict", tmp_path / "run", str(tmp_path / "checkpoints.sqlite")
    strict = {"LANGGRAPH_STRICT_MSGPACK": "true"}
    proc = _start("sqlite", db, out, tmp_path / "killed_calls", thread, env=strict)
    before = _kill_after_first_step(proc, "sqlite", db, thread)

    resumed_calls = tmp_path / "resumed_calls"
    proc = _start("sqlite", db, out, resumed_calls, thread, "--resume", env={**strict})
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert "msgpack" not in stderr.lower() and "deserializ" not in stderr.lower(), stderr[-3000:]
    trace = json.loads((out / "trace.json").read_text())
    assert json.loads(stdout.splitlines()[-1])["steps"] == [s["clip"]["sha256"] for s in trace["steps"]]
    _check_resumed(trace, before, trace["attempts"], _calls(resumed_calls))
