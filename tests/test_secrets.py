"""API keys never reach trace.json, checkpoints, clips, logs or the terminal."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from collabvr.errors import failure
from collabvr.graph.collabvr import build_collabvr
from collabvr.runner import run
from collabvr.task import Task
from tests.fakes import FAST, Brain, FakeGoogle, FakeOpenAI, error, header

ENV_GOOGLE = "AIzaFAKE-env-google-7f3c9e11"
OPT_GOOGLE = "AIzaFAKE-opt-google-2d8b4a55"
ENV_OPENAI = "sk-FAKE-env-openai-91ac04d3"
OPT_OPENAI = "sk-FAKE-opt-openai-5e6f7a8b"
KEYS = [ENV_GOOGLE, OPT_GOOGLE, ENV_OPENAI, OPT_OPENAI]


def leaks(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {key}" for key in KEYS if key.encode() in data]
    return found


def key_only_in_headers(server, key: str) -> None:
    for request in server.requests:
        assert key not in request.path and key.encode() not in request.body, request.endpoint
    assert server.requests and all(key in " ".join(request.headers.values()) for request in server.requests)


@pytest.fixture
def loud_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("google_genai", "httpx", "httpcore", "openai", "langgraph"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def test_google_keys_from_env_and_options_stay_out_of_every_output(user_task, tmp_path, monkeypatch, loud_logs, capsys):
    monkeypatch.setenv("GOOGLE_API_KEY", ENV_GOOGLE)
    with FakeGoogle(Brain(steps=2)) as fake:
        # The server echoes the key in an error message, as some APIs do: it must be redacted.
        fake.script("generateContent", error(403, f"API key not valid: {ENV_GOOGLE}"))
        db = tmp_path / "run" / "checkpoints.sqlite"
        db.parent.mkdir(parents=True)
        connection = sqlite3.connect(db, check_same_thread=False)
        graph = build_collabvr().compile(checkpointer=SqliteSaver(connection))
        episode = run(user_task, graph=graph, config={"configurable": {"thread_id": "secrets"}},
                      vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001",
                      vlm_options={"base_url": fake.url, **FAST},
                      vgm_options={"base_url": fake.url, "api_key": OPT_GOOGLE, "poll_s": 0.01, **FAST},
                      out_dir=str(tmp_path / "run"))
        connection.commit()
        connection.close()
        assert episode.status == "complete"
        trace = (tmp_path / "run" / "trace.json").read_text()
        assert '"plan_failed"' in trace and "API key not valid: ***" in trace  # recorded, redacted
        key_only_in_headers(_only(fake, "generateContent"), ENV_GOOGLE)
        key_only_in_headers(_only(fake, "predictLongRunning", "fetchPredictOperation"), OPT_GOOGLE)
    out = capsys.readouterr()
    assert leaks(tmp_path) == []
    assert not any(key in loud_logs.text or key in out.out or key in out.err for key in KEYS)
    assert not any(key in repr(episode) or key in repr(episode.state) for key in KEYS)


def test_openai_keys_stay_out_of_every_output(tmp_path, monkeypatch, loud_logs, capsys):
    task = Task.sim("maze/easy", seed=0)
    with FakeOpenAI(Brain(steps=1, verdict=lambda media: True)) as fake:
        fake.script("chat", error(401, f"Incorrect API key provided: {OPT_OPENAI}"))
        run(task, vlm="openai:gpt-4.1", vgm="sim", max_attempts=2,
            vlm_options={"base_url": fake.url + "/v1", "api_key": OPT_OPENAI, **FAST}, out_dir=str(tmp_path / "opt"))
        monkeypatch.setenv("OPENAI_API_KEY", ENV_OPENAI)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")
        run(task, vlm="openai:gpt-4o", vgm="sim", vlm_options=FAST, out_dir=str(tmp_path / "env"))
        assert header(fake.requests[0], "authorization") == f"Bearer {OPT_OPENAI}"
        assert header(fake.requests[-1], "authorization") == f"Bearer {ENV_OPENAI}"
        for request in fake.requests:
            assert not any(key.encode() in request.body or key in request.path for key in KEYS)
    out = capsys.readouterr()
    assert leaks(tmp_path) == []
    assert not any(key in loud_logs.text or key in out.out or key in out.err for key in KEYS)


def test_a_failure_record_of_an_sdk_error_never_shows_the_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", ENV_GOOGLE)
    record = failure(RuntimeError(f"request failed with key={ENV_GOOGLE} and Bearer {OPT_OPENAI}"))
    assert not any(key in record["message"] for key in KEYS)


class _Only:
    def __init__(self, requests):
        self.requests = requests


def _only(fake, *endpoints):
    return _Only([r for r in fake.requests if r.endpoint in endpoints])
