"""Gemini (VLM) and Veo (VGM) through the real google-genai SDK against a loopback fake."""

from __future__ import annotations

import json

import numpy as np
import pytest

from collabvr.backends.google import GeminiVLM, VeoVGM, make
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
    StepSummary,
    Verdict,
    VerifyRequest,
)
from collabvr.runner import run
from tests.fakes import Brain, FakeGoogle, Op, colour_clip, gemini_answer, gemini_options, header, veo_options

FRAME = Image(np.full((32, 48, 3), 90, np.uint8))


@pytest.fixture
def google():
    with FakeGoogle() as server:
        yield server


def media_parts(request) -> list[dict]:
    return [p for c in request.json["contents"] for p in c["parts"] if "inlineData" in p or "fileData" in p]


def mime(part: dict) -> str:
    blob = part.get("inlineData") or part.get("fileData")
    return blob.get("mimeType") or blob.get("mime_type")


def test_gemini_answers_every_role_with_a_validated_record_and_token_usage(google):
    vlm = make("vlm", "gemini-2.5-pro", gemini_options(google, temperature=0.3))
    clip = colour_clip((0, 200, 0))
    plan = vlm.plan(PlanRequest(task="reach the goal", frame=FRAME, step=2, max_steps=3, seconds=3.0,
                                history=(StepSummary("move up", "agent up"),), split_from="move up 3 times"))
    verdict = vlm.verify(VerifyRequest(task="t", clip=clip, start_frame=FRAME, instruction="i", target_state="s"))
    selection = vlm.select(SelectRequest(task="t", candidates=(clip, clip)))
    judgement = vlm.judge(JudgeRequest(task="t", video=clip, first_frame=FRAME))
    critique = vlm.critique(CritiqueRequest(task="t", video=clip, prompt="p"))

    assert isinstance(plan, Plan) and isinstance(verdict, Verdict) and verdict.accept
    assert isinstance(selection, Selection) and isinstance(judgement, Judgement) and isinstance(critique, Critique)
    assert plan.usage.input_tokens == 100 and plan.usage.output_tokens == 20
    assert vlm.tally.input_tokens == 500
    plan_req, verify_req, select_req, judge_req, _ = google.calls("generateContent")
    text = plan_req.json["contents"][0]["parts"][0]["text"]
    assert "step 2 of at most 3" in text and "1. move up" in text and "move up 3 times" in text
    assert [mime(p) for p in media_parts(plan_req)] == ["image/png"]
    assert [mime(p) for p in media_parts(verify_req)] == ["image/png", "video/mp4"]
    assert [mime(p) for p in media_parts(select_req)] == ["video/mp4", "video/mp4"]
    assert [mime(p) for p in media_parts(judge_req)] == ["image/png", "video/mp4"]
    config = verify_req.json["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["temperature"] == 0.3
    assert "usage" not in json.dumps(config["responseSchema"]) and "good_fraction" in config["responseSchema"]["properties"]


def test_gemini_uploads_a_clip_above_the_inline_limit_through_the_files_api(google):
    vlm = make("vlm", "gemini-2.5-flash", gemini_options(google, inline_limit_bytes=100, file_poll_s=0.01))
    verdict = vlm.verify(VerifyRequest(task="t", clip=colour_clip((0, 200, 0)), start_frame=FRAME, instruction="i", target_state="s"))
    assert verdict.accept
    assert len(google.calls("uploadStart")) == 1 and len(google.calls("uploadData")) == 1
    assert google.calls("getFile") and len(google.calls("deleteFile")) == 1
    parts = media_parts(google.calls("generateContent")[0])
    assert "fileData" in parts[1] and mime(parts[1]) == "video/mp4"


def test_gemini_in_vertex_express_mode_uses_the_vertex_path_with_the_key_in_a_header(google):
    vlm = make("vlm", "gemini-2.5-pro", gemini_options(google, vertexai=True))
    vlm.plan(PlanRequest(task="t", frame=FRAME, step=1, max_steps=1, seconds=6.0))
    request = google.calls("generateContent")[0]
    assert request.path.startswith("/v1beta1/publishers/google/models/gemini-2.5-pro:generateContent")
    assert header(request, "x-goog-api-key") == "test-google-key-000"


def test_gemini_refuses_when_the_answer_is_withheld_for_safety(google):
    google.script("generateContent", gemini_answer("", finish="SAFETY"))
    vlm = make("vlm", "gemini-2.5-pro", gemini_options(google))
    with pytest.raises(RefusedOutput):
        vlm.plan(PlanRequest(task="t", frame=FRAME, step=1, max_steps=1, seconds=6.0))


def test_unknown_option_is_rejected_naming_the_accepted_ones(google):
    with pytest.raises(BadInput, match="temprature.*accepted: .*temperature"):
        GeminiVLM("gemini-2.5-pro", gemini_options(google, temprature=0.1))


def test_veo_generates_by_polling_the_operation_and_returns_the_real_clip(google):
    google.plan_ops(Op(polls=3))
    veo = make("vgm", "veo-3.1-generate-001", veo_options(google, negative_prompt="blur", resolution="1080p"))
    clip = veo.generate(FRAME, "move up", seconds=3.0, fps=16, seed=2**32 + 7)
    assert clip.num_frames == 8 and clip.fps == 8.0 and clip.seconds == 1.0  # what came back, not what was asked
    assert veo.tally.video_seconds == 1.0
    submit = google.calls("predictLongRunning")[0]
    assert submit.path == "/v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning"
    instance, params = submit.json["instances"][0], submit.json["parameters"]
    assert instance["prompt"] == "move up" and instance["image"]["mimeType"] == "image/png"
    assert Image.from_png(__import__("base64").b64decode(instance["image"]["bytesBase64Encoded"])).array.shape == (32, 48, 3)
    assert params == {"sampleCount": 1, "durationSeconds": 4, "aspectRatio": "16:9", "resolution": "1080p", "seed": 7,
                      "negativePrompt": "blur", "generateAudio": False}
    assert len(google.calls("fetchPredictOperation")) == 4


def test_veo_downloads_a_video_given_by_uri(google):
    google.plan_ops(Op(polls=0, as_uri=True))
    clip = make("vgm", "veo-3.0-generate-001", veo_options(google)).generate(FRAME, "go", seconds=6, fps=16, seed=0)
    assert clip.num_frames == 8
    assert header(google.calls("download")[0], "x-goog-api-key") == "test-google-key-000"


@pytest.mark.parametrize(("model", "asked", "expected"), [
    ("veo-3.1-generate-001", 1.0, 4), ("veo-3.1-generate-001", 4.0, 4), ("veo-3.1-generate-001", 4.5, 6),
    ("veo-3.0-fast-generate-001", 6.0, 6), ("veo-3.1-generate-001", 7.0, 8), ("veo-3.1-generate-001", 30.0, 8),
    ("veo-2.0-generate-001", 3.0, 5), ("veo-2.0-generate-001", 7.0, 7),
])
def test_requested_seconds_map_onto_the_durations_the_model_allows(google, model, asked, expected):
    assert VeoVGM(model, veo_options(google)).duration_for(asked) == expected


def test_veo_duration_table_can_be_overridden(google):
    assert VeoVGM("veo-9", veo_options(google, durations=[2, 10])).duration_for(3) == 10


def test_estimated_cost_uses_the_price_table_and_the_prices_option(google):
    veo = VeoVGM("veo-3.1-generate-001", veo_options(google))
    assert veo.estimated_cost({"clip_seconds": 8}) == pytest.approx(1.6)
    cheap = VeoVGM("veo-3.1-generate-001", veo_options(google, prices={"veo-3.1-generate-001": {"per_second": 0.01}}))
    assert cheap.estimated_cost({"video_seconds": 8}) == pytest.approx(0.08)
    vlm = GeminiVLM("gemini-2.5-pro-preview", gemini_options(google))
    assert vlm.estimated_cost({"input_tokens": 1_000_000, "output_tokens": 100_000}) == pytest.approx(2.25)


def test_collabvr_episode_with_gemini_and_veo_on_a_user_image(user_task, tmp_path, google):
    google.brain = Brain(steps=2)
    episode = run(user_task, vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001",
                  vlm_options=gemini_options(google), vgm_options=veo_options(google), out_dir=str(tmp_path / "run"))
    assert episode.status == "complete", episode.reason
    trace = json.loads((tmp_path / "run" / "trace.json").read_text())
    assert [a["status"] for a in trace["attempts"]] == ["accepted", "accepted"]
    assert trace["compute"]["clip_seconds"] == pytest.approx(2.0)  # two real 1 s clips, not 6 s + 3 s
    assert trace["compute"]["input_tokens"] == 400
    assert [c.json["parameters"]["durationSeconds"] for c in google.calls("predictLongRunning")] == [6, 4]
    assert (tmp_path / "run" / "final.mp4").exists()


def test_veo_reports_the_seconds_waited_at_every_poll_as_generating_events(google):
    from collabvr import events

    google.plan_ops(Op(polls=2))
    seen: list[dict] = []
    with events.reporting(seen.append, step=0, attempt=1):
        make("vgm", "veo-3.1-generate-001", veo_options(google, poll_s=0.01)).generate(FRAME, "go", seconds=4, fps=16, seed=0)
    assert [e["event"] for e in seen] == ["generating"] * 3  # one per poll, the last one saying done
    assert all(e["unit"] == "s" and e["total"] is None and e["attempt"] == 1 for e in seen)
    assert [e["done"] for e in seen] == sorted(e["done"] for e in seen)
