"""Local backends at real size: seconds per clip, seconds per VLM call, peak memory, loads per process.

Runs ``--episodes`` episodes of each of two methods (CollabVR and pass@2, which both call the VLM)
in one process on a ``diffusers:`` VGM and a ``transformers:`` VLM, once per row of
resolution x offload mode x VLM size, and prints one table:

- seconds per clip (median of the VGM calls' wall time) and denoising steps per second;
- seconds per VLM call (median over the episodes' calls);
- peak memory: the accelerator's ``max_memory_allocated`` (the CPU: the process's peak RSS);
- load time, and how many times each model was built (the bar: once per process).

On a GPU (``--scale wan``, the default there) the VGM is a random-weight pipeline of
Wan2.2-I2V-A14B's size: two 40-layer, 5120-wide transformers split at ``boundary_ratio`` 0.9, the
Wan 2.1 VAE, and the UMT5-XXL text encoder at its real vocabulary (256,384) and size (24 layers,
4096 wide), in bfloat16, since no weights can be downloaded here. Each clip is the default first
clip: 6 s at Wan's 16 fps, 97 frames, at the 480p (480 x 832) or 720p (720 x 1280) area, 20 steps,
CFG 5.0. The VLM is the tiny test LLaVA and (``--vlm-sizes tiny,7b``) a random-weight LLaVA of
7B size (CLIP ViT-L/14-336 and a 32-layer, 4096-wide Llama, vocabulary 32,064), as large as
Qwen2.5-VL-7B or Llama-3-8B-class VLMs. The random weights are built in memory and handed to the
backends' loaded-model cache under the key their options give, so "load" is construction time,
not a read from disk.

On the CPU (``--scale tiny``, the default there) it runs the tiny test checkpoints
(tests/tiny_models.py) through ``from_pretrained`` at 32 px and 2 steps, and says so. ``--smoke``
runs the real-size code path at toy width on any device (a test runs it, so the script is known to
work before a GPU is lent).

    PYTHONPATH=. python benchmarks/local_gpu.py                      # GPU if present, else tiny on CPU
    PYTHONPATH=. python benchmarks/local_gpu.py --scale wan --resolutions 480p,720p --offload none,model,group --vlm-sizes tiny,7b
    PYTHONPATH=. python benchmarks/local_gpu.py --scale wan --smoke  # the real-size path at toy width, on any device
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collabvr.backends import registry  # noqa: E402
from collabvr.backends.local import runtime  # noqa: E402
from collabvr.backends.local.transformers_vlm import _Loaded  # noqa: E402
from collabvr.context import Context  # noqa: E402
from collabvr.media import Image  # noqa: E402
from collabvr.runner import run  # noqa: E402
from collabvr.task import Task  # noqa: E402
from tests import tiny_models  # noqa: E402

METHODS = ("collabvr", "pass@2")
AREAS = {"480p": (480, 832), "720p": (720, 1280)}  # (height, width) of the first frame and the render area
PAPER = {"num_inference_steps": 20, "guidance_scale": 5.0}
UMT5_XXL = dict(vocab=256384, d_model=4096, d_kv=64, d_ff=10240, layers=24, heads=64)
LLAVA_7B = dict(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                            image_size=336, patch_size=14, projection_dim=768),
                text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                          num_attention_heads=32, num_key_value_heads=32))


def wan_a14b_index(out: Path) -> Path:
    """A checkpoint directory holding Wan2.2-I2V-A14B's ``model_index.json`` without components:
    enough for the backend to resolve the spec and its family (``boundary_ratio``: A14B) and to pass
    the preflight; the random weights are built in memory by :func:`build_wan`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline", "boundary_ratio": 0.9}))
    return out


