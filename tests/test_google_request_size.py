"""Gemini requests stay within the API's request size cap, whatever the clips and however many.

The fake enforces the real API's 20 MiB cap (400 above it) and serves the Files API; sizes are
read from its request log, so these tests see the bodies the real SDK sent.
"""

from __future__ import annotations

import numpy as np
import pytest
from google import genai
from google.genai import types

from collabvr.backends.api import response_schema
from collabvr.backends.google import DEFAULT_REQUEST_LIMIT, GeminiVLM, request_bytes
from collabvr.errors import BackendError
from collabvr.media import Image, Video
from collabvr.records import Selection, SelectRequest, Verdict, VerifyRequest
from tests.fakes import API_BODY_LIMIT, FakeGoogle, gemini_answer, gemini_options, padded_clip

MiB = 2**20
SMALL_FRAME = Image(np.full((32, 48, 3), 90, np.uint8))


def noise_image(height: int, width: int, seed: int = 0) -> Image:
    """Incompressible pixels: its PNG is as large as its raw bytes."""
    return Image(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def google():
    with FakeGoogle(max_body_bytes=API_BODY_LIMIT) as server:
        yield server


def gemini(server: FakeGoogle, **extra: object) -> GeminiVLM:
    return GeminiVLM("gemini-2.5-pro", gemini_options(server, file_poll_s=0.01, **extra))


def bodies(server: FakeGoogle) -> list[int]:
    return [len(r.body) for r in server.calls("generateContent")]


def uploaded_sizes(server: FakeGoogle) -> list[int]:
    """Sizes of the files uploaded through the Files API, in upload order."""
    return [len(data) for data in server.files.values()]


def inline_video_sizes(server: FakeGoogle, request) -> list[int]:
    _, media = server.decode(request)
    return [len(m.mp4) for m in media if isinstance(m, Video)]


def test_a_large_clip_with_a_large_start_frame_goes_through_the_files_api_under_the_cap(google):
    # The case: a 12.5 MiB clip and a 2.6 MiB start frame made a 21.1 MB request (400).
    clip, frame = padded_clip(int(12.5 * MiB)), noise_image(950, 960)
    assert len(frame.to_png()) > 2.6 * MiB
    verdict = gemini(google).verify(VerifyRequest(task="t", clip=clip, start_frame=frame, instruction="i", target_state="s"))
    assert isinstance(verdict, Verdict) and verdict.accept  # the fake saw the clip (from the Files API) and judged it
    assert uploaded_sizes(google) == [len(clip.mp4)]
    assert len(google.calls("deleteFile")) == 1
    assert all(size <= DEFAULT_REQUEST_LIMIT for size in bodies(google))
    assert [r.fault for r in google.calls("generateContent")] == [None]


def test_pass_at_4_selection_uploads_the_largest_clips_until_the_request_fits(google):
    # The case: four ~5.8 MiB clips made a 32.6 MB selection request.
    sizes = [5.8, 5.9, 5.7, 5.6]
    clips = tuple(padded_clip(int(s * MiB)) for s in sizes)
    selection = gemini(google).select(SelectRequest(task="t", candidates=clips))
    assert isinstance(selection, Selection)
    assert sorted(uploaded_sizes(google)) == [int(5.8 * MiB), int(5.9 * MiB)]  # largest first, only as many as needed
    request = google.calls("generateContent")[0]
    assert len(request.body) <= DEFAULT_REQUEST_LIMIT and request.fault is None
    # the candidates keep their order: two by file reference, two inline
    _, media = google.decode(request)
    assert [len(m.mp4) for m in media] == [len(c.mp4) for c in clips]
    assert sorted(inline_video_sizes(google, request)) == sorted(len(c.mp4) for c in clips)
    parts = [p for p in request.json["contents"][0]["parts"] if "inlineData" in p or "fileData" in p]
    assert ["fileData" in p for p in parts] == [True, True, False, False]


def test_selection_of_ten_large_clips_fits_the_cap(google):
    clips = tuple(padded_clip(int(5.8 * MiB) + i) for i in range(10))
    assert isinstance(gemini(google).select(SelectRequest(task="t", candidates=clips)), Selection)
    assert len(uploaded_sizes(google)) == 8
    assert bodies(google)[0] <= DEFAULT_REQUEST_LIMIT and google.calls("generateContent")[0].fault is None


def test_on_vertex_clips_become_sampled_frames_then_smaller_and_fewer_until_the_request_fits(google):
    # Vertex has no Files API. Twelve large clips of incompressible 320x320 frames: eight frames
    # each does not fit at full size nor at 256 px; four frames each at 256 px does.
    noise = Video(frames=np.random.default_rng(1).integers(0, 256, (8, 320, 320, 3), dtype=np.uint8), fps=8)
    clip = padded_clip(int(5.8 * MiB), noise)
    selection = gemini(google, vertexai=True).select(SelectRequest(task="t", candidates=(clip,) * 12))
    assert isinstance(selection, Selection)
    assert google.calls("uploadStart") == []
    request = google.calls("generateContent")[0]
    assert request.path.startswith("/v1beta1/publishers/google/")
    assert len(request.body) <= DEFAULT_REQUEST_LIMIT and request.fault is None
    _, media = google.decode(request)
    assert len(media) == 12 * 4 and {m.array.shape for m in media} == {(256, 256, 3)}
    texts = [p["text"] for p in request.json["contents"][0]["parts"] if "text" in p]
    assert texts.count("(4 frames sampled in order)") == 12


def test_on_vertex_small_enough_sampled_frames_keep_their_size(google):
    clips = (padded_clip(12 * MiB), padded_clip(11 * MiB))
    gemini(google, vertexai=True, frames_per_clip=3).select(SelectRequest(task="t", candidates=clips))
    _, media = google.decode(google.calls("generateContent")[0])
    # the larger clip became 3 full-size frames, the other still fits inline
    assert [type(m).__name__ for m in media] == ["Image", "Image", "Image", "Video"]
    assert media[0].array.shape == (32, 32, 3)


def test_a_request_that_cannot_fit_fails_typed_and_nothing_is_sent(google):
    frame = noise_image(200, 200)  # a ~120 kB PNG that must go inline
    for extra in ({}, {"vertexai": True}):
        vlm = gemini(google, request_limit_bytes=100_000, **extra)
        with pytest.raises(BackendError, match="request_limit_bytes=100000"):
            vlm.verify(VerifyRequest(task="t", clip=padded_clip(MiB), start_frame=frame, instruction="i", target_state="s"))
    assert google.requests == []


def test_room_is_kept_for_the_reask_turn(google):
    # The first answer is rejected; the re-ask quotes 4000 characters of it, each 12 bytes once
    # JSON-escaped. The clip fits the first request alone, but not with the re-ask: it must go
    # through the Files API from the start, so that neither request exceeds the limit.
    limit = 2 * MiB
    google.max_body_bytes = limit
    google.script("generateContent", gemini_answer('{"accept": true, "reason": "' + "\U0001f600" * 5000))
    clip = padded_clip((limit - 35_000) * 3 // 4)  # alone, the first request is ~30 kB under the limit
    verdict = gemini(google, request_limit_bytes=limit).verify(
        VerifyRequest(task="t", clip=clip, start_frame=SMALL_FRAME, instruction="i", target_state="s"))
    assert isinstance(verdict, Verdict)
    assert len(bodies(google)) == 2 and max(bodies(google)) <= limit
    assert [r.fault for r in google.calls("generateContent")] == [None, None]
    assert uploaded_sizes(google) == [len(clip.mp4)]


def test_the_size_estimate_bounds_the_body_the_sdk_sends(google):
    google.defaults["generateContent"] = lambda request: gemini_answer("{}")  # only the body matters here
    client = genai.Client(api_key="test-google-key-000", http_options=types.HttpOptions(base_url=google.url))
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=response_schema(Verdict))
    video = types.VideoMetadata(fps=4.0)
    cases = [
        [types.Part.from_text(text="plain text")],
        [types.Part.from_text(text="ünïcödé and \U0001f600 " * 200), types.Part.from_text(text='quotes " and \\ and \n')],
        [types.Part.from_bytes(data=noise_image(64, 64).to_png(), mime_type="image/png"),
         types.Part(inline_data=types.Blob(data=padded_clip(100_001).mp4, mime_type="video/mp4"), video_metadata=video),
         types.Part(file_data=types.FileData(file_uri=f"{google.url}/v1beta/files/f1", mime_type="video/mp4"),
                    video_metadata=video)],
    ]
    for parts in cases:
        contents = [types.Content(role="user", parts=parts), types.Content(role="model", parts=[types.Part.from_text(text="x")])]
        client.models.generate_content(model="gemini-2.5-pro", contents=contents, config=config)
        sent = len(google.calls("generateContent")[-1].body)
        estimate = request_bytes(contents, Verdict)
        assert sent <= estimate <= sent + 16_000, (sent, estimate)
