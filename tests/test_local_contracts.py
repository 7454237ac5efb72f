"""What each video family really received, after the library's own preprocessing: the contract
between the diffusers VGM and the model cards, checked on tiny random-weight pipelines.

The attempt record says what we meant to do; these tests wrap the pipeline (``prepare_latents``,
``__call__``, the experts' forward) and assert what it got, so a path that runs but feeds the model
the wrong thing fails here."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import LTXConditionPipeline, WanImageToVideoPipeline  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from collabvr.backends.local.diffusers_vgm import DiffusersVGM  # noqa: E402
from collabvr.errors import BadInput  # noqa: E402
from collabvr.media import Image  # noqa: E402
from tests.tiny_models import checkpoint  # noqa: E402

FRAME = Image(np.full((32, 32, 3), 120, np.uint8))  # the LTX render size: nothing resized on the way
TINY = {"max_area": 32 * 32, "num_inference_steps": 2, "max_sequence_length": 16}


def vgm(name: str, **options) -> DiffusersVGM:
    return DiffusersVGM(str(checkpoint(name)), {**TINY, **options})


def spy(monkeypatch, cls: type, method: str) -> list[tuple[tuple, dict, object]]:
    """Record every call of ``cls.method`` (arguments and result) and let it run as it would."""
    calls: list[tuple[tuple, dict, object]] = []
    original = getattr(cls, method)

    @functools.wraps(original)  # keeps the signature, which the backend reads
    def recording(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(cls, method, recording)
    return calls


def test_ltx_condition_receives_one_video_condition_of_the_previous_clips_last_frames_in_order(monkeypatch):
    backend = vgm("ltx_condition", condition_frames=9)
    first = backend.generate(FRAME, "p", seconds=17 / 24, fps=16, seed=0)  # 17 frames at LTX's 24 fps
    assert first.num_frames == 17 and first.render["condition_frames"] == 1
    latents = spy(monkeypatch, LTXConditionPipeline, "prepare_latents")
    calls = spy(monkeypatch, LTXConditionPipeline, "__call__")
    current = Image(first.frames[-1].copy())  # the next step starts at the last frame, as the store gives it back
    second = backend.generate(current, "p", seconds=9 / 24, fps=16, seed=0)

    (conditioning, strength, frame_index, *_), _, _ = latents[0]
    assert len(conditioning) == 1 and strength == [1.0] and frame_index == [0]  # one condition, at frame 0
    pipe = backend.pipeline()
    expected = pipe.video_processor.preprocess_video([PILImage.fromarray(f) for f in first.frames[-9:]], 32, 32)
    assert conditioning[0].shape[2] == 9  # all nine frames, not the oldest one alone
    assert torch.allclose(conditioning[0].float().cpu(), expected.float(), atol=1e-5)  # the last nine, in order
    _, kwargs, output = calls[0]
    assert kwargs["num_frames"] == 17 and kwargs["frame_rate"] == 24  # 9 new + 8 repeated, at its own rate
    # the returned clip is the pipeline's output from the current frame's position on
    raw = (np.asarray(output.frames[0]) * 255).round().clip(0, 255)
    assert second.num_frames == 9 and second.render["condition_frames"] == 9
    continued = np.abs(second.frames.astype(float) - raw[8:]).mean()  # the stored MP4's loss (noise codes badly)
    assert all(continued < np.abs(second.frames.astype(float) - raw[i:i + 9]).mean() for i in range(8))


def test_wan_a14b_runs_both_experts_split_at_its_boundary_ratio(monkeypatch):
    backend = vgm("wan22_a14b", num_inference_steps=4)
    pipe = backend.pipeline()
    seen: dict[str, list[float]] = {"transformer": [], "transformer_2": []}
    for name in seen:
        getattr(pipe, name).register_forward_pre_hook(
            lambda _m, _a, kw, name=name: seen[name].append(float(kw["timestep"].flatten()[0])), with_kwargs=True)
    backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
    boundary = pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
    assert pipe.config.boundary_ratio == 0.875  # the checkpoint's, read from its model_index.json
    assert seen["transformer"] and seen["transformer_2"]  # both experts ran (twice a step: CFG)
    assert min(seen["transformer"]) >= boundary > max(seen["transformer_2"])  # high noise first, then low


def test_guidance_scale_2_reaches_the_pipeline_and_steers_the_low_noise_expert_only(monkeypatch):
    calls = spy(monkeypatch, WanImageToVideoPipeline, "__call__")
    plain = vgm("wan22_a14b").generate(FRAME, "p", seconds=0.5, fps=16, seed=4).frames
    same = vgm("wan22_a14b", guidance_scale_2=5.0).generate(FRAME, "p", seconds=0.5, fps=16, seed=4).frames
    other = vgm("wan22_a14b", guidance_scale_2=1.5).generate(FRAME, "p", seconds=0.5, fps=16, seed=4).frames
    assert "guidance_scale_2" not in calls[0][1] and calls[1][1]["guidance_scale_2"] == 5.0
    assert calls[2][1]["guidance_scale_2"] == 1.5
    assert np.array_equal(plain, same)  # unset, the pipeline uses guidance_scale for both experts
    assert not np.array_equal(plain, other)


def test_the_model_cards_options_reach_the_pipeline_and_per_call_ones_share_it(monkeypatch):
    ltx = spy(monkeypatch, LTXConditionPipeline, "__call__")
    options = {"decode_timestep": 0.05, "decode_noise_scale": 0.025, "image_cond_noise_scale": 0.0,
               "guidance_rescale": 0.7, "timesteps": [1000, 700, 400]}
    backend = vgm("ltx_condition", **options)
    decoded = spy(monkeypatch, type(backend.pipeline().vae), "decode")
    clip = backend.generate(FRAME, "p", seconds=0.4, fps=16, seed=0)
    kwargs = ltx[0][1]
    assert {k: kwargs[k] for k in options} == options
    assert float(decoded[0][0][1].flatten()[0]) == pytest.approx(0.05)  # the VAE decoded at that timestep
    assert clip.render["num_inference_steps"] == 2  # recorded as asked; the pipeline ran len(timesteps) steps
    assert backend.key == vgm("ltx_condition").key  # per-call options: one pipeline

    from diffusers import CogVideoXImageToVideoPipeline

    cog = spy(monkeypatch, CogVideoXImageToVideoPipeline, "__call__")
    vgm("cogvideox15", use_dynamic_cfg=True).generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
    assert cog[0][1]["use_dynamic_cfg"] is True


@pytest.mark.parametrize("name, options, needle", [
    ("wan21", {"guidance_scale_2": 3.0}, "guidance_scale_2 is the low-noise expert's CFG"),
    ("wan22_a14b", {"timesteps": [900, 500]}, "WanImageToVideoPipeline does not take timesteps"),
    ("ltx_i2v", {"image_cond_noise_scale": 0.1}, "LTXImageToVideoPipeline does not take image_cond_noise_scale"),
    ("cogvideox", {"decode_timestep": 0.05}, "CogVideoXImageToVideoPipeline does not take decode_timestep"),
    ("ltx_condition", {"timesteps": [400, 700]}, "decreasing timesteps"),
    ("ltx_i2v", {"pipeline": "WanImageToVideoPipeline"}, "pipeline must be one of LTXImageToVideoPipeline, LTXCondition"),
    ("ltx_i2v", {"condition_frames": 9}, "needs an LTXConditionPipeline checkpoint \\(or pipeline=LTXConditionPipeline"),
    ("wan21", {"lora": {"path": "x/y", "transformer_2": True}}, "low-noise expert; .* has none"),
    ("wan21", {"enable_cache": {"type": "first_block", "treshold": 0.1}}, "unknown field\\(s\\) treshold"),
    ("wan21", {"enable_cache": {"type": "magic"}}, "enable_cache type must be one of first_block"),
    ("wan21", {"compile": {"mode": "fast", "backends": "x"}}, "compile: unknown field\\(s\\) backends"),
])
def test_an_option_the_family_does_not_take_is_one_bad_input_naming_why(name, options, needle):
    with pytest.raises(BadInput, match=needle):
        vgm(name, **options)


def test_an_ltx_095_checkpoint_whose_index_names_ltxpipeline_loads_as_ltxcondition_and_continues():
    backend = vgm("ltx_i2v", pipeline="LTXConditionPipeline", condition_frames=9)
    assert type(backend.pipeline()).__name__ == "LTXConditionPipeline"
    first = backend.generate(FRAME, "p", seconds=17 / 24, fps=16, seed=0)
    assert backend.generate(Image(first.frames[-1].copy()), "p", seconds=0.4, fps=16, seed=0).render["condition_frames"] == 9
    assert backend.key != vgm("ltx_i2v").key  # another class: another pipeline


@pytest.fixture(scope="module")
def wan_lora(tmp_path_factory):
    """A LoRA for the tiny Wan 2.2 A14B transformer, saved as diffusers saves LoRAs, with random
    (non-zero) up-projections so it changes what the model computes."""
    from diffusers import WanTransformer3DModel
    from peft import LoraConfig, get_peft_model_state_dict

    out = tmp_path_factory.mktemp("lora")
    transformer = WanTransformer3DModel.from_pretrained(checkpoint("wan22_a14b"), subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False))
    WanImageToVideoPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out


def test_lora_adapters_load_with_their_scales_into_the_right_expert_and_are_part_of_the_load_key(wan_lora):
    plain = vgm("wan22_a14b")
    adapted = vgm("wan22_a14b", lora=[{"path": str(wan_lora), "scale": 0.5},
                                      {"path": str(wan_lora), "scale": 0.25, "transformer_2": True}])
    assert adapted.key != plain.key and adapted.key != vgm("wan22_a14b", lora=str(wan_lora)).key
    adapted.preflight()
    pipe = adapted.pipeline()
    assert pipe.get_list_adapters() == {"transformer": ["lora0"], "transformer_2": ["lora1"]}
    assert pipe.transformer.blocks[0].attn1.to_q.scaling == {"lora0": 0.5}
    assert pipe.transformer_2.blocks[0].attn1.to_q.scaling == {"lora1": 0.25}
    frames = adapted.generate(FRAME, "p", seconds=0.5, fps=16, seed=0).frames
    assert not np.array_equal(frames, plain.generate(FRAME, "p", seconds=0.5, fps=16, seed=0).frames)
    with pytest.raises(BadInput, match="lora ./no-such-lora: no such file or directory"):
        vgm("wan22_a14b", lora="./no-such-lora").preflight()


def test_cache_hooks_and_regional_compilation_are_applied_to_every_transformer():
    cached = vgm("wan22_a14b", enable_cache={"type": "first_block", "threshold": 0.2})
    pipe = cached.pipeline()
    assert pipe.transformer.is_cache_enabled and pipe.transformer_2.is_cache_enabled
    assert cached.generate(FRAME, "p", seconds=0.25, fps=16, seed=0).num_frames == 5
    compiled = vgm("wan21", compile={"backend": "eager"}, num_inference_steps=1)  # eager: dynamo, no C++ build
    blocks = compiled.pipeline().transformer.blocks
    assert all(block._compiled_call_impl is not None for block in blocks)  # the repeated blocks, regionally
    assert compiled.generate(FRAME, "p", seconds=0.25, fps=16, seed=0).num_frames == 5
    assert len({cached.key, compiled.key, vgm("wan22_a14b").key}) == 3