def build_wan(*, smoke: bool, device: str, dtype: Any) -> Any:
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    width = dict(heads=2, head_dim=16, ffn=64, layers=1, text=64) if smoke else \
        dict(heads=40, head_dim=128, ffn=13824, layers=40, text=4096)
    t5 = dict(vocab=512, d_model=64, d_kv=16, d_ff=64, layers=1, heads=2) if smoke else UMT5_XXL
    tok = tiny_models.tokenizer(300)  # ids below 300 index the real-size embedding like any others
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            def transformer() -> Any:
                return WanTransformer3DModel(
                    patch_size=(1, 2, 2), num_attention_heads=width["heads"], attention_head_dim=width["head_dim"],
                    in_channels=36, out_channels=16, text_dim=width["text"], freq_dim=256, ffn_dim=width["ffn"],
                    num_layers=width["layers"], cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                    rope_max_seq_len=1024)

            high, low = transformer(), transformer()
            text_encoder = UMT5EncoderModel(UMT5Config(
                vocab_size=t5["vocab"], d_model=t5["d_model"], d_kv=t5["d_kv"], d_ff=t5["d_ff"], num_layers=t5["layers"],
                num_heads=t5["heads"], feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
        torch.set_default_dtype(torch.float32)
        with torch.device(device):
            vae = AutoencoderKLWan() if not smoke else AutoencoderKLWan(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    finally:
        torch.set_default_dtype(previous)
    return WanImageToVideoPipeline(
        tokenizer=tok, text_encoder=text_encoder.eval(), vae=vae.eval(), transformer=high.eval(), transformer_2=low.eval(),
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
        image_encoder=None, image_processor=None, boundary_ratio=0.9,
    )


def llava_7b_dir(out: Path, *, smoke: bool) -> Path:
    """A checkpoint directory of a 7B-sized LLaVA (toy width with ``smoke``) without weights: its
    config and a processor at the tower's 336 px, with the tiny tokenizer (the vocabulary's size is
    the real one's); the random weights are built in memory by :func:`build_llava`."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    tok = tiny_models.tokenizer(400, image_token=True)
    vision = dict(LLAVA_7B["vision"]) if not smoke else dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                               num_attention_heads=2, image_size=16, patch_size=8,
                                                               projection_dim=32)
    text = dict(LLAVA_7B["text"]) if not smoke else dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    side = vision["image_size"]
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
                   tokenizer=tok, chat_template=tiny_models.CHAT_TEMPLATE, patch_size=vision["patch_size"],
                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                   image_token="<image>").save_pretrained(out)
    LlavaConfig(vision_config=CLIPVisionConfig(**vision),
                text_config=LlamaConfig(**text, max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
                image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
                vision_feature_layer=-1).save_pretrained(out)
    return out


def build_llava(path: Path, *, device: str, dtype: Any) -> Any:
    """Random weights for the LLaVA config at ``path``."""
    import torch
    from transformers import AutoConfig, LlavaForConditionalGeneration

    config = AutoConfig.from_pretrained(path)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(args: argparse.Namespace, resolution: str, offload: str, vlm_size: str, vgm_dir: Path,
            vlm_dirs: dict[str, Path], out: Path) -> dict[str, Any]:
    import torch

    registry.close_all()
    device = args.device
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    height, width = AREAS[resolution]
    first_seconds = Context().first_clip_seconds  # the default first clip: 6 s, 97 frames at Wan's 16 fps
    if args.scale == "tiny":
        vgm_options: dict[str, Any] = {"max_area": 32 * 32, "num_inference_steps": 2, "max_sequence_length": 16}
        first_seconds, frame = 0.5, Image(np.full((48, 64, 3), 128, np.uint8))
    elif args.smoke:
        vgm_options = {**PAPER, "max_area": 64 * 64, "num_inference_steps": 2}
        first_seconds, frame = 0.5, Image(np.full((48, 64, 3), 128, np.uint8))
    else:
        vgm_options = {**PAPER, "max_area": height * width}
        frame = Image(np.full((height, width, 3), 128, np.uint8))
    vgm_options.update(device=device, offload=offload)
    vlm_device = "cpu" if device.startswith("cuda") and offload != "none" and vlm_size == "tiny" else device
    vlm_options = {"constrained": True, "max_string_chars": 8, "max_new_tokens": 96, "frames_per_clip": 2,
                   "device": vlm_device, **({"dtype": "bfloat16"} if vlm_size == "7b" and device != "cpu" else {})}
    spec, vlm_spec = f"diffusers:{vgm_dir}", f"transformers:{vlm_dirs[vlm_size]}"
    vgm = registry.resolve_vgm(spec, vgm_options)
    vlm = registry.resolve_vlm(vlm_spec, vlm_options)
    built_here = {"vgm": 0, "vlm": 0}
    if args.scale == "wan":  # hand the in-memory random-weight pipeline to the backend's cache
        started = time.perf_counter()
        pipe = build_wan(smoke=args.smoke, device="cpu" if offload != "none" else device,
                         dtype=torch.bfloat16 if device != "cpu" else torch.float32)
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "group":
            pipe.enable_group_offload(onload_device=torch.device(device), offload_type="leaf_level", use_stream=True)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        pipe.set_progress_bar_config(disable=True)
        runtime.model(vgm.key, lambda: pipe)
        runtime.load_seconds[vgm.key] = time.perf_counter() - started
        built_here["vgm"] = 1
        del pipe
    if vlm_size == "7b":  # a 7B-sized VLM, built in memory for its config and processor
        started = time.perf_counter()
        model = build_llava(vlm_dirs["7b"], device=vlm_device, dtype=vlm.dtype)
        runtime.model(vlm.key, lambda: _Loaded(model))
        runtime.load_seconds[vlm.key] = time.perf_counter() - started
        built_here["vlm"] = 1
        del model
    out.mkdir(parents=True, exist_ok=True)
    path = out / "first.png"
    path.write_bytes(frame.to_png())
    task = Task.from_image(path, "slide the red block onto the goal without crossing a wall")
    loads_before = runtime.loads.copy()
    clip_ms: list[float] = []
    vlm_ms: list[float] = []
    frames: list[int] = []
    wall = time.perf_counter()
    for method in METHODS[: args.methods]:
        for episode in range(args.episodes):
            result = run(task, method=method, vgm=spec, vgm_options=vgm_options, vlm=vlm_spec, vlm_options=vlm_options,
                         max_steps=1, max_attempts=2, first_clip_seconds=first_seconds, seed=episode,
                         out_dir=str(out / f"{method}-{episode}"))
            made = [a for a in result.attempts if a.get("gen_ms") and a.get("clip")]
            clip_ms += [a["gen_ms"] for a in made]
            frames += [a["render"]["frames"] for a in made if a.get("render")]
            calls = result.compute.get("vlm_calls", 0)
            if calls:
                vlm_ms.append(result.compute["vlm_ms"] / calls)
    wall = time.perf_counter() - wall
    steps = vgm_options["num_inference_steps"]
    median = statistics.median(clip_ms) / 1000 if clip_ms else None
    row = {
        "resolution": resolution if args.scale == "wan" and not args.smoke else f"{resolution} (toy)",
        "offload": offload,
        "vlm": vlm_size,
        "clips": len(clip_ms),
        "frames": max(frames) if frames else None,
        "s_per_clip": round(median, 3) if median else None,
        "steps_per_s": round(steps / median, 2) if median else None,
        "s_per_vlm_call": round(statistics.median(vlm_ms) / 1000, 3) if vlm_ms else None,
        "peak_gb": round(peak_memory_gb(device), 2),
        "vgm_load_s": round(runtime.load_seconds.get(vgm.key, 0.0), 2),
        "vlm_load_s": round(runtime.load_seconds.get(vlm.key, 0.0), 2),
        # the real-size models were built once above, before the count started
        "vgm_loads": runtime.loads[vgm.key] - loads_before[vgm.key] + built_here["vgm"],
        "vlm_loads": runtime.loads[vlm.key] - loads_before[vlm.key] + built_here["vlm"],
        "wall_s": round(wall, 1),
    }
    registry.close_all()
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", choices=["auto", "tiny", "wan"], default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolutions", default="480p", help="comma-separated: 480p, 720p (real size only)")
    parser.add_argument("--offload", default=None, help="comma-separated: none, model, sequential, group")
    parser.add_argument("--vlm-sizes", default="tiny", help="comma-separated: tiny, 7b")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per method")
    parser.add_argument("--methods", type=int, default=2, choices=[1, 2], help="1: CollabVR only; 2: and pass@2")
    parser.add_argument("--smoke", action="store_true", help="the real-size path at toy width (checks the script, not the GPU)")
    args = parser.parse_args(argv)
    if args.scale == "auto":
        args.scale = "wan" if args.device.startswith("cuda") else "tiny"
    resolutions = args.resolutions.split(",") if args.scale == "wan" else ["480p"]
    unknown = set(resolutions) - set(AREAS)
    if unknown:
        parser.error(f"--resolutions: unknown {', '.join(sorted(unknown))}; known: {', '.join(AREAS)}")
    offloads = (args.offload or ("none,model" if args.scale == "wan" and args.device != "cpu" else "none")).split(",")
    sizes = args.vlm_sizes.split(",")
    if set(sizes) - {"tiny", "7b"}:
        parser.error(f"--vlm-sizes: known sizes are tiny and 7b, got {args.vlm_sizes}")
    with tempfile.TemporaryDirectory(prefix="collabvr-local-bench-") as tmp:
        root = Path(tmp)
        vlm_dirs = {"tiny": tiny_models.llava_vlm(root / "vlm")}
        if "7b" in sizes:
            vlm_dirs["7b"] = llava_7b_dir(root / "vlm-7b", smoke=args.smoke or args.scale == "tiny")
        if args.scale == "tiny":
            vgm_dir = tiny_models.wan22_a14b(root / "vgm")
            print(f"CPU run on the tiny test checkpoints (32 px, 2 steps): {args.episodes} episodes x {args.methods} "
                  "methods; figures say nothing about a GPU", file=sys.stderr)
        else:
            vgm_dir = wan_a14b_index(root / "vgm")
            print(f"Wan2.2-I2V-A14B-sized random weights{' (smoke: toy width)' if args.smoke else ''} on {args.device}",
                  file=sys.stderr)
        rows = [measure(args, resolution, offload, size, vgm_dir, vlm_dirs, root / f"{resolution}-{offload}-{size}")
                for resolution in resolutions for offload in offloads for size in sizes]
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in header) + " |")
    return rows


if __name__ == "__main__":
    main()
