"""LangSmith tracing: the standard environment variables turn it on, and every model call is a
child run of the node that made it, with small inputs and outputs and no API key anywhere.

A loopback server stands in for the LangSmith API and records what the real ``langsmith``
client posts (``/runs/multipart`` and ``/runs/batch``)."""

from __future__ import annotations

import email.parser
import email.policy
import json

import pytest
from langchain_core.tracers.langchain import wait_for_all_tracers
from langsmith import run_trees
from langsmith import utils as ls_utils

from collabvr.runner import run
from tests.fakes import FAST, Brain, FakeGoogle, FakeServer, Reply, error

LANGSMITH_KEY = "lsv2_pt_FAKE-planted-langsmith-0c1d2e3f"
GOOGLE_KEY = "AIzaFAKE-planted-google-4a5b6c7d"
KEYS = [LANGSMITH_KEY, GOOGLE_KEY]
MAX_RUN_BYTES = 20_000


class FakeLangSmith(FakeServer):
    """Answers the endpoints the client uses and keeps every request body."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/info", "info", lambda r: Reply(200, {"version": "0.0.0", "instance_flags": {}}))
        self.route("POST", r"/runs/multipart", "multipart", lambda r: Reply(202, {}))
        self.route("POST", r"/runs/batch", "batch", lambda r: Reply(202, {}))
        self.route("POST", r"/runs", "post", lambda r: Reply(202, {}))

    def runs(self) -> dict[str, dict]:
        """Every run the client posted, its post and patches merged, by id."""
        runs: dict[str, dict] = {}

        def merge(run: dict) -> None:
            runs.setdefault(str(run["id"]), {}).update({k: v for k, v in run.items() if v is not None})

        for request in self.requests:
            if request.endpoint == "batch":
                body = request.json
                for run in [*body.get("post", []), *body.get("patch", [])]:
                    merge(run)
            elif request.endpoint == "multipart":
                for name, value in _parts(request):
                    op, run_id, *field = name.split(".")
                    merge({"id": run_id, **(json.loads(value) if not field else {field[0]: json.loads(value)})})
            elif request.endpoint == "post":
                merge(request.json)
        return runs


def _parts(request) -> list[tuple[str, bytes]]:
    assert "zstd" not in str(request.headers).lower(), "compressed upload: the test cannot read it"
    kind = next(v for k, v in request.headers.items() if k.lower() == "content-type")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + request.body)
    return [(part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
            for part in message.iter_parts()]


def _reset_langsmith() -> None:
    """The client and the env lookups are cached per process: start (and leave) clean."""
    for cached in (ls_utils.get_env_var, ls_utils.get_tracer_project):
        cached.cache_clear()
    run_trees._CLIENT = None


@pytest.fixture
def langsmith(monkeypatch):
    with FakeLangSmith() as server:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
        monkeypatch.setenv("LANGSMITH_API_KEY", LANGSMITH_KEY)
        monkeypatch.setenv("LANGSMITH_PROJECT", "collabvr-test")
        for name in ("LANGCHAIN_TRACING_V2", "LANGCHAIN_ENDPOINT", "LANGCHAIN_API_KEY", "LANGSMITH_RUNS_ENDPOINTS"):
            monkeypatch.delenv(name, raising=False)
        _reset_langsmith()
        try:
            yield server
        finally:
            wait_for_all_tracers()
            monkeypatch.undo()
            _reset_langsmith()


def _collect(server: FakeLangSmith) -> dict[str, dict]:
    wait_for_all_tracers()
    assert server.calls("multipart") or server.calls("batch"), "nothing was posted to LangSmith"
    return server.runs()


def _check_tree(runs: dict[str, dict], method: str) -> tuple[dict, list[dict], list[dict]]:
    roots = [r for r in runs.values() if not r.get("parent_run_id")]
    assert [r["name"] for r in roots] == [method], [r.get("name") for r in roots]
    root = roots[0]
    nodes = {rid: r for rid, r in runs.items() if r.get("parent_run_id") == str(root["id"])}
    vlm = [r for r in runs.values() if r.get("run_type") == "llm"]
    vgm = [r for r in runs.values() if r.get("run_type") == "tool"]
    assert vlm and vgm
    for call in vlm + vgm:
        parent = nodes.get(str(call["parent_run_id"]))
        assert parent is not None, f"{call['name']} is not a child of a node run"
        meta = call["extra"]["metadata"]
        assert parent["name"] == meta["node"]
        assert meta["method"] == method and meta["task_id"] and "step" in meta and "attempt" in meta
        assert call["trace_id"] == root["trace_id"]
    return root, vlm, vgm


def _check_small_and_clean(server: FakeLangSmith, runs: dict[str, dict]) -> None:
    for r in runs.values():
        size = len(json.dumps(r.get("inputs") or {})) + len(json.dumps(r.get("outputs") or {}))
        assert size <= MAX_RUN_BYTES, f"run {r.get('name')} carries {size} bytes"
        text = json.dumps(r)
        assert "base64" not in text and "iVBOR" not in text  # no PNG, no base64 payloads
    for request in server.requests:
        for key in KEYS:
            assert key.encode() not in request.body, f"{key} posted to {request.path}"
        if request.endpoint != "info":  # the LangSmith key only as the client's own credential header
            headers = {k.lower(): v for k, v in request.headers.items()}
            assert GOOGLE_KEY not in json.dumps(headers)


def test_sim_episode_traces_graph_nodes_and_every_model_call(langsmith, tmp_path):
    episode = run("sim:maze/easy", vlm="sim:noisy", max_steps=2, out_dir=str(tmp_path / "run"))
    assert episode.status == "complete"
    runs = _collect(langsmith)
    root, vlm, vgm = _check_tree(runs, "collabvr")
    compute = episode.compute
    assert len(vlm) == compute["vlm_calls"] and len(vgm) == compute["vgm_calls"]
    roles = {r["extra"]["metadata"]["role"] for r in vlm}
    assert {"plan", "verify"} <= roles
    for call in vlm:
        meta = call["extra"]["metadata"]
        assert meta["backend"] == "sim:noisy" and meta["ls_model_name"]
        usage = call["outputs"]["usage_metadata"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert meta["usage_metadata"] == usage
        if meta["role"] == "verify":
            assert meta["verdict"] in ("accept", "reject") and f"verdict:{meta['verdict']}" in call["tags"]
            assert call["inputs"]["request"]["clip"]["frames"] > 0  # a description, not the clip
        # chat-shaped, as LangSmith's run view and Playground read an llm run: the user turn, the answer
        (turn,) = call["inputs"]["messages"]
        assert turn["role"] == "user" and turn["content"][0]["type"] == "text" and "visual reasoning task" in turn["content"][0]["text"]
        assert any('"image"' in part["text"] for part in turn["content"][1:])  # the frame as its size
        answer = call["outputs"]["choices"][0]["message"]
        assert answer["role"] == "assistant" and json.loads(answer["content"]) == call["outputs"]["record"]
    for call in vgm:
        meta = call["extra"]["metadata"]
        assert meta["role"] == "generate" and meta["clip_seconds"] > 0 and meta["backend"] == "sim"
        assert call["inputs"]["frame"]["sha256"] and call["outputs"]["clip"]["frames"] > 0
    assert sum(r["extra"]["metadata"]["clip_seconds"] for r in vgm) == pytest.approx(compute["clip_seconds"])
    accepted = [r for r in vlm if r["extra"]["metadata"].get("verdict") == "accept"]
    assert len(accepted) == len(episode.state["steps"])
    repairs = [r for r in runs.values() if r.get("name") == "repair"]
    assert len(repairs) == len(episode.repairs)
    for node in repairs:
        assert node["extra"]["metadata"]["repair_strategy"] in ("retry", "partial_regeneration", "action_splitting",
                                                                "prompt_evolution")
    _check_small_and_clean(langsmith, runs)


def test_api_episode_traces_tokens_and_cost_and_leaks_no_key(langsmith, user_task, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", GOOGLE_KEY)
    with FakeGoogle(Brain(steps=1)) as fake:
        # the API echoes the key in an error, as some do: the failed call's run must not carry it
        fake.script("generateContent", error(403, f"API key not valid: {GOOGLE_KEY}"))
        episode = run(user_task, vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001", max_steps=1,
                      vlm_options={"base_url": fake.url, **FAST},
                      vgm_options={"base_url": fake.url, "poll_s": 0.01, **FAST}, out_dir=str(tmp_path / "run"))
    assert episode.status == "complete"
    runs = _collect(langsmith)
    _, vlm, vgm = _check_tree(runs, "collabvr")
    failed = [r for r in vlm if r.get("error")]
    assert len(failed) == 1 and "API key not valid: ***" in failed[0]["error"]
    for call in vlm:
        if call.get("error"):
            continue
        meta = call["extra"]["metadata"]
        assert meta["ls_provider"] == "gemini" and meta["ls_model_name"] == "gemini-2.5-pro"
        usage = call["outputs"]["usage_metadata"]
        assert usage["input_tokens"] > 0 and usage["total_cost"] > 0 and meta["cost_usd"] == usage["total_cost"]
    for call in vgm:
        assert call["extra"]["metadata"]["cost_usd"] > 0 and call["extra"]["metadata"]["backend"].startswith("veo:")
    assert sum(r["extra"]["metadata"]["cost_usd"] for r in vgm + vlm) > 0
    _check_small_and_clean(langsmith, runs)


def test_embedded_in_a_parent_graph_the_method_tag_names_collabvrs_own_graph(langsmith, tmp_path):
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from collabvr.context import Context
    from collabvr.graph import compiled

    class App(TypedDict, total=False):
        task: str | dict
        status: str

    parent = StateGraph(App)
    parent.add_node("solve", compiled("collabvr"))
    parent.add_edge(START, "solve")
    parent.add_edge("solve", END)
    out = parent.compile(name="my_agent").invoke({"task": "sim:maze/easy"},
                                                  context=Context(out_dir=str(tmp_path), max_steps=2))
    assert out["status"] == "complete"
    runs = _collect(langsmith)
    vlm = [r for r in runs.values() if r.get("run_type") == "llm"]
    assert vlm and all(r["extra"]["metadata"]["method"] == "collabvr" for r in vlm)
    assert all("method:collabvr" in r["tags"] and "method:my_agent" not in r["tags"] for r in vlm)
