"""The graphs behind LangGraph's Agent Server: `langgraph dev` (in memory, its blocking-call check on)
serves every method from langgraph.json; a sim episode with plan approval runs over the SDK."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import httpx
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
    """Approve over the SDK: the first answer is one the graph cannot read (it asks again, the thread is
    not wedged); later resumes pass no context (the thread's own is restored); the frame to approve and
    the final video are fetched over HTTP from the artifact route; messages stream as chat."""
    client, log = server
    url = client.http.client.base_url
    thread = client.threads.create()
    context = {"out_dir": str(tmp_path / "run"), "approve_plans": True, "max_steps": 2, "vgm": "sim:strong"}
    kwargs = {"input": {"task": "sim:maze/easy"}, "context": context}
    interrupts = 0
    events: list[str] = []
    messages = 0
    answers = iter(["perhaps"])  # then "approve" for every plan
    for _ in range(12):
        for part in client.runs.stream(thread["thread_id"], "collabvr", stream_mode=["updates", "custom", "messages"],
                                       **kwargs):
            events.append(part.event)
            messages += part.event.startswith("messages")
            assert part.event != "error", f"{part.data}\n{log.read_text()[-4000:]}"
        state = client.threads.get_state(thread["thread_id"])
        if not state["next"]:
            break
        assert state["tasks"] and state["tasks"][0]["interrupts"], state["next"]
        payload = state["tasks"][0]["interrupts"][0]["value"]
        if interrupts == 1:
            assert "perhaps" in payload["error"]  # asked again, with what was wrong
        frame = httpx.get(f"{url}{payload['frame_url']}", timeout=30)
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
        assert hashlib.sha256(frame.content).hexdigest() == payload["frame"]["sha256"]
        interrupts += 1
        kwargs = {"command": {"resume": next(answers, "approve")}}  # no context: the thread's own
    assert interrupts >= 2 and "custom" in events and "updates" in events and messages
    values = state["values"]
    assert values["status"] == "complete", values  # seeded sim episode: it completes (the same as collabvr run)
    assert values["pinned"]["vgm"] == "sim:strong" and values["final"]["uri"].startswith("file://" + str(tmp_path / "run"))
    final = httpx.get(f"{url}{values['final_url']}", timeout=30)
    assert final.status_code == 200 and final.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(final.content).hexdigest() == values["final"]["sha256"]
    assert any("final video: /artifacts/" in m["content"] for m in values["messages"])
    assert "Blocking call" not in log.read_text() and "BlockingError" not in log.read_text()


def test_the_artifact_route_serves_hashes_only(server, tmp_path):
    client, _ = server
    url = client.http.client.base_url
    for path in ("/artifacts/../pyproject.toml", "/artifacts/%2e%2e%2fpyproject.toml", "/artifacts/" + "0" * 64 + ".py",
                 "/artifacts/" + "0" * 64 + ".png", "/artifacts/" + "A" * 64 + ".png", "/artifacts/etc/passwd"):
        response = httpx.get(f"{url}{path}", timeout=30)
        assert response.status_code == 404, (path, response.status_code, response.text[:200])
        assert b"[project]" not in response.content and b"root:" not in response.content


def test_the_deployment_image_installs_what_a_served_graph_needs(tmp_path):
    """`langgraph dockerfile` from langgraph.json: the API backends' SDKs and S3 are installed, the
    artifact route is mounted, and .dockerignore keeps tests and runs out of the image."""
    cli = shutil.which("langgraph")
    if cli is None:
        pytest.skip("langgraph-cli is not installed (dev extra)")
    out = tmp_path / "Dockerfile"
    done = subprocess.run([cli, "dockerfile", "-c", str(ROOT / "langgraph.json"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    install = next(line for line in text.splitlines() if line.startswith("RUN") and "google-genai" in line)
    for requirement in extras["google"] + extras["openai"] + extras["s3"]:
        assert requirement in install, (requirement, install)
    assert "collabvr/routes.py:app" in text and "enable_custom_route_auth" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"tests/", "runs/", ".git"} <= set(ignored)
