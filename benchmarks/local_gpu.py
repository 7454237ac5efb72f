"""Local backends: seconds per clip, peak memory, load time, and loads per process.

Runs ``--episodes`` episodes of each of two methods (CollabVR and pass@2, which both call the VLM)
in one process on a ``diffusers:`` VGM and a ``transformers:`` VLM, and reports, per offload mode:

- seconds per clip (median of the VGM calls' wall time), and the denoising steps per second;
- peak memory: the accelerator's ``max_memory_allocated``, or the process's peak RSS on the CPU;
- load time of the pipeline and of the VLM, and how many times each was built (the bar: once).

On a GPU (``--scale wan``, the default there) the VGM is a random-weight pipeline of
Wan2.2-I2V-A14B's size (two 40-layer, 5120-wide transformers split at ``boundary_ratio`` 0.9, the
Wan 2.1 VAE and a UMT5-XXL text encoder, in bfloat16), since no weights can be downloaded here, at
the paper's settings: 480p area, 81 frames (16 fps, 5.0625 s), 20 steps, CFG 5.0. Its weights
(about 67 GB) are built in memory and handed to the backend's loaded-model cache under the key its
options give, so "load time" there is construction time, not reading from disk. ``--offload``
lists the modes to compare (default ``none,model``). The VLM is the tiny test model either way:
the benchmark is about the video model.

On the CPU (``--scale tiny``, the default there) it runs the tiny test checkpoints
(tests/tiny_models.py) through ``from_pretrained``, at 32 px and 2 steps, and says so.

    PYTHONPATH=. python benchmarks/local_gpu.py                      # GPU if present, else tiny on CPU
    PYTHONPATH=. python benchmarks/local_gpu.py --scale wan --offload none,model,group --episodes 5
    PYTHONPATH=. python benchmarks/local_gpu.py --scale wan --smoke  # the Wan path at toy width, on any device
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
from collabvr.backends.local.diffusers_vgm import DiffusersVGM  # noqa: E402
from collabvr.media import Image  # noqa: E402
from collabvr.runner import run  # noqa: E402
from collabvr.task import Task  # noqa: E402
from tests import tiny_models  # noqa: E402

METHODS = ("collabvr", "pass@2")
PAPER = {"max_area": 480 * 832, "num_inference_steps": 20, "guidance_scale": 5.0}


def wan_a14b_index(out: Path) -> Path:
    """A checkpoint directory holding only Wan2.2-I2V-A14B's ``model_index.json``: enough for the
    backend to resolve the spec; the random weights are built in memory by :func:`build_wan`."""
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

    width = dict(heads=2, head_dim=16, ffn=64, layers=1, text=64, t5_layers=1, t5_ff=64, t5_heads=2) if smoke else \
        dict(heads=40, head_dim=128, ffn=13824, layers=40, text=4096, t5_layers=24, t5_ff=10240, t5_heads=64)
    tok = tiny_models.tokenizer(300)
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
                vocab_size=len(tok), d_model=width["text"], d_kv=64, d_ff=width["t5_ff"], num_layers=width["t5_layers"],
                num_heads=width["t5_heads"], feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
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


def peak_memory_gb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(args: argparse.Namespace, offload: str, vgm_dir: Path, vlm_dir: Path, out: Path) -> dict[str, Any]:
    import torch

    registry.close_all()
    device = args.device
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if args.scale == "tiny":
        vgm_options = {"max_area": 32 * 32, "num_inference_steps": 2, "max_sequence_length": 16}
        first_seconds, fps = 0.5, 16
    else:
        vgm_options = dict(PAPER)
        first_seconds, fps = 81 / 16, 16  # 81 frames at 16 fps, as in the paper
        if args.smoke:
            vgm_options.update(max_area=64 * 64, num_inference_steps=2)
            first_seconds = 0.5
    vgm_options.update(device=device, offload=offload)
    vlm_options = {"constrained": True, "max_string_chars": 8, "max_new_tokens": 96, "frames_per_clip": 2,
                   "device": "cpu" if device.startswith("cuda") and offload != "none" else device}
    spec = f"diffusers:{vgm_dir}"
    vgm = registry.resolve_vgm(spec, vgm_options)
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
        del pipe
    assert isinstance(vgm, DiffusersVGM)
    frame = Image(np.full((480, 832, 3), 128, np.uint8)) if args.scale == "wan" and not args.smoke else \
        Image(np.full((64, 96, 3), 128, np.uint8))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "first.png"
    path.write_bytes(frame.to_png())
    task = Task.from_image(path, "slide the red block onto the goal without crossing a wall")
    loads_before = runtime.loads.copy()
    clip_ms: list[float] = []
    wall = time.perf_counter()
    for method in METHODS:
        for episode in range(args.episodes):
            result = run(task, method=method, vgm=spec, vgm_options=vgm_options, vlm=f"transformers:{vlm_dir}",
                         vlm_options=vlm_options, max_steps=1, max_attempts=2, first_clip_seconds=first_seconds, fps=fps,
                         seed=episode, out_dir=str(out / f"{method}-{episode}"))
            clip_ms += [a["gen_ms"] for a in result.attempts if a.get("gen_ms") and a.get("clip")]
    wall = time.perf_counter() - wall
    vlm_key = registry.resolve_vlm(f"transformers:{vlm_dir}", vlm_options).key
    steps = vgm_options["num_inference_steps"]
    row = {
        "offload": offload,
        "clips": len(clip_ms),
        "s_per_clip": round(statistics.median(clip_ms) / 1000, 3) if clip_ms else None,
        "steps_per_s": round(steps / (statistics.median(clip_ms) / 1000), 2) if clip_ms else None,
        "peak_gb": round(peak_memory_gb(device), 2),
        "vgm_load_s": round(runtime.load_seconds.get(vgm.key, 0.0), 2),
        "vlm_load_s": round(runtime.load_seconds.get(vlm_key, 0.0), 2),
        # the Wan-size pipeline was built once above, before the count started
        "vgm_loads": runtime.loads[vgm.key] - loads_before[vgm.key] + (1 if args.scale == "wan" else 0),
        "vlm_loads": runtime.loads[vlm_key] - loads_before[vlm_key],
        "episodes": args.episodes * len(METHODS),
        "wall_s": round(wall, 1),
    }
    registry.close_all()
    return row


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=["auto", "tiny", "wan"], default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--offload", default=None, help="comma-separated: none, model, sequential, group")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per method")
    parser.add_argument("--smoke", action="store_true", help="Wan path at toy width (checks the script, not the GPU)")
    args = parser.parse_args()
    if args.scale == "auto":
        args.scale = "wan" if args.device.startswith("cuda") else "tiny"
    offloads = (args.offload or ("none,model" if args.scale == "wan" and args.device != "cpu" else "none")).split(",")
    with tempfile.TemporaryDirectory(prefix="collabvr-local-bench-") as tmp:
        root = Path(tmp)
        vlm_dir = tiny_models.llava_vlm(root / "vlm")
        if args.scale == "tiny":
            vgm_dir = tiny_models.wan22_a14b(root / "vgm")
            print(f"CPU run on the tiny test checkpoints (32 px, 2 steps): {args.episodes} episodes x {len(METHODS)} "
                  "methods; figures say nothing about a GPU", file=sys.stderr)
        else:
            vgm_dir = wan_a14b_index(root / "vgm")
            print(f"Wan2.2-I2V-A14B-sized random weights{' (smoke: toy width)' if args.smoke else ''} on {args.device}",
                  file=sys.stderr)
        rows = [measure(args, offload, vgm_dir, vlm_dir, root / offload) for offload in offloads]
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in header) + " |")


if __name__ == "__main__":
    main()
