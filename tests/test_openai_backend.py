"""The OpenAI VLM through the real openai SDK against a loopback OpenAI-compatible fake."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collabvr.backends.openai import OpenAIVLM, make
from collabvr.backends.sim.families import FAMILIES
from collabvr.errors import BadInput, RefusedOutput
from collabvr.media import Image
from collabvr.records import (
    Critique,
    CritiqueRequest,
    Judgement,
    JudgeRequest,
    Plan,
    PlanRequest,
    Selection,
    SelectRequest,
    Verdict,
    VerifyRequest,
)
from collabvr.runner import run
from collabvr.task import Task
from tests.fakes import Brain, FakeOpenAI, chat_answer, colour_clip, error, header, openai_options

FRAME = Image(np.full((32, 32, 3), 90, np.uint8))
PLAN = PlanRequest(task="t", frame=FRAME, step=1, max_steps=2, seconds=6.0)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def images(request) -> int:
    return sum(c["type"] == "image_url" for c in request.json["messages"][0]["content"])


def test_openai_answers_every_role_with_sampled_frames_and_strict_schema(server):
    vlm = make("vlm", "gpt-4.1", openai_options(server, frames_per_clip=3, temperature=0.2))
    clip = colour_clip((0, 200, 0))
    assert isinstance(vlm.plan(PLAN), Plan)
    verdict = vlm.verify(VerifyRequest(task="t", clip=clip, start_frame=FRAME, instruction="i", target_state="s"))
    assert isinstance(verdict, Verdict) and verdict.accept and verdict.usage.input_tokens == 100
    assert isinstance(vlm.select(SelectRequest(task="t", candidates=(clip, clip))), Selection)
    assert isinstance(vlm.judge(JudgeRequest(task="t", video=clip, first_frame=FRAME)), Judgement)
    assert isinstance(vlm.critique(CritiqueRequest(task="t", video=clip, prompt="p")), Critique)
    plan_req, verify_req, select_req, judge_req, critique_req = server.calls("chat")
    assert [images(r) for r in (plan_req, verify_req, select_req, judge_req, critique_req)] == [1, 4, 6, 4, 3]
    body = verify_req.json
    assert body["model"] == "gpt-4.1" and body["temperature"] == 0.2
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and "usage" not in schema["properties"]
    assert sorted(schema["required"]) == sorted(schema["properties"])
    assert body["messages"][0]["content"][1]["text"] == "Start frame:"


def test_openai_takes_base_url_and_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "env-openai-key-123")
    OpenAIVLM("gpt-4o", {"max_retries": 0}).plan(PLAN)
    assert header(server.calls("chat")[0], "authorization") == "Bearer env-openai-key-123"


def test_a_local_server_needs_no_key_but_the_real_api_does(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BadInput, match="OPENAI_API_KEY"):
        OpenAIVLM("gpt-4o", {})
    OpenAIVLM("llava", {"base_url": server.url + "/v1"}).plan(PLAN)


def test_a_server_that_rejects_strict_schema_is_asked_in_json_mode_from_then_on(server):
    server.script("chat", error(400, "response_format json_schema is not supported"))
    vlm = make("vlm", "qwen2.5-vl", openai_options(server))
    assert isinstance(vlm.plan(PLAN), Plan)
    vlm.plan(PLAN)
    formats = [r.json["response_format"]["type"] for r in server.calls("chat")]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert "JSON object matching this schema" in server.calls("chat")[1].json["messages"][-1]["content"]


def test_an_invalid_answer_is_reasked_once_quoting_the_validation_error(server):
    server.script("chat", chat_answer({"observation": "x", "instruction": "y"}))
    plan = make("vlm", "gpt-4.1", openai_options(server)).plan(PLAN)
    assert isinstance(plan, Plan) and plan.usage.input_tokens == 200
    reask = server.calls("chat")[1].json["messages"]
    assert reask[1]["role"] == "assistant" and "target_state" in reask[2]["content"] and "Field required" in reask[2]["content"]


def test_a_refusal_is_a_refused_output(server):
    server.script("chat", chat_answer(None, refusal="I can't help with that"))
    with pytest.raises(RefusedOutput, match="can't help"):
        make("vlm", "gpt-4.1", openai_options(server)).plan(PLAN)


def test_openai_offers_no_video_model():
    assert make("vgm", "sora-2", {}) is None


def test_collabvr_episode_with_openai_and_the_sim_video_model(tmp_path, server):
    task = Task.sim("maze/easy", seed=0)
    family = FAMILIES["maze"]
    moves = family.solve(family.decode(task.first_image().array))
    server.brain = Brain(steps=1, moves=[family.describe(moves)], verdict=lambda media: True)
    episode = run(task, vlm="openai:gpt-4.1", vgm="sim:strong", vlm_options=openai_options(server),
                  out_dir=str(tmp_path / "run"))
    assert episode.status == "complete", episode.reason
    trace = json.loads((tmp_path / "run" / "trace.json").read_text())
    assert trace["steps"][0]["plan"]["instruction"] == family.describe(moves)
    assert trace["compute"]["input_tokens"] >= 200 and trace["score"] is not None


def test_upfront_plan_request_asks_for_one_line_per_step():
    from collabvr.backends.api import prompt_for
    from collabvr.records import PlanRequest

    frame = Image(np.zeros((64, 64, 3), np.uint8))
    text = prompt_for(PlanRequest(task="t", frame=frame, step=1, max_steps=3, seconds=6.0, upfront=True))
    assert '"Step 1: ..."' in text and "3 lines" in text
    assert "Plan every step now" not in prompt_for(PlanRequest(task="t", frame=frame, step=1, max_steps=3, seconds=6.0))
