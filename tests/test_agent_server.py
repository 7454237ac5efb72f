"""The graphs behind LangGraph's Agent Server: `langgraph dev` (in memory, its blocking-call check on)
serves every method from langgraph.json; a sim episode with plan approval runs over the SDK."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"collabvr", "single", "pass_at_k", "upfront_plan", "posthoc_critique", "prompt_opt"}
sdk = pytest.importorskip("langgraph_sdk", reason="langgraph-sdk is in the dev extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cli = shutil.which("langgraph")
    if cli is None:
        pytest.skip("langgraph-cli[inmem] is not installed (dev extra)")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGSMITH_TRACING": "false", "LANGGRAPH_NO_VERSION_CHECK": "true"}
    with open(log, "w") as out:
        proc = subprocess.Popen([cli, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = sdk.get_sync_client(url=url, timeout=120)  # a hung server fails the test, never the CI run
    deadline = time.monotonic() + 60
    while True:
        try:
            client.assistants.search(limit=1)
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"langgraph dev did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
    try:
        yield client, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_every_method_is_an_assistant_with_its_schemas(server):
    client, _ = server
    assistants = client.assistants.search(limit=50)
    assert {a["graph_id"] for a in assistants} >= METHODS
    collabvr = next(a for a in assistants if a["graph_id"] == "collabvr")
    schemas = client.assistants.get_schemas(collabvr["assistant_id"])
    assert "task" in schemas["input_schema"]["properties"]
    assert {"vlm", "approve_plans"} <= set(schemas["context_schema"]["properties"])


def test_sim_episode_with_plan_approval_runs_over_the_sdk(server, tmp_path):
    client, log = server
    thread = client.threads.create()
    context = {"out_dir": str(tmp_path / "run"), "approve_plans": True, "max_steps": 2}
    kwargs = {"input": {"task": "sim:maze/easy"}, "context": context}
    interrupts = 0
    events: list[str] = []
    for _ in range(10):
        for part in client.runs.stream(thread["thread_id"], "collabvr", stream_mode=["updates", "custom"], **kwargs):
            events.append(part.event)
            assert part.event != "error", f"{part.data}\n{log.read_text()[-4000:]}"
        state = client.threads.get_state(thread["thread_id"])
        if not state["next"]:
            break
        assert state["tasks"] and state["tasks"][0]["interrupts"], state["next"]
        interrupts += 1
        kwargs = {"command": {"resume": "approve"}, "context": context}
    assert interrupts >= 1 and "custom" in events and "updates" in events
    values = state["values"]
    assert values["status"] == "complete", values  # seeded sim episode: it completes (the same as collabvr run)
    assert values["final"]["sha256"] and (tmp_path / "run").is_dir()
    assert "Blocking call" not in log.read_text() and "BlockingError" not in log.read_text()
