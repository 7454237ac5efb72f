"""``collabvr run`` with the API backends, through the real CLI against the loopback fakes.

A spec or credentials that cannot work fail in the preflight, before any request is made: one
line, exit code 2, and nothing reached a server, the planner included. Every test here routes
HTTPS through a fake (``HTTPS_PROXY``), so a call meant for a real API is caught and counted too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collabvr.cli import app
from collabvr.errors import BadInput
from tests.fakes import FAST, Brain, FakeGoogle, FakeOpenAI, Op

runner = CliRunner()
GOOGLE_KEY = "test-google-key-000"


@pytest.fixture
def google():
    with FakeGoogle(Brain(steps=1)) as server:
        yield server


@pytest.fixture
def openai_fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch, tmp_path, google):
    """No credentials anywhere: no keys, no ADC file, no gcloud login, no metadata server; and
    HTTPS to any real API goes to the fake instead, where it is logged."""
    from google.auth.compute_engine import _metadata

    assert _metadata._NO_GCE_CHECK  # tests/conftest.py: never probe 169.254.169.254
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
                 "GOOGLE_CLOUD_LOCATION", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE",
                 "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    monkeypatch.setenv("HTTPS_PROXY", google.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


def gemini_flags(server: FakeGoogle) -> list[str]:
    return ["--vlm", "gemini:gemini-2.5-pro", "--vlm-option", f"base_url={server.url}", "--vlm-option", f"api_key={GOOGLE_KEY}",
            *[f"--vlm-option={k}={v}" for k, v in FAST.items()]]


def veo_flags(server: FakeGoogle, model: str = "veo-3.1-generate-001", **options: object) -> list[str]:
    options = {"base_url": server.url, "api_key": GOOGLE_KEY, "poll_s": 0.01, **FAST, **options}
    return ["--vgm", f"veo:{model}", *[f"--vgm-option={k}={v}" for k, v in options.items() if v is not None]]


def cli(user_task, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--image", user_task.image_path, "--prompt", "reach the goal",
                                 "--out", str(tmp_path / "run"), "--yes", *args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def refused_in_preflight(user_task, tmp_path, servers, *args: str) -> str:
    code, output = cli(user_task, tmp_path, *args)
    assert code == 2, output
    assert len(output.strip().splitlines()) <= 2, output  # one line (rich may wrap a long one)
    for server in servers:
        assert server.requests == [], [(r.method, r.path) for r in server.requests]
    assert not (tmp_path / "run" / "trace.json").exists()
    return " ".join(output.split())


# ----------------------------------------------------------------------------- preflight
@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("case", ["gemini_as_vgm", "veo_with_gemini_model", "veo_as_vlm", "gemini_with_veo_model"])
def test_a_model_of_the_wrong_kind_fails_the_preflight_before_any_request(user_task, tmp_path, google, case):
    args, needles = {
        "gemini_as_vgm": ([*gemini_flags(google), "--vgm", "gemini:gemini-2.5-pro"],
                          ["--vgm gemini:gemini-2.5-pro", "offers no VGM", "use it as --vlm", "veo"]),
        "veo_with_gemini_model": ([*gemini_flags(google), *veo_flags(google, "gemini-2.5-pro")],
                                  ["veo:gemini-2.5-pro is a Gemini model", "--vlm gemini:gemini-2.5-pro", "--vgm veo:"]),
        "veo_as_vlm": (["--vlm", "veo:veo-3.1-generate-001", *veo_flags(google)],
                       ["--vlm veo:veo-3.1-generate-001", "offers no VLM", "use it as --vgm"]),
        "gemini_with_veo_model": (["--vlm", "gemini:veo-3.1-generate-001", "--vlm-option", f"base_url={google.url}",
                                   "--vlm-option", f"api_key={GOOGLE_KEY}", *veo_flags(google)],
                                  ["gemini:veo-3.1-generate-001 is a video model", "--vgm veo:veo-3.1-generate-001"]),
    }[case]
    message = refused_in_preflight(user_task, tmp_path, [google], *args)
    for needle in needles:
        assert needle in message, message


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("model", ["sora-2", "dall-e-3", "gpt-image-1", "tts-1", "whisper-1", "text-embedding-3-small"])
def test_an_openai_model_that_is_not_a_chat_model_fails_the_preflight(user_task, tmp_path, google, monkeypatch, model):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-000")  # OpenAI's own API: HTTPS, caught by the proxy
    message = refused_in_preflight(user_task, tmp_path, [google], "--vlm", f"openai:{model}", *veo_flags(google))
    assert f"openai:{model} is not a chat model" in message and "openai:gpt-4.1" in message


def test_any_model_name_passes_the_preflight_on_a_custom_openai_server(openai_fake):
    from collabvr.backends.openai import OpenAIVLM

    OpenAIVLM("sora-2", {"base_url": openai_fake.url + "/v1", "api_key": "k" * 8}).preflight()
    with pytest.raises(BadInput, match="not a chat model"):
        OpenAIVLM("sora-2", {"base_url": "https://api.openai.com/v1", "api_key": "k" * 8}).preflight()
    assert openai_fake.requests == []


def test_veo_on_vertex_without_adc_fails_the_preflight_before_the_paid_planning_call(user_task, tmp_path, google, clean_env):
    # project + location and no key: Vertex with ADC, and there are none. Before, the planner was
    # paid for first, then generation failed with DefaultCredentialsError, and the run exited 0.
    message = refused_in_preflight(user_task, tmp_path, [google], *gemini_flags(google),
                                   *veo_flags(google, api_key=None, project="my-project", location="us-central1"))
    assert "veo:veo-3.1-generate-001" in message and "Application Default Credentials" in message
    assert "gcloud auth application-default login" in message and "project my-project" in message


def test_gemini_without_any_key_fails_the_preflight(user_task, tmp_path, google, clean_env):
    message = refused_in_preflight(user_task, tmp_path, [google], "--vlm", "gemini:gemini-2.5-pro",
                                   "--vlm-option", f"base_url={google.url}", *veo_flags(google))
    assert "gemini:gemini-2.5-pro needs credentials" in message and "GOOGLE_API_KEY" in message


def test_adc_from_a_credentials_file_passes_the_preflight(google, clean_env, monkeypatch):
    from collabvr.backends.google import VeoVGM

    adc = clean_env / "adc.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "id.apps.googleusercontent.com",
                               "client_secret": "not-a-secret", "refresh_token": "not-a-token"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    veo = VeoVGM("veo-3.1-generate-001", {"base_url": google.url, "project": "p", "location": "us-central1"})
    assert veo.endpoint.uses_adc
    veo.preflight()  # no network: google.auth.default() reads the file, refreshes nothing
    assert google.requests == []


# ----------------------------------------------------------------------------- Veo's safety filter in the live log
@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("method", ["single", "collabvr"])
def test_a_filtered_veo_video_is_a_refused_attempt_in_the_live_log_and_exit_code_3(user_task, tmp_path, google, method):
    google.plan_ops(*[Op(polls=1, filtered=["The prompt may violate our usage guidelines."]) for _ in range(4)])
    code, output = cli(user_task, tmp_path, "--method", method, "--max-steps", "1", "--max-attempts", "2",
                       *gemini_flags(google), *veo_flags(google))
    assert code == 3, output  # the episode did not complete
    flat = " ".join(output.split())
    assert "generation_failed" in flat and "usage guidelines" in flat  # the live log's line for it
    trace = json.loads((tmp_path / "run" / "trace.json").read_text())
    failed = [a for a in trace["attempts"] if a["status"] == "generation_failed"]
    assert failed and all(a["error"]["kind"] == "refused" for a in failed)
    assert "accepted" not in [a["status"] for a in trace["attempts"]]
    assert [r for r in google.requests if r.endpoint == "unrouted"] == []
