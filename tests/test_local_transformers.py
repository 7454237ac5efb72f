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


def test_a_clip_reaches_the_processor_as_sampled_frames_after_a_caption_with_their_times(monkeypatch):
    backend = vlm(frames_per_clip=3, max_new_tokens=4)
    processor = backend.processor()
    received: list[dict] = []
    original = type(processor).__call__

    def spy(self, *args, **kwargs):
        received.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(processor), "__call__", spy)
    clip = Video(frames=np.stack([np.full((30, 48, 3), 10 * i, np.uint8) for i in range(5)]), fps=8)
    with pytest.raises(InvalidOutput):  # four tokens of noise: what matters is what went in
        backend.verify(VerifyRequest(task="t", clip=clip, start_frame=FRAME, instruction="i", target_state="s"))
    text, images = received[0]["text"][0], received[0]["images"]
    assert "(3 frames sampled in order, at 0.00, 0.25, 0.50 s of a 0.62 s clip)" in text  # its real fps: 8
    assert [int(np.asarray(i)[0, 0, 0]) for i in images] == [120, 0, 20, 40]  # the start frame, then frames 0, 2, 4
    assert "videos" not in received[0]


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


@pytest.fixture(scope="module")
def qwen_style_llava(tmp_path_factory):
    """The tiny LLaVA with Qwen's shipped generation config: top_k=1 and top_p=0.001, under which
    any temperature would still pick the top token."""
    import shutil

    out = tmp_path_factory.mktemp("qwen-style") / "llava"
    shutil.copytree(checkpoint("llava"), out)
    config = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps({**config, "do_sample": True, "top_k": 1, "top_p": 0.001,
                                                            "temperature": 0.1}))
    return out


def _drafts(backend: TransformersVLM, monkeypatch, seeds: list[int]) -> tuple[list[dict], list[tuple]]:
    """Plan once per episode seed; what generate received, and the tokens it drew."""
    seen: list[dict] = []
    drawn: list[tuple] = []
    model = backend.load().model
    original = type(model).generate

    def spy(self, *args, **kwargs):
        seen.append({k: kwargs.get(k) for k in ("do_sample", "temperature", "top_p", "top_k", "num_beams")})
        out = original(self, *args, **kwargs)
        drawn.append(tuple(out[0, kwargs["input_ids"].shape[1]:].tolist()))
        return out

    monkeypatch.setattr(type(model), "generate", spy)
    for seed in seeds:
        with pytest.raises(InvalidOutput):  # noise; the draw is what matters
            backend.plan(PlanRequest(task="t", frame=FRAME, step=1, max_steps=2, seconds=1.0, seed=seed))
    monkeypatch.setattr(type(model), "generate", original)
    return seen, drawn


def test_sampling_is_set_on_every_call_over_the_checkpoints_config_and_seeded_from_the_episode(qwen_style_llava, monkeypatch):
    sampled = TransformersVLM(str(qwen_style_llava), {**TINY, "max_new_tokens": 8, "temperature": 1.5})
    seen, drawn = _drafts(sampled, monkeypatch, [1, 2, 3, 1])
    assert seen[0] == {"do_sample": True, "temperature": 1.5, "top_p": 1.0, "top_k": 0, "num_beams": 1}
    first_asks = drawn[::2]  # each plan asks, then re-asks once
    assert first_asks[0] == first_asks[3]  # the same episode seed draws the same: a rerun repeats
    assert len(set(first_asks[:3])) == 3  # other seeds draw anew (top_k=1 from the config would draw one answer)
    greedy = TransformersVLM(str(qwen_style_llava), {**TINY, "max_new_tokens": 8})  # the same loaded model
    seen, drawn = _drafts(greedy, monkeypatch, [1, 2])
    assert seen[0] == {"do_sample": False, "temperature": None, "top_p": None, "top_k": None, "num_beams": 1}
    assert drawn[0] == drawn[2]  # greedy, whatever the seed


def test_gemma3_answers_every_role_through_its_own_processor_without_torchvision():
    backend = TransformersVLM(str(checkpoint("gemma3")), {**TINY, "constrained": True})
    backend.preflight()
    assert type(backend.processor()).__name__ == "Gemma3Processor"
    verdict = backend.verify(VerifyRequest(task="t", clip=CLIP, start_frame=FRAME, instruction="i", target_state="s"))
    assert isinstance(verdict, Verdict) and verdict.usage.input_tokens > 3 * 4  # three images of four soft tokens


def _torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or built for another torch
        return False
    return True


@pytest.mark.parametrize("name, processor", [("qwen25_vl", "Qwen2_5_VLProcessor"), ("qwen3_vl", "Qwen3VLProcessor")])
def test_a_qwen_vl_video_reaches_its_processor_with_its_real_fps_or_preflight_names_the_torchvision_install(
        name, processor, monkeypatch):
    """Needs torchvision for the real path (every transformers video processor does); without it,
    as in CI, the preflight line is what is tested."""
    backend = TransformersVLM(str(checkpoint(name)), {**TINY, "video_input": True, "max_new_tokens": 4})
    if not _torchvision_imports():
        with pytest.raises(BadInput, match=r"its processor needs torchvision.*pip install 'torchvision==0\.\d+\.\*'"):
            backend.preflight()
        return
    backend.preflight()
    built = backend.processor()
    assert type(built).__name__ == processor
    received: list[tuple[dict, dict]] = []
    original = type(built).__call__

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        received.append((kwargs, out))
        return out

    monkeypatch.setattr(type(built), "__call__", spy)
    clip = Video(frames=np.full((49, 56, 56, 3), 90, np.uint8), fps=8)  # CogVideoX 1.0's clip: 6.1 s at 8 fps
    with pytest.raises(InvalidOutput):
        backend.verify(VerifyRequest(task="t", clip=clip, start_frame=FRAME, instruction="i", target_state="s"))
    kwargs, out = received[0]
    assert kwargs["video_metadata"][0]["fps"] == 8 and kwargs["do_sample_frames"] is True
    grid_t = int(out["video_grid_thw"][0][0])
    frames = int(49 / 8 * 2) // 2 * 2  # the cards' rule: 2 frames a second (12), in pairs (temporal patches)
    assert grid_t * 2 == frames  # not 4 frames, as a clip assumed to run at 24 fps would give
    if name == "qwen25_vl":
        assert out["second_per_grid_ts"][0] == pytest.approx(2 / (frames / 49 * 8))  # seconds per temporal patch
    else:  # each temporal patch is labelled with its time, from the clip's real fps
        shown = np.linspace(0, 48, frames).round() / 8
        last = (shown[-2] + shown[-1]) / 2  # 5.75 s (at an assumed 24 fps it would be about 2 s)
        assert f"<{last:.1f} seconds>" in built.batch_decode(out["input_ids"])[0]
