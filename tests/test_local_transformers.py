"""The transformers VLM on a tiny random-weight LLaVA with a tokenizer trained in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
xgrammar = pytest.importorskip("xgrammar")

from collabvr.backends.local import runtime  # noqa: E402
from collabvr.backends.local.transformers_vlm import TransformersVLM, constrained_schema, extract_json  # noqa: E402
from collabvr.errors import BackendError, BadInput, InvalidOutput  # noqa: E402
from collabvr.media import Image, Video  # noqa: E402
from collabvr.records import (  # noqa: E402
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
from tests.tiny_models import checkpoint  # noqa: E402

FRAME = Image(np.full((30, 48, 3), 120, np.uint8))
CLIP = Video(frames=np.full((5, 30, 48, 3), 90, np.uint8), fps=8)
TINY = {"max_string_chars": 8, "max_new_tokens": 96, "frames_per_clip": 2}


def vlm(**options) -> TransformersVLM:
    return TransformersVLM(str(checkpoint("llava")), {**TINY, **options})


def test_constrained_decoding_answers_every_role_with_a_valid_record_and_token_counts():
    backend = vlm(constrained=True)
    answers = [
        (backend.plan(PlanRequest(task="reach the goal", frame=FRAME, step=1, max_steps=2, seconds=1.0)), Plan),
        (backend.verify(VerifyRequest(task="t", clip=CLIP, start_frame=FRAME, instruction="i", target_state="s")), Verdict),
        (backend.select(SelectRequest(task="t", candidates=(CLIP, CLIP, CLIP))), Selection),
        (backend.judge(JudgeRequest(task="t", video=CLIP, first_frame=FRAME)), Judgement),
        (backend.critique(CritiqueRequest(task="t", video=CLIP, prompt="p")), Critique),
    ]
    for record, kind in answers:
        assert isinstance(record, kind)
        assert record.usage.input_tokens > 50 and 0 < record.usage.output_tokens <= 96
    assert backend.tally.input_tokens == sum(r.usage.input_tokens for r, _ in answers)
    assert 0 <= answers[2][0].index < 3


def test_without_constraints_noise_is_a_typed_invalid_output_after_one_re_ask():
    backend = vlm(max_new_tokens=24)
    with pytest.raises(InvalidOutput, match="did not validate as Plan after a re-ask") as info:
        backend.plan(PlanRequest(task="reach the goal", frame=FRAME, step=1, max_steps=2, seconds=1.0))
    assert info.value.kind == "invalid_output"
    assert backend.tally.output_tokens == 48  # two asks, each to the token limit


def test_a_clip_is_shown_as_sampled_frames_in_order_after_its_caption():
    backend = vlm(frames_per_clip=3)
    content, images, videos = backend._content("prompt", ["Start frame:", FRAME, "Clip:", CLIP])
    kinds = [c["type"] if c["type"] != "text" else c["text"].strip() for c in content]
    assert kinds == ["prompt", "Start frame:", "image", "Clip:", "(3 frames sampled in order)", "image", "image", "image"]
    assert len(images) == 4 and not videos


def test_the_constrained_schema_only_admits_finite_valid_records():
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([chr(c) for c in range(32, 127)] + ["</s>"]))

    def accepts(schema: dict, text: str) -> bool:
        return xgrammar.GrammarMatcher(compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)).accept_string(text)

    verdict = constrained_schema(Verdict, None, 5)
    ok = ('{"accept": false, "reason": "abc", "good_fraction": 0.5, "suggestion": "", "remaining": "", '
          '"confidence": 1, "action_too_large": false}')
    assert accepts(verdict, ok)
    assert not accepts(verdict, ok.replace('"abc"', '"abcdef"'))  # longer than max_string_chars
    assert not accepts(verdict, ok.replace('0.5', '1.5'))  # good_fraction is in [0, 1]
    assert not accepts(verdict, ok.replace('"abc"', '"a\\u0006"'))  # no escapes or control characters
    selection = constrained_schema(Selection, SelectRequest(task="t", candidates=(CLIP, CLIP)), 5)
    assert accepts(selection, '{"index": 1, "reason": ""}') and not accepts(selection, '{"index": 2, "reason": ""}')


def test_json_is_taken_out_of_prose_and_fences():
    assert extract_json('Sure! ```json\n{"a": 1}\n``` done') == '{"a": 1}'
    assert extract_json(' {"a": {"b": 2}} ') == '{"a": {"b": 2}}'
    assert extract_json("no json here") == "no json here"


def test_the_model_loads_once_for_backends_that_differ_only_in_per_call_options():
    a, b = vlm(temperature=0.7, max_new_tokens=8), vlm(constrained=True, frames_per_clip=4)
    assert a.key == b.key and a.load() is b.load()
    assert vlm(dtype="bfloat16").key != a.key


def test_video_input_needs_a_processor_with_a_video_processor():
    backend = TransformersVLM(str(checkpoint("llava")), {"video_input": True, "dtype": "float16"})  # a key of its own
    with pytest.raises(BackendError, match="has no video processor"):
        backend.plan(PlanRequest(task="t", frame=FRAME, step=1, max_steps=1, seconds=1.0))
    assert not runtime.is_loaded(backend.key)


def test_bad_specs_and_options_are_one_clear_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BadInput, match="has no config.json"):
        TransformersVLM(str(tmp_path), {})
    with pytest.raises(BadInput, match="HF_HUB_OFFLINE"):
        TransformersVLM("nobody-here/no-such-vlm", {})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadInput, match="'bert' is not an image-text-to-text model"):
        TransformersVLM(str(tmp_path), {})
    good = str(checkpoint("llava"))
    for options, needle in [
        ({"max_tokens": 5}, "unknown option.*accepted: attn_implementation"),
        ({"max_new_tokens": 0}, "max_new_tokens must be a whole number >= 1"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"device": "cuda"}, "no CUDA device"),
        ({"constrained": "sometimes"}, "constrained must be true or false"),
    ]:
        with pytest.raises(BadInput, match=needle):
            TransformersVLM(good, options)
