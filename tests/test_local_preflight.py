"""The local backends' preflight: everything but the weights is loaded before any call, and what
cannot work is one BadInput line naming the fix; a build that fails anyway is remembered."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from collabvr.backends.local import runtime  # noqa: E402
from collabvr.backends.local.diffusers_vgm import DiffusersVGM  # noqa: E402
from collabvr.backends.local.preflight import torchvision_line  # noqa: E402
from collabvr.backends.local.transformers_vlm import TransformersVLM  # noqa: E402
from collabvr.errors import BadInput, ModelUnavailable  # noqa: E402
from collabvr.media import Image  # noqa: E402
from collabvr.records import PlanRequest  # noqa: E402
from tests.tiny_models import checkpoint  # noqa: E402

FRAME = Image(np.full((30, 48, 3), 120, np.uint8))


def copy_of(name: str, tmp_path) -> str:
    out = tmp_path / name
    shutil.copytree(checkpoint(name), out)
    return str(out)


def test_the_torchvision_line_is_the_build_for_the_installed_torch(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    assert torchvision_line() == "pip install 'torchvision==0.28.*' --index-url https://download.pytorch.org/whl/cpu"
    monkeypatch.setattr(torch, "__version__", "2.8.1+cu128")
    assert torchvision_line() == "pip install 'torchvision==0.23.*' --index-url https://download.pytorch.org/whl/cu128"
    monkeypatch.setattr(torch, "__version__", "2.9.0")
    assert torchvision_line() == "pip install 'torchvision==0.24.*'"


def test_a_vlm_without_a_chat_template_fails_preflight(tmp_path):
    path = copy_of("llava", tmp_path)
    for name in ("chat_template.jinja", "chat_template.json"):
        (tmp_path / "llava" / name).unlink(missing_ok=True)
    for name in ("tokenizer_config.json", "processor_config.json"):
        config_path = tmp_path / "llava" / name
        if config_path.exists():
            config = json.loads(config_path.read_text())
            config.pop("chat_template", None)
            config_path.write_text(json.dumps(config))
    with pytest.raises(BadInput, match="has no chat template.*-Instruct"):
        TransformersVLM(path, {}).preflight()


@pytest.mark.parametrize("options, needle", [
    ({"video_input": True}, "video_input is on, but LlavaProcessor has no video processor; leave video_input off"),
    ({"max_pixels": 50176}, "min_pixels and max_pixels size Qwen-VL-style processors; CLIPImageProcessor"),
])
def test_vlm_options_the_processor_cannot_honour_fail_preflight(options, needle):
    with pytest.raises(BadInput, match=needle):
        TransformersVLM(str(checkpoint("llava")), options).preflight()


@pytest.mark.parametrize("options, needle", [
    ({"attn_implementation": "flash_attention_2"}, "needs the flash_attn package: pip install flash-attn"),
    ({"attn_implementation": "sdpa_fast"}, "attn_implementation must be one of eager, sdpa"),
    ({"top_p": 0}, "top_p must be in \\(0, 1\\]"),
    ({"temperature": -1}, "temperature must be in \\[0, inf\\]"),
    ({"processor_kwargs": "big"}, "processor_kwargs must be an object"),
])
def test_vlm_options_that_cannot_work_are_refused_when_the_backend_is_built(options, needle):
    with pytest.raises(BadInput, match=needle):
        TransformersVLM(str(checkpoint("llava")), options)


@pytest.mark.parametrize("options, needle", [
    ({"attention_backend": "flash"}, "attention_backend=flash: .*flash-attn"),
    ({"attention_backend": "_native_cudnn"}, "runs on CUDA only; device is cpu"),
    ({"attention_backend": "flex", "dtype": "float32"}, None),  # flex runs anywhere, in any dtype
    ({"attention_backend": "warp"}, "attention_backend must be one of"),
])
def test_an_attention_backend_without_its_package_or_device_is_refused(options, needle):
    if needle is None:
        assert DiffusersVGM(str(checkpoint("wan21")), options).attention_backend == "flex"
        return
    with pytest.raises(BadInput, match=needle):
        DiffusersVGM(str(checkpoint("wan21")), options)


def test_a_device_index_the_machine_does_not_have_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a one-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert runtime.check_device("cuda:0") == "cuda:0"
    with pytest.raises(BadInput, match="'cuda:1' asked for, but this machine has 1 CUDA device \\(cuda:0\\)"):
        runtime.check_device("cuda:1")


def test_remote_code_and_original_internvl_checkpoints_are_named_before_any_load(tmp_path):
    internvl = tmp_path / "internvl"
    internvl.mkdir()
    (internvl / "config.json").write_text(json.dumps({"model_type": "internvl_chat", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(BadInput, match="use the transformers conversion of InternVL \\(OpenGVLab/InternVL3-8B-hf"):
        TransformersVLM(str(internvl), {})
    remote = copy_of("llava", tmp_path)
    config = json.loads((tmp_path / "llava" / "config.json").read_text())
    (tmp_path / "llava" / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "m.M"}}))
    with pytest.raises(BadInput, match="ships its own model code.*trust_remote_code=true"):
        TransformersVLM(remote, {})
    pipeline = copy_of("wan21", tmp_path)
    index = json.loads((tmp_path / "wan21" / "model_index.json").read_text())
    (tmp_path / "wan21" / "model_index.json").write_text(json.dumps({**index, "scheduler": ["my_scheduler", "Fancy"]}))
    with pytest.raises(BadInput, match="component scheduler is custom code \\(my_scheduler.Fancy\\).*trust_remote_code"):
        DiffusersVGM(pipeline, {}).preflight()


def test_a_component_that_cannot_be_read_fails_preflight_naming_it(tmp_path):
    path = copy_of("ltx_condition", tmp_path)
    (tmp_path / "ltx_condition" / "vae" / "config.json").write_text("{not json")
    with pytest.raises(BadInput, match="component vae \\(AutoencoderKLLTXVideo\\) cannot be read"):
        DiffusersVGM(path, {}).preflight()
    DiffusersVGM(str(checkpoint("ltx_condition")), {}).preflight()  # the intact checkpoint passes


def test_a_build_that_fails_is_remembered_until_released(tmp_path, monkeypatch):
    path = copy_of("cogvideox", tmp_path)
    for weights in (tmp_path / "cogvideox" / "transformer").glob("*.safetensors"):
        weights.write_bytes(b"not weights")  # the configs are intact: preflight passes, the load fails
    backend = DiffusersVGM(path, {"max_area": 1024, "num_inference_steps": 1})
    backend.preflight()
    from diffusers import CogVideoXImageToVideoPipeline

    loads = []
    original = CogVideoXImageToVideoPipeline.from_pretrained.__func__
    monkeypatch.setattr(CogVideoXImageToVideoPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: (loads.append(1), original(cls, *a, **k))[1]))
    for _ in range(3):
        with pytest.raises(ModelUnavailable, match="cannot load CogVideoXImageToVideoPipeline") as info:
            backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
        assert info.value.kind == "load_failed"
    assert len(loads) == 1  # one load, then the remembered failure
    backend.close()  # released: the next call tries again
    with pytest.raises(ModelUnavailable):
        backend.generate(FRAME, "p", seconds=0.5, fps=16, seed=0)
    assert len(loads) == 2


def test_a_vlm_used_without_preflight_remembers_its_processor_failure_as_a_load_failure():
    backend = TransformersVLM(str(checkpoint("qwen25_vl")), {})
    for _ in range(2):
        with pytest.raises(ModelUnavailable) as info:
            backend.plan(PlanRequest(task="t", frame=FRAME, step=1, max_steps=1, seconds=1.0))
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - CI: torchvision does not import beside its CPU torch
        assert "needs torchvision" in str(info.value) and info.value.kind == "load_failed"
