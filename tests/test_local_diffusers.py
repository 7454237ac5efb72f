"""The diffusers VGM on tiny random-weight pipelines of every supported family, on the CPU."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("ftfy")

from collabvr import events  # noqa: E402
from collabvr.artifacts import ArtifactStore  # noqa: E402
from collabvr.backends import registry  # noqa: E402
from collabvr.backends.local import runtime  # noqa: E402
from collabvr.backends.local.diffusers_vgm import DiffusersVGM  # noqa: E402
from collabvr.backends.local.families import Geometry  # noqa: E402
from collabvr.errors import BadInput  # noqa: E402
from collabvr.media import Image, Video  # noqa: E402
from tests.tiny_models import checkpoint  # noqa: E402

# 48x30: neither side a multiple of 16 or 32, and not square
FRAME = Image(np.full((30, 48, 3), 120, np.uint8))
TINY = {"max_area": 32 * 32, "num_inference_steps": 2, "max_sequence_length": 16}


def vgm(name: str, **options) -> DiffusersVGM:
    return DiffusersVGM(str(checkpoint(name)), {**TINY, **options})


@pytest.mark.parametrize(
    "name, pipeline, native, fps, frames, render",
    [  # 0.5 s asked of each: seconds x the family's native fps, rounded to the frame rule
        ("wan21", "WanImageToVideoPipeline", "Wan 2.1 I2V 480P", 16, 9, (32, 16)),  # VAE 8 x patch 2: multiples of 16
        ("wan22_a14b", "WanImageToVideoPipeline", "Wan 2.2 I2V-A14B", 16, 9, (32, 16)),  # two experts, boundary_ratio
        ("wan22_ti2v", "WanImageToVideoPipeline", "Wan 2.2 TI2V-5B", 24, 13, (32, 32)),  # 12 asked; VAE 16 x patch 2
        ("ltx_i2v", "LTXImageToVideoPipeline", "LTX-Video", 24, 9, (32, 32)),  # 12 asked: 8k+1; multiples of 32
        ("ltx_condition", "LTXConditionPipeline", "LTX-Video", 24, 9, (32, 32)),
        ("cogvideox", "CogVideoXImageToVideoPipeline", "CogVideoX 1.0 I2V", 8, 9, (16, 16)),  # its one count and size
        ("cogvideox15", "CogVideoXImageToVideoPipeline", "CogVideoX 1.5 I2V", 16, 9, (32, 16)),  # sample_frames or 2x-1
    ],
)
def test_each_family_renders_at_its_native_fps_and_the_saved_clip_lasts_frames_over_that_fps(
        name, pipeline, native, fps, frames, render, tmp_path):
    backend = vgm(name)
    clip = backend.generate(FRAME, "slide the block", seconds=0.5, fps=16, seed=3)  # the episode's fps: 16
    assert backend.pipeline_class == pipeline and type(backend.pipeline()).__name__ == pipeline
    assert clip.render["native"] == native and clip.render["fps"] == fps
    assert clip.num_frames == frames and clip.fps == fps
    assert (clip.width, clip.height) == (48, 30)  # resized back to the episode's frame size
    assert clip.render["render_size"] == render  # what the pipeline really returned, not what we asked
    assert clip.render["frames_requested"] == 0.5 * fps and clip.render["frames"] == frames
    assert clip.render["num_inference_steps"] == 2 and clip.render["guidance_scale"] == 5.0  # paper's CFG by default
    assert clip.frames.std() > 0  # noise, but rendered noise
    # what a player sees: the file the store writes, decoded, lasts frames / native fps
    store = ArtifactStore(tmp_path / "artifacts")
    store.export(store.put_video(clip), tmp_path / "clip.mp4")
    saved = Video.open(tmp_path / "clip.mp4")
    assert saved.num_frames == frames and saved.fps == pytest.approx(fps)
    assert saved.seconds == pytest.approx(frames / fps) and clip.render["seconds"] == pytest.approx(frames / fps)


def test_the_two_transformer_form_really_has_both_and_the_ti2v_form_expands_timesteps():
    a14b, ti2v = vgm("wan22_a14b").pipeline(), vgm("wan22_ti2v").pipeline()
    assert a14b.transformer is not None and a14b.transformer_2 is not None and a14b.config.boundary_ratio == 0.875
    assert ti2v.config.expand_timesteps and ti2v.image_encoder is None and ti2v.vae_scale_factor_spatial == 16


@pytest.mark.parametrize("name, seconds, frames", [
    ("wan21", 15 / 16, 17),  # 15 asked at 16 fps: 4k+1 nearest is 17 (the pipeline itself would cut to 13)
    ("ltx_i2v", 10 / 24, 9),  # 10 asked at 24 fps: 9 is nearer than 17 (8k+1)
    ("ltx_i2v", 14 / 24, 17),  # 14 asked: 17 (the pipeline would make 9)
    ("cogvideox", 2.0, 9),  # CogVideoX 1.0: its version's fixed count whatever was asked
    ("cogvideox15", 1.0, 17),  # CogVideoX 1.5: 16 asked, the nearer of sample_frames (9) and 2 x 9 - 1
])
def test_a_frame_count_the_model_cannot_make_is_rounded_to_the_nearest_allowed_and_recorded(name, seconds, frames):
    backend = vgm(name)
    clip = backend.generate(FRAME, "p", seconds=seconds, fps=16, seed=0)
    assert clip.num_frames == frames and clip.render["frames"] == frames
    assert clip.render["frames_requested"] == round(seconds * backend.fps, 3)
    assert clip.render["seconds"] == pytest.approx(frames / backend.fps, abs=1e-6)


def test_geometry_keeps_the_aspect_ratio_at_the_area_and_rounds_down_to_the_multiple():
    wan = Geometry(temporal=4, spatial=16)
    assert wan.size_for(832, 480, 480 * 832) == (832, 480)  # the paper's 480p
    assert wan.size_for(1920, 1080, 480 * 832) == (832, 464)  # 16:9 at the 480p area (842.6 x 474 rounded down)
    assert wan.size_for(64, 64, 480 * 832) == (624, 624)  # a small frame is rendered at the area, then resized back
    w, h = wan.size_for(1000, 750, 480 * 832)
    assert w % 16 == 0 and h % 16 == 0 and w * h <= 480 * 832 and abs(w / h - 4 / 3) < 0.05
    assert [wan.frames_for(n) for n in (1, 4, 6, 7, 81, 96)] == [5, 5, 5, 9, 81, 97]
    assert Geometry(temporal=8, spatial=32).frames_for(48) == 49
    assert Geometry(4, 16, fixed_frames=(49,), fixed_size=(720, 480)).size_for(64, 64, 10**6) == (720, 480)
    assert [Geometry(4, 16, fixed_frames=(81, 161)).frames_for(n) for n in (16, 96, 121, 500)] == [81, 81, 81, 161]


def test_the_seed_goes_through_a_generator_so_the_same_seed_gives_the_same_clip():
    backend = vgm("cogvideox")
    first = backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=11).frames
    again = backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=11).frames
    other = backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=12).frames
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_denoising_steps_are_reported_as_generating_events():
    seen: list[dict] = []
    with events.reporting(seen.append, step=1, attempt=2):
        vgm("ltx_i2v", num_inference_steps=3).generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
    assert [(e["event"], e["done"], e["total"], e["unit"]) for e in seen] == [("generating", i, 3, "step") for i in (1, 2, 3)]
    assert all(e["step"] == 1 and e["attempt"] == 2 for e in seen)


def test_ltx_condition_continues_from_the_previous_clips_last_frames():
    backend = vgm("ltx_condition", condition_frames=9)
    first = backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0)  # 9 frames
    assert first.render["condition_frames"] == 1  # nothing to continue from yet
    # the next step starts at the last frame as the store gives it back (decoded from the stored MP4)
    last = Image(first.frames[-1].copy())
    second = backend.generate(last, "p", seconds=0.5, fps=16, seed=0)
    assert second.render["condition_frames"] == 9 and second.num_frames == 9  # the 8 repeated frames are dropped
    assert backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0).render["condition_frames"] == 1


def test_per_call_options_share_one_pipeline_and_weight_options_do_not():
    before = runtime.loads.copy()
    a = vgm("ltx_i2v", num_inference_steps=2, guidance_scale=3.0, negative_prompt="blur")
    b = vgm("ltx_i2v", num_inference_steps=4, max_area=64 * 64)
    assert a.key == b.key and a.pipeline() is b.pipeline()
    assert runtime.loads[a.key] - before[a.key] <= 1
    c = vgm("ltx_i2v", vae_tiling=True)
    assert c.key != a.key


def test_close_frees_the_pipeline_and_the_next_call_loads_it_again():
    backend = vgm("cogvideox")
    alive = weakref.ref(backend.pipeline())
    loads = runtime.loads[backend.key]
    backend.close()
    gc.collect()
    assert alive() is None and not runtime.is_loaded(backend.key)
    backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
    assert runtime.loads[backend.key] == loads + 1


def test_registry_close_all_closes_cached_backends_and_frees_their_models():
    spec = f"diffusers:{checkpoint('cogvideox')}"
    backend = registry.resolve_vgm(spec, TINY)
    alive = weakref.ref(backend.pipeline())
    assert registry.close_all() >= 1
    gc.collect()
    assert alive() is None and registry.resolve_vgm(spec, TINY) is not backend
    assert registry.close("vgm", spec, TINY) and not registry.close("vgm", spec, TINY)


def test_calls_on_one_device_wait_for_its_lock_while_async_callers_keep_running():
    backend = vgm("cogvideox")
    backend.pipeline()
    lock = runtime.device_lock(backend.device)
    done = threading.Event()
    with lock:  # another model call holds the device
        worker = threading.Thread(target=lambda: (backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0), done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set()
    worker.join(60)
    assert done.is_set()

    async def main() -> tuple[int, int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.create_task(heartbeat())
        clip = await backend.agenerate(FRAME, "p", seconds=0.5, fps=16, seed=0)
        beat.cancel()
        return ticks, clip.num_frames

    ticks, frames = asyncio.run(main())
    assert frames == 9 and ticks >= 3  # the loop ran while the clip rendered


def test_bad_specs_and_options_are_one_clear_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BadInput, match="no such checkpoint directory"):
        DiffusersVGM(str(tmp_path / "missing" / "dir"), {})
    with pytest.raises(BadInput, match="has no model_index.json"):
        DiffusersVGM(str(tmp_path), {})
    with pytest.raises(BadInput, match="HF_HUB_OFFLINE"):
        DiffusersVGM("nobody-here/no-such-model", {})
    with pytest.raises(BadInput, match="needs a checkpoint"):
        DiffusersVGM("", {})
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(BadInput, match="StableDiffusionPipeline is not supported.*CogVideoXImageToVideoPipeline.*WanImageToVideoPipeline"):
        DiffusersVGM(str(tmp_path), {})
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))  # Wan text-to-video
    with pytest.raises(BadInput, match="WanPipeline is not supported"):
        DiffusersVGM(str(tmp_path), {})
    good = str(checkpoint("wan21"))
    for options, needle in [
        ({"steps": 2}, "unknown option.*accepted: attention_backend"),
        ({"offload": "model"}, "device is cpu"),
        ({"offload": "disk"}, "offload must be one of none, model, sequential, group"),
        ({"dtype": "int8"}, "dtype must be a floating torch dtype"),
        ({"condition_frames": 9}, "needs an LTXConditionPipeline"),
        ({"attention_backend": "warp"}, "attention_backend must be one of"),
        ({"num_inference_steps": 0}, "num_inference_steps must be >= 1"),
        ({"vae_tiling": "maybe"}, "vae_tiling must be true or false"),
    ]:
        with pytest.raises(BadInput, match=needle):
            DiffusersVGM(good, options)
    with pytest.raises(BadInput, match="8k\\+1"):
        DiffusersVGM(str(checkpoint("ltx_condition")), {"condition_frames": 4})


def test_a_hub_id_resolves_from_the_local_cache_when_offline(tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import constants

    snapshot = tmp_path / "models--tiny-org--tiny-wan" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint("wan22_ti2v"), snapshot)
    (tmp_path / "models--tiny-org--tiny-wan" / "refs").mkdir()
    (tmp_path / "models--tiny-org--tiny-wan" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = DiffusersVGM("tiny-org/tiny-wan", {})
    assert backend.checkpoint.hub and backend.checkpoint.source == "tiny-org/tiny-wan"
    assert backend.checkpoint.files == snapshot and backend.pipeline_class == "WanImageToVideoPipeline"
