"""API keys never reach trace.json, checkpoints, clips, logs or the terminal."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from typer.testing import CliRunner

from collabvr.cli import app
from collabvr.errors import failure
from collabvr.graph.collabvr import build_collabvr
from collabvr.runner import run
from collabvr.task import Task
from tests.fakes import FAST, Brain, FakeGoogle, FakeOpenAI, error, gemini_options, header, veo_options
from tests.test_benchmarks import make_genvire

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


# -- every way a key can arrive, through the CLI, against every file run / bench / report write --

PLANTED = {
    "env": "sk-PLANT-env-0a1b2c3d4e",
    "vlm_option": "AIzaPLANT-vlmopt-5f6a7b8c",
    "vgm_option": "AIzaPLANT-vgmopt-9d0e1f2a",
    "config": "sk-PLANT-config-3b4c5d6e",
    "url": "PLANTurlpass-7f8a9b0c",
}


def planted_leaks(root: Path, text: str) -> list[str]:
    found = [f"output: {name}" for name, key in PLANTED.items() if key in text]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {name}" for name, key in PLANTED.items() if key.encode() in data]
    return found


def test_keys_from_env_options_config_and_url_never_reach_any_file_run_bench_or_report_write(user_task, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from collabvr.cli import app

    cli = CliRunner()
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED["env"])
    work = tmp_path / "work"
    outputs = []
    with FakeGoogle(Brain(steps=1)) as google, FakeOpenAI(Brain(steps=1, verdict=lambda media: True)) as openai:
        # 1. keys as --vlm-option and --vgm-option, on a user task with Gemini + Veo
        result = cli.invoke(app, [
            "run", "--image", user_task.image_path, "--prompt", "reach the goal", "--out", str(work / "run-google"), "--yes",
            "--vlm", "gemini:gemini-2.5-pro", "--vgm", "veo:veo-3.1-generate-001",
            "--vlm-option", f"api_key={PLANTED['vlm_option']}", "--vlm-option", f"base_url={google.url}",
            "--vgm-option", f"api_key={PLANTED['vgm_option']}", "--vgm-option", f"base_url={google.url}",
            "--vgm-option", "poll_s=0.01", *[f"--vlm-option={k}={v}" for k, v in FAST.items()]])
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        # 2. the key in a config file
        config = tmp_path / "secret.toml"  # outside the work dir: it is the user's own secret file
        config.write_text(f'vlm = "openai:gpt-4.1"\nvgm = "sim"\n[vlm_options]\napi_key = "{PLANTED["config"]}"\n'
                          f'base_url = "{openai.url}/v1"\nmax_retries = 1\n')
        result = cli.invoke(app, ["run", "--task", "sim:maze/easy", "--config", str(config), "--out", str(work / "run-config"),
                                  "--yes"])
        outputs.append(result.output)
        assert result.exit_code in (0, 3), result.output
        # 3. the key from the environment and a password in the base URL, through bench and report
        host = openai.url.split("://", 1)[1]
        result = cli.invoke(app, [
            "bench", "--suite", "sim:maze/easy", "--n", "2", "--methods", "collabvr,pass@2", "--out", str(work / "bench"),
            "--vlm", "openai:gpt-4.1", "--vgm", "sim:weak", "--vlm-option", f"base_url=http://user:{PLANTED['url']}@{host}/v1",
            "--concurrency", "2", "--yes", "--quiet"])
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        result = cli.invoke(app, ["report", str(work / "bench")])
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        # 4. the bench with the key as --vlm-option (it was written to bench.json and summary.json in plain text)
        result = cli.invoke(app, [
            "bench", "--suite", "sim:maze/easy", "--n", "1", "--out", str(work / "bench-option"), "--vlm", "openai:gpt-4.1",
            "--vgm", "sim:weak", "--vlm-option", f"api_key={PLANTED['vlm_option']}", "--vlm-option", f"base_url={openai.url}/v1",
            "--yes", "--quiet"])
        outputs.append(result.output)
        assert result.exit_code == 0, result.output
        sent = [r for r in openai.requests]
    assert sent, "the OpenAI fake was never called"
    files = [p for p in work.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"trace.json", "bench.json", "summary.json", "results.jsonl", "checkpoints.sqlite", "index.html"} <= names
    assert any("cache" in p.parts for p in files)
    assert planted_leaks(work, "\n".join(outputs)) == []


# -- a key's value inside a path: redaction must not turn a path read back later into a wrong one --


def _options(flag: str, options: dict) -> list[str]:
    return [arg for key, value in options.items() for arg in (flag, f"{key}={value}")]


@pytest.mark.parametrize("key,exported", [
    ("gvrdata", True),  # a short test key that the data folder's name contains: not key-like, the path stays whole
    ("gvr-dataset-2024-11", False),  # a key-like value that is a folder's name: masked, and export says so
])
def test_a_key_value_inside_the_suite_path_never_makes_export_read_a_wrong_path(key, exported, tmp_path, monkeypatch):
    cli = CliRunner()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    root = make_genvire(tmp_path / key)
    bench = tmp_path / "bench"
    with FakeGoogle(Brain(steps=1)) as google:
        result = cli.invoke(app, [
            "bench", "--suite", f"genvire:{root}", "--methods", "single", "--n", "1", "--out", str(bench), "--yes",
            "--quiet", "--vgm", "veo:veo-3.1-generate-001", "--vlm", "gemini:gemini-2.5-pro",
            *_options("--vgm-option", veo_options(google)), *_options("--vlm-option", gemini_options(google))])
        assert result.exit_code == 0, result.output
    export = cli.invoke(app, ["export", str(bench), "--format", "genvire", "--out", str(tmp_path / "out")])
    if exported:
        assert export.exit_code == 0, export.output
        assert f"genvire:{root}" in (bench / "summary.json").read_text()
        assert list((tmp_path / "out" / "0_generated_videos").rglob("*.mp4"))
    else:
        assert export.exit_code == 2 and export.output.count("\n") == 1, export.output
        assert "part of it equals an API key's value and was masked" in export.output
        assert key not in (bench / "summary.json").read_text()  # still never written
