"""``diffusers:<hub id or local directory>``: an image-to-video pipeline as the VGM.

The pipeline class comes from the checkpoint's ``model_index.json`` (``_class_name``), so one
spec form serves every supported family; each family's rules (allowed frame counts, the spatial
multiple, fixed sizes) are read off the loaded pipeline's own VAE and transformer configs, and
applied here before the call, never left to the pipeline's warnings:

- frames: ``seconds x fps`` rounded to the nearest count the VAE allows (Wan: 4k+1, LTX: 8k+1;
  CogVideoX: the transformer's ``sample_frames``);
- size: the frame's aspect ratio at ``max_area`` pixels, each side rounded down to a multiple of
  VAE stride x patch size (CogVideoX 1.0, whose positional embeddings are learned, renders at its
  one trained size); the clip is resized back to the frame's size;
- steps, guidance: the paper's 20 and 5.0 unless the options say otherwise.

The returned clip carries ``render``, a dict of what was actually done (family, frame counts,
render size, steps, guidance), for the attempt record. See docs/backends.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage

from collabvr import events
from collabvr.backends.api import safe_message
from collabvr.backends.local import runtime
from collabvr.errors import BackendError, BadInput, InvalidOutput
from collabvr.media import Image, Video

# model_index.json's _class_name -> (family, the image-to-video class that loads it)
PIPELINES: dict[str, tuple[str, str]] = {
    "WanImageToVideoPipeline": ("wan", "WanImageToVideoPipeline"),
    "WanPipeline": ("wan", "WanImageToVideoPipeline"),  # Wan2.2-TI2V-5B ships as WanPipeline (expand_timesteps)
    "LTXImageToVideoPipeline": ("ltx", "LTXImageToVideoPipeline"),
    "LTXPipeline": ("ltx", "LTXImageToVideoPipeline"),  # LTX-Video's index names the text-to-video class
    "LTXConditionPipeline": ("ltx", "LTXConditionPipeline"),
    "CogVideoXImageToVideoPipeline": ("cogvideox", "CogVideoXImageToVideoPipeline"),
}
DEFAULTS = {"num_inference_steps": 20, "guidance_scale": 5.0, "max_area": 480 * 832}  # the paper's settings
OFFLOAD = ("none", "model", "sequential", "group")
OPTIONS = {
    "dtype", "device", "offload", "vae_tiling", "num_inference_steps", "guidance_scale", "negative_prompt",
    "max_area", "attention_backend", "trust_remote_code", "condition_frames", "max_sequence_length",
}
_RECENT_CLIPS = 8  # clips remembered for conditioning on a previous clip's last frames


def make(role: str, model: str, options: dict[str, Any]) -> DiffusersVGM | None:
    """Registry factory for the ``diffusers`` provider (a VGM only)."""
    if role != "vgm":
        return None
    return DiffusersVGM(model, options)


@dataclass(frozen=True)
class Geometry:
    """A loaded pipeline's shape rules."""

    temporal: int  # frames per latent frame: counts are temporal * k + 1
    spatial: int  # height and width are multiples of this (VAE stride x patch size)
    fixed_frames: int | None = None  # CogVideoX: one count per version
    fixed_size: tuple[int, int] | None = None  # (width, height) when positional embeddings are learned

    def frames_for(self, requested: float) -> int:
        """The allowed frame count nearest to ``requested`` (at least one latent step)."""
        if self.fixed_frames:
            return self.fixed_frames
        steps = max(1, round((max(1.0, requested) - 1) / self.temporal))
        return steps * self.temporal + 1

    def size_for(self, width: int, height: int, max_area: int) -> tuple[int, int]:
        """(width, height) at ``max_area`` pixels with the frame's aspect ratio, on the multiple."""
        if self.fixed_size:
            return self.fixed_size
        aspect = height / width
        m = self.spatial
        h = max(m, round(math.sqrt(max_area * aspect)) // m * m)
        w = max(m, round(math.sqrt(max_area / aspect)) // m * m)
        return w, h


def geometry(family: str, pipe: Any) -> Geometry:
    """Read the family's rules off the pipeline's own configs."""
    if family == "wan":
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        patch = transformer.config.patch_size
        return Geometry(pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial * int(patch[1]))
    if family == "ltx":
        # the LTX pipelines check for multiples of 32 whatever the VAE (the released VAEs stride 32)
        return Geometry(pipe.vae_temporal_compression_ratio,
                        math.lcm(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size))
    config = pipe.transformer.config  # cogvideox
    spatial = pipe.vae_scale_factor_spatial
    fixed = None
    if config.use_learned_positional_embeddings:
        fixed = (config.sample_width * spatial, config.sample_height * spatial)
    return Geometry(pipe.vae_scale_factor_temporal, spatial * int(config.patch_size),
                    fixed_frames=int(config.sample_frames), fixed_size=fixed)


@dataclass
class Render:
    """What one generation actually did; recorded with the clip."""

    family: str
    pipeline: str
    frames_requested: float
    frames: int  # frames in the returned clip
    render_size: tuple[int, int]  # (width, height) the model rendered at
    size: tuple[int, int]  # (width, height) of the returned clip
    num_inference_steps: int
    guidance_scale: float
    condition_frames: int = 1  # frames of the previous clip the model was conditioned on
    seconds: float = 0.0


class DiffusersVGM:
    """Image-to-video with a diffusers pipeline that is loaded once per process and shared."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.name = f"diffusers:{model}"
        runtime.check_options(options, OPTIONS, self.name)
        self.checkpoint = runtime.find_checkpoint("diffusers", model, "model_index.json")
        index = self.checkpoint.read_json("model_index.json")
        found = str(index.get("_class_name", ""))
        if found not in PIPELINES or (found == "WanPipeline" and not index.get("expand_timesteps")):
            supported = ", ".join(sorted(set(PIPELINES) - {"WanPipeline", "LTXPipeline"}))
            raise BadInput(f"{self.name}: pipeline {found or '(none)'} is not supported; supported image-to-video "
                           f"pipelines: {supported} (and Wan2.2-TI2V's WanPipeline, LTX-Video's LTXPipeline)")
        self.family, self.pipeline_class = PIPELINES[found]
        self.device = runtime.check_device(options.get("device"))
        self.dtype = runtime.parse_dtype(options.get("dtype"), self.device)
        self.offload = str(options.get("offload", "none"))
        if self.offload not in OFFLOAD:
            raise BadInput(f"offload must be one of {', '.join(OFFLOAD)}, got {self.offload!r}")
        if self.offload != "none" and self.device == "cpu":
            raise BadInput(f"offload={self.offload} moves weights between the CPU and an accelerator; device is cpu")
        self.vae_tiling = runtime.flag(options.get("vae_tiling", False), "vae_tiling")
        self.trust_remote_code = runtime.flag(options.get("trust_remote_code", False), "trust_remote_code")
        self.attention_backend = options.get("attention_backend")
        if self.attention_backend is not None:
            _check_attention_backend(str(self.attention_backend))
        self.steps = _number(options, "num_inference_steps", int, 1)
        self.guidance = _number(options, "guidance_scale", float, 0.0)
        self.max_area = _number(options, "max_area", int, 64)
        self.negative_prompt = options.get("negative_prompt")
        self.max_sequence_length = (_number(options, "max_sequence_length", int, 1)
                                    if options.get("max_sequence_length") is not None else None)
        self.condition_frames = _number({"condition_frames": 1, **options}, "condition_frames", int, 1)
        if self.condition_frames > 1:
            if self.pipeline_class != "LTXConditionPipeline":
                raise BadInput(f"condition_frames={self.condition_frames} needs an LTXConditionPipeline checkpoint; "
                               f"{self.name} is a {self.pipeline_class}")
            if (self.condition_frames - 1) % 8:
                raise BadInput(f"condition_frames must be 8k+1 (1, 9, 17...) for LTX, got {self.condition_frames}")
        # everything that changes the loaded weights or the pipeline's state; per-call options stay out
        self.key = ("diffusers", self.checkpoint.source, self.pipeline_class, str(self.dtype), self.device,
                    self.offload, self.vae_tiling, self.attention_backend, self.trust_remote_code)
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()  # clip id -> frames, for conditioning
        self._frame_index: dict[bytes, tuple[int, int]] = {}  # frame hash -> (clip id, index)
        self._clip_ids = 0
        self._memory = threading.Lock()  # episodes share this backend: guard the two maps above

    def __repr__(self) -> str:
        return f"DiffusersVGM({self.checkpoint.source!r}, {self.pipeline_class})"

    # ----- loading
    def pipeline(self) -> Any:
        """The loaded pipeline, built on first use and shared by every backend with the same key."""
        return runtime.model(self.key, self._load)

    load = pipeline

    def _load(self) -> Any:
        import diffusers
        import torch

        cls = getattr(diffusers, self.pipeline_class)
        dtype: Any = self.dtype
        if self.family == "wan" and self.dtype != torch.float32:
            # as Wan's own examples load it: the VAE and the CLIP image encoder stay in float32
            dtype = {"default": self.dtype, "vae": torch.float32, "image_encoder": torch.float32}
        # diffusers 0.36+ takes ``dtype`` (``torch_dtype`` is deprecated there); older releases only the latter
        from diffusers.pipelines import pipeline_utils

        kwargs: dict[str, Any] = {"dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype": dtype}
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            pipe = cls.from_pretrained(self.checkpoint.source, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is a failed backend
            raise BackendError(f"{self.name}: cannot load {self.pipeline_class}: {safe_message(exc)}") from None
        pipe.set_progress_bar_config(disable=True)
        if self.attention_backend:
            for name in ("transformer", "transformer_2"):
                module = getattr(pipe, name, None)
                if module is not None:
                    module.set_attention_backend(str(self.attention_backend))
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        elif self.offload == "group":
            pipe.enable_group_offload(onload_device=torch.device(self.device), offload_device=torch.device("cpu"),
                                      offload_type="leaf_level", use_stream=True)
        else:
            pipe.to(self.device)
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        return pipe

    def close(self) -> None:
        """Free the pipeline (every backend sharing it reloads on its next call)."""
        with self._memory:
            self._recent.clear()
            self._frame_index.clear()
        runtime.release(self.key)

    # ----- one clip
    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        import torch

        pipe = self.pipeline()
        rules = geometry(self.family, pipe)
        requested = seconds * fps
        frames = rules.frames_for(requested)
        width, height = rules.size_for(frame.width, frame.height, self.max_area)
        context = self._context(frame, rules.temporal)
        extra = len(context) - 1 if context else 0  # conditioning frames the clip repeats, dropped after
        kwargs: dict[str, Any] = {
            "prompt": prompt, "height": height, "width": width, "num_frames": frames + extra,
            "num_inference_steps": self.steps, "guidance_scale": self.guidance, "output_type": "np",
        }
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = str(self.negative_prompt)
        if self.max_sequence_length is not None:
            kwargs["max_sequence_length"] = self.max_sequence_length
        if self.family == "ltx":
            kwargs["frame_rate"] = fps
        if context:
            kwargs.update(video=[_pil(f) for f in context], frame_index=0)
        else:
            kwargs["image"] = _pil(frame.array)

        total = self.steps

        def on_step(_pipe: Any, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            events.report(i + 1, total, unit="step")
            return tensors

        try:
            with runtime.device_lock(self.device):
                generator = torch.Generator(device=self.device).manual_seed(int(seed) % 2**63)
                output = pipe(**kwargs, generator=generator, callback_on_step_end=on_step)
        except Exception as exc:  # noqa: BLE001 - every pipeline failure is a typed failed attempt
            raise BackendError(f"{self.name}: generation failed: {safe_message(exc)}") from None
        video = np.asarray(output.frames[0])
        if video.ndim != 4 or video.shape[0] < 1 or video.shape[-1] != 3:
            raise InvalidOutput(f"{self.name}: the pipeline returned frames shaped {video.shape}")
        rendered = (int(video.shape[2]), int(video.shape[1]))
        video = video[extra:]
        clip = self._to_clip(video, frame, fps)
        clip.render = asdict(Render(  # type: ignore[attr-defined]
            family=self.family, pipeline=self.pipeline_class, frames_requested=round(requested, 3), frames=clip.num_frames,
            render_size=rendered, size=(clip.width, clip.height), num_inference_steps=self.steps,
            guidance_scale=self.guidance, condition_frames=max(1, len(context)), seconds=round(clip.seconds, 6),
        ))
        if self.condition_frames > 1:
            self._remember(clip.frames)
        return clip

    async def agenerate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        """``generate`` in a worker thread, for async callers: the event loop keeps running."""
        return await asyncio.to_thread(self.generate, frame, prompt, seconds=seconds, fps=fps, seed=seed)

    def _to_clip(self, video: np.ndarray, frame: Image, fps: int) -> Video:
        """Float frames in [0, 1] as uint8 at the episode's frame size (even, for H.264), converted a
        frame at a time into the one array the clip holds: whole-clip float temporaries would each
        be four times the clip (float32), and the pipeline's own output is already one of them."""
        width, height = max(2, frame.width - frame.width % 2), max(2, frame.height - frame.height % 2)
        array = np.empty((len(video), height, width, 3), np.uint8)
        for i, floats in enumerate(video):
            pixels = (np.clip(np.nan_to_num(floats), 0.0, 1.0) * 255).round().astype(np.uint8)
            if pixels.shape[:2] != (height, width):
                pixels = np.asarray(PILImage.fromarray(pixels).resize((width, height), PILImage.BICUBIC))
            array[i] = pixels
        clip = Video(frames=array, fps=fps)
        if self.condition_frames > 1:
            # keep what the store will hold: the next step's frame is read back from the encoded clip
            clip = Video(mp4=clip.mp4, fps=fps)
        return clip

    # ----- continuation: condition on the previous clip's last frames
    def _context(self, frame: Image, temporal: int) -> list[np.ndarray]:
        """The frames up to ``frame`` in a clip this backend made (``temporal`` x k + 1 of them, at
        most ``condition_frames``), or [] to condition on the frame alone."""
        if self.condition_frames <= 1:
            return []
        with self._memory:
            found = self._frame_index.get(_digest(frame.array))
            if found is None or found[0] not in self._recent:
                return []
            clip_id, index = found
            count = min(self.condition_frames, index + 1)
            count = (count - 1) // temporal * temporal + 1
            if count <= 1:
                return []
            return list(self._recent[clip_id][index + 1 - count : index + 1])

    def _remember(self, frames: np.ndarray) -> None:
        digests = [_digest(array) for array in frames]
        with self._memory:
            self._clip_ids += 1
            self._recent[self._clip_ids] = frames
            for i, digest in enumerate(digests):
                self._frame_index[digest] = (self._clip_ids, i)
            while len(self._recent) > _RECENT_CLIPS:
                old, _ = self._recent.popitem(last=False)
                self._frame_index = {k: v for k, v in self._frame_index.items() if v[0] != old}


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes() + repr(array.shape).encode(), digest_size=16).digest()


def _pil(array: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(array), mode="RGB")


def _number(options: dict[str, Any], name: str, kind: type, minimum: float) -> Any:
    value = options.get(name, DEFAULTS.get(name))
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise BadInput(f"{name} must be >= {minimum:g}, got {value!r}")
    return number


def _check_attention_backend(name: str) -> None:
    try:
        from diffusers.models.attention_dispatch import AttentionBackendName
    except ImportError:
        raise BadInput("attention_backend needs diffusers >= 0.35 (attention dispatch)") from None
    known = [b.value for b in AttentionBackendName]
    if name not in known:
        raise BadInput(f"attention_backend must be one of {', '.join(known)}, got {name!r}")


__all__ = ["DEFAULTS", "PIPELINES", "DiffusersVGM", "Geometry", "make"]
