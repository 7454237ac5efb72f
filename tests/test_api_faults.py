"""Injected faults end as a retry that succeeds or a typed failure: never an accept, never a crash."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from collabvr.backends.google import make_gemini, make_veo
from collabvr.backends.openai import make as openai
from collabvr.errors import BackendError, InvalidOutput, RefusedOutput, TransientError
from collabvr.media import Image
from collabvr.records import Plan, PlanRequest, Verdict, VerifyRequest
from collabvr.runner import run
from tests.fakes import (
    Brain,
    FakeGoogle,
    FakeOpenAI,
    Op,
    Reply,
    chat_answer,
    colour_clip,
    error,
    gemini_answer,
    gemini_options,
    hang,
    openai_options,
    veo_options,
)

FRAME = Image(np.full((32, 32, 3), 90, np.uint8))
PLAN = PlanRequest(task="t", frame=FRAME, step=1, max_steps=2, seconds=6.0)
VERIFY = VerifyRequest(task="t", clip=colour_clip((0, 200, 0)), start_frame=FRAME, instruction="i", target_state="s")
ACCEPT_BUT_BROKEN = '{"accept": true, "reason": "ok", "good_fraction": 1.0'  # truncated JSON
ACCEPT_BUT_INVALID = {"accept": True, "reason": "ok", "good_fraction": 7.0}  # violates the schema


@pytest.fixture
def google_fake():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture
def openai_fake():
    with FakeOpenAI() as fake:
        yield fake


def gemini(fake, **extra):
    return make_gemini("vlm", "gemini-2.5-pro", gemini_options(fake, **extra))


# ----------------------------------------------------------------------------- retried faults
def test_429_waits_at_least_retry_after_then_succeeds(google_fake):
    google_fake.script("generateContent", error(429, retry_after=0.3))
    start = time.monotonic()
    assert isinstance(gemini(google_fake).plan(PLAN), Plan)
    assert time.monotonic() - start >= 0.3 and len(google_fake.calls("generateContent")) == 2


def test_503_is_retried_with_backoff(google_fake):
    google_fake.script("generateContent", error(503), error(503))
    assert isinstance(gemini(google_fake).plan(PLAN), Plan)
    assert len(google_fake.calls("generateContent")) == 3


def test_a_request_timeout_is_retried(google_fake):
    google_fake.script("generateContent", hang(1.0))
    assert isinstance(gemini(google_fake, timeout_s=0.3).plan(PLAN), Plan)


def test_openai_429_503_and_timeout_are_retried(openai_fake):
    openai_fake.script("chat", error(429, retry_after=0.05), error(503), hang(1.0))
    assert isinstance(openai("vlm", "gpt-4.1", openai_options(openai_fake, timeout_s=0.3, max_retries=3)).plan(PLAN), Plan)
    assert len(openai_fake.calls("chat")) == 4


# ----------------------------------------------------------------------------- typed failures
def test_persistent_503_gives_up_after_max_retries_as_transient(google_fake):
    google_fake.script("generateContent", *[error(503)] * 5)
    with pytest.raises(TransientError, match="3 tries"):
        gemini(google_fake, max_retries=2).plan(PLAN)
    assert len(google_fake.calls("generateContent")) == 3


def test_the_deadline_stops_retries_even_with_attempts_left(google_fake):
    google_fake.script("generateContent", *[error(429, retry_after=5)] * 3)
    start = time.monotonic()
    with pytest.raises(TransientError, match="deadline"):
        gemini(google_fake, max_retries=10, deadline_s=1.0).plan(PLAN)
    # it gave up at once rather than sleep the 5 s Retry-After past its deadline
    assert len(google_fake.calls("generateContent")) == 1
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_4xx_error_is_never_retried(google_fake, openai_fake, status):
    google_fake.script("generateContent", error(status, "bad request"))
    openai_fake.script("chat", error(status, "bad request"))
    with pytest.raises(BackendError) as caught:
        gemini(google_fake).plan(PLAN)
    assert not isinstance(caught.value, TransientError)
    with pytest.raises(BackendError):
        openai("vlm", "gpt-4.1", openai_options(openai_fake)).plan(PLAN)
    assert len(google_fake.calls("generateContent")) == 1 and len(openai_fake.calls("chat")) == 1


@pytest.mark.parametrize("bad", [ACCEPT_BUT_BROKEN, ACCEPT_BUT_INVALID])
def test_malformed_or_schema_violating_answers_fail_typed_after_one_reask(google_fake, openai_fake, bad):
    google_fake.script("generateContent", gemini_answer(bad), gemini_answer(bad))
    openai_fake.script("chat", chat_answer(bad), chat_answer(bad))
    with pytest.raises(InvalidOutput):
        gemini(google_fake).verify(VERIFY)
    with pytest.raises(InvalidOutput):
        openai("vlm", "gpt-4.1", openai_options(openai_fake)).verify(VERIFY)
    assert len(google_fake.calls("generateContent")) == 2 and len(openai_fake.calls("chat")) == 2
    reask = google_fake.calls("generateContent")[1].json["contents"]
    assert [c["role"] for c in reask] == ["user", "model", "user"] and "could not be used" in reask[2]["parts"][0]["text"]


def test_one_malformed_answer_then_a_valid_one_succeeds(google_fake):
    google_fake.script("generateContent", gemini_answer(ACCEPT_BUT_BROKEN))
    verdict = gemini(google_fake).verify(VERIFY)
    assert isinstance(verdict, Verdict) and verdict.usage.input_tokens == 200


def test_a_safety_filtered_video_is_refused_with_the_filter_reason(google_fake):
    google_fake.plan_ops(Op(polls=1, filtered=["The prompt could not be submitted: it may violate our policies."]))
    veo = make_veo("vgm", "veo-3.1-generate-001", veo_options(google_fake))
    with pytest.raises(RefusedOutput, match="violate our policies"):
        veo.generate(FRAME, "go", seconds=4, fps=16, seed=0)


def test_an_operation_that_never_finishes_times_out_within_the_deadline(google_fake):
    google_fake.plan_ops(Op(polls=-1))
    veo = make_veo("vgm", "veo-3.1-generate-001", veo_options(google_fake, deadline_s=0.5, poll_s=0.05))
    start = time.monotonic()
    with pytest.raises(TransientError, match="did not finish"):
        veo.generate(FRAME, "go", seconds=4, fps=16, seed=0)
    assert time.monotonic() - start < 5.0  # stopped near its 0.5 s deadline instead of polling forever


def test_an_operation_error_is_typed_by_its_code(google_fake):
    google_fake.plan_ops(Op(polls=0, error={"code": 8, "message": "quota"}), Op(polls=0, error={"code": 3, "message": "bad image"}))
    veo = make_veo("vgm", "veo-3.1-generate-001", veo_options(google_fake))
    with pytest.raises(TransientError):
        veo.generate(FRAME, "go", seconds=4, fps=16, seed=0)
    with pytest.raises(BackendError) as caught:
        veo.generate(FRAME, "go", seconds=4, fps=16, seed=0)
    assert not isinstance(caught.value, TransientError)


def test_veo_submit_and_poll_faults_are_retried(google_fake):
    google_fake.script("predictLongRunning", error(429, retry_after=0.01))
    google_fake.script("fetchPredictOperation", error(503), hang(1.0))
    veo = make_veo("vgm", "veo-3.1-generate-001", veo_options(google_fake, timeout_s=0.3, max_retries=3))
    assert veo.generate(FRAME, "go", seconds=4, fps=16, seed=0).num_frames == 8


def test_a_video_that_does_not_decode_is_invalid_output(google_fake):
    google_fake.plan_ops(Op(polls=0, video=b"not an mp4"))
    with pytest.raises(InvalidOutput):
        make_veo("vgm", "veo-3.1-generate-001", veo_options(google_fake)).generate(FRAME, "go", seconds=4, fps=16, seed=0)


# ----------------------------------------------------------------------------- concurrency
def test_the_concurrency_limit_is_shared_by_concurrent_callers(google_fake):
    active, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return gemini_answer(Brain().answer("plan", "", []))

    google_fake.script("generateContent", *[slow] * 6)
    vlm = gemini(google_fake, concurrency=2)
    threads = [threading.Thread(target=vlm.plan, args=(PLAN,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


# ----------------------------------------------------------------------------- in an episode
def test_faults_in_an_episode_become_failed_attempts_never_accepts(user_task, tmp_path, google_fake):
    google_fake.brain = Brain(steps=1)
    # every verify answer claims accept but is broken; the video model also gets filtered once
    google_fake.plan_ops(Op(polls=0, filtered=["unsafe"]))

    def broken_verify(request):
        text, media = google_fake.decode(request)
        if "You are the verifier" in text:
            return gemini_answer(ACCEPT_BUT_BROKEN, fault="malformed")
        return gemini_answer(Brain(steps=1).answer("plan", text, media))

    google_fake.defaults["generateContent"] = broken_verify
    episode = run(user_task, vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001", max_attempts=3,
                  vlm_options=gemini_options(google_fake), vgm_options=veo_options(google_fake), out_dir=str(tmp_path / "run"))
    trace = json.loads((tmp_path / "run" / "trace.json").read_text())
    statuses = [a["status"] for a in trace["attempts"]]
    assert "accepted" not in statuses and episode.status != "complete"
    assert statuses[0] == "generation_failed" and trace["attempts"][0]["error"]["kind"] == "refused"
    assert "unsafe" in trace["attempts"][0]["error"]["message"]
    assert set(statuses[1:]) == {"verification_failed"}
    assert {a["error"]["kind"] for a in trace["attempts"][1:]} == {"invalid_output"}


def test_an_unreachable_server_is_a_transient_failure():
    vlm = make_gemini("vlm", "gemini-2.5-pro", {"api_key": "k" * 10, "base_url": "http://127.0.0.1:9", "max_retries": 1,
                                            "backoff_s": 0.01, "timeout_s": 0.5, "deadline_s": 2})
    with pytest.raises(TransientError):
        vlm.plan(PLAN)


def test_fake_servers_record_every_fault(google_fake):
    google_fake.script("generateContent", Reply(503, {}, fault="x"))
    gemini(google_fake).plan(PLAN)
    assert [r.fault for r in google_fake.calls("generateContent")] == ["x", None]
