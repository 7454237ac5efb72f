"""``diffusers:<hub id or local directory>``: an image-to-video pipeline as the VGM.

The pipeline class comes from the checkpoint's ``model_index.json`` (``_class_name``; the
``pipeline`` option picks LTXConditionPipeline for an LTX 0.9.5+ checkpoint whose index names
LTXPipeline), so one spec form serves every supported family. Each family is fed as its model card
says (:mod:`.families`):

- timing: the clip is generated at the family's native fps (Wan 2.2 TI2V-5B and LTX 24, CogVideoX
  1.0 8, the others 16; the ``fps`` option overrides), ``seconds x fps`` frames rounded to the
  nearest count the VAE allows, and saved at that fps, so its duration is frames / fps;
  ``resample_fps`` resamples it to the episode's fps, and nothing else does;
- size: the frame's aspect ratio at the family's render area (TI2V 720p, the others 480p; the
  ``max_area`` option overrides), on the model's multiple; CogVideoX 1.0 at its one trained size.
  The clip is resized back to the frame's size;
- continuation (LTXCondition, ``condition_frames=N``): one video condition holding the last N
  frames of the previous clip, at frame index 0;
- the model cards' recommended call options (:data:`.diffusers_options.PASSTHROUGH`) go to the
  pipeline as given; steps and guidance default to the paper's 20 and 5.0.

The returned clip carries ``render``, a dict of what was actually done (family, fps, frame counts,
render size, steps, guidance, conditioning), for the attempt record. See docs/backends.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from collabvr import events
from collabvr.backends.api import safe_message
from collabvr.backends.local import runtime
from collabvr.backends.local.continuation import RecentClips
from collabvr.backends.local.diffusers_options import (
    DEFAULTS,
    OFFLOAD,
    PASSTHROUGH,
    cache_config,
    cache_settings,
    check_call_options,
    compile_settings,
    loras,
    number,
)
from collabvr.backends.local.families import geometry, native
from collabvr.backends.local.preflight import (
    check_attention_backend,
    needs_torchvision,
    torchvision_error,
)
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
# the image-to-video classes a family's checkpoint may be loaded as (the ``pipeline`` option)
CLASSES = {"wan": ("WanImageToVideoPipeline",), "ltx": ("LTXImageToVideoPipeline", "LTXConditionPipeline"),
           "cogvideox": ("CogVideoXImageToVideoPipeline",)}
OPTIONS = {
    "dtype", "device", "offload", "vae_tiling", "vae_slicing", "num_inference_steps", "guidance_scale",
    "negative_prompt", "max_area", "attention_backend", "trust_remote_code", "condition_frames",
    "max_sequence_length", "pipeline", "fps", "resample_fps", "lora", "compile", "enable_cache", *PASSTHROUGH,
}


def make(role: str, model: str, options: dict[str, Any]) -> DiffusersVGM | None:
    """Registry factory for the ``diffusers`` provider (a VGM only)."""
    if role != "vgm":
        return None
    return DiffusersVGM(model, options)



@dataclass
class Render:
    """What one generation actually did; recorded with the clip."""

    family: str
    native: str  # the family table's row (docs/backends.md)
    pipeline: str
    fps: float  # the rate the model generated at (its native rate unless the fps option said otherwise)
    frames_requested: float  # seconds x fps
    frames: int  # frames in the returned clip
    render_size: tuple[int, int]  # (width, height) the model rendered at
    size: tuple[int, int]  # (width, height) of the returned clip
    num_inference_steps: int
    guidance_scale: float
    condition_frames: int = 1  # frames of the previous clip the model was conditioned on
    seconds: float = 0.0  # the returned clip's duration: frames / its fps
    resampled_to: float | None = None  # the episode's fps, when resample_fps asked for it


class DiffusersVGM:
    """Image-to-video with a diffusers pipeline that is loaded once per process and shared."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.name = f"diffusers:{model}"
        runtime.check_options(options, OPTIONS, self.name)
        self.checkpoint = runtime.find_checkpoint("diffusers", model, "model_index.json")
        self.index = self.checkpoint.read_json("model_index.json")
        found = str(self.index.get("_class_name", ""))
        if found not in PIPELINES or (found == "WanPipeline" and not self.index.get("expand_timesteps")):
            supported = ", ".join(sorted(set(PIPELINES) - {"WanPipeline", "LTXPipeline"}))
            raise BadInput(f"{self.name}: pipeline {found or '(none)'} is not supported; supported image-to-video "
                           f"pipelines: {supported} (and Wan2.2-TI2V's WanPipeline, LTX-Video's LTXPipeline)")
        self.family, self.pipeline_class = PIPELINES[found]
        if options.get("pipeline") is not None:
            self.pipeline_class = str(options["pipeline"])
            if self.pipeline_class not in CLASSES[self.family]:
                raise BadInput(f"pipeline must be one of {', '.join(CLASSES[self.family])} for this {self.family} "
                               f"checkpoint, got {self.pipeline_class!r}")
        transformer = self.checkpoint.optional_json("transformer/config.json") if self.family == "cogvideox" else {}
        self.native_key, self.native = native(self.family, self.index, transformer, self.checkpoint.source)
        self._load_options(options)
        self._call_options(options)
        # everything that changes the loaded weights or the pipeline's state; per-call options stay out
        self.key = ("diffusers", self.checkpoint.source, self.pipeline_class, str(self.dtype), self.device,
                    self.offload, self.vae_tiling, self.vae_slicing, self.attention_backend, self.trust_remote_code,
                    self.loras, self.compile, self.cache)
        self._recent = RecentClips()  # for conditioning on a previous clip's last frames

    def _load_options(self, options: dict[str, Any]) -> None:
        self.device = runtime.check_device(options.get("device"))
        self.dtype = runtime.parse_dtype(options.get("dtype"), self.device)
        self.offload = str(options.get("offload", "none"))
        if self.offload not in OFFLOAD:
            raise BadInput(f"offload must be one of {', '.join(OFFLOAD)}, got {self.offload!r}")
        if self.offload != "none" and self.device == "cpu":
            raise BadInput(f"offload={self.offload} moves weights between the CPU and an accelerator; device is cpu")
        self.vae_tiling = runtime.flag(options.get("vae_tiling", False), "vae_tiling")
        self.vae_slicing = runtime.flag(options.get("vae_slicing", False), "vae_slicing")
        self.trust_remote_code = runtime.flag(options.get("trust_remote_code", False), "trust_remote_code")
        self.attention_backend = options.get("attention_backend")
        if self.attention_backend is not None:
            check_attention_backend(str(self.attention_backend), self.device, self.dtype, self.name)
        self.loras = loras(options.get("lora"))
        if any(lora.transformer_2 for lora in self.loras) and self.native_key != "wan2.2-i2v-a14b":
            raise BadInput(f"lora transformer_2 loads into Wan 2.2 A14B's low-noise expert; {self.name} has none")
        self.compile = compile_settings(options.get("compile", False))
        self.cache = cache_settings(options.get("enable_cache"))

    def _call_options(self, options: dict[str, Any]) -> None:
        self.steps = number(options.get("num_inference_steps", DEFAULTS["num_inference_steps"]), "num_inference_steps",
                            int, 1)
        self.guidance = number(options.get("guidance_scale", DEFAULTS["guidance_scale"]), "guidance_scale", minimum=0)
        self.max_area = number(options.get("max_area", self.native.area), "max_area", int, 64)
        self.fps = number(options.get("fps", self.native.fps), "fps", minimum=1)
        self.resample_fps = runtime.flag(options.get("resample_fps", False), "resample_fps")
        self.negative_prompt = options.get("negative_prompt")
        self.max_sequence_length = (number(options["max_sequence_length"], "max_sequence_length", int, 1)
                                    if options.get("max_sequence_length") is not None else None)
        self.condition_frames = number(options.get("condition_frames", 1), "condition_frames", int, 1)
        if self.condition_frames > 1:
            if self.pipeline_class != "LTXConditionPipeline":
                raise BadInput(f"condition_frames={self.condition_frames} needs an LTXConditionPipeline checkpoint "
                               f"(or pipeline=LTXConditionPipeline for LTX 0.9.5+); {self.name} is a {self.pipeline_class}")
            if (self.condition_frames - 1) % 8:
                raise BadInput(f"condition_frames must be 8k+1 (1, 9, 17...) for LTX, got {self.condition_frames}")
            if self.resample_fps:
                raise BadInput("condition_frames continues a clip at the model's own frame rate; it cannot be "
                               "combined with resample_fps")
        self.extra = {name: parse(options[name], name) for name, parse in PASSTHROUGH.items() if name in options}
        if "guidance_scale_2" in self.extra and self.index.get("boundary_ratio") is None:
            raise BadInput(f"guidance_scale_2 is the low-noise expert's CFG of a two-expert checkpoint with a "
                           f"boundary_ratio (Wan 2.2 A14B); {self.name} has none")
        check_call_options(self.pipeline_class, self.extra, self.name)

    def __repr__(self) -> str:
        return f"DiffusersVGM({self.checkpoint.source!r}, {self.pipeline_class})"

    # ----- before any call
    def preflight(self) -> None:
        """Load everything but the weights: each component's config, the tokenizer, the image
        processor; custom code only with trust_remote_code; LoRA files that exist. One BadInput
        line naming the fix otherwise (the attention backend and the device were checked when the
        backend was built)."""
        import diffusers
        import transformers

        for name, entry in self.index.items():
            if name.startswith("_") or not (isinstance(entry, list) and len(entry) == 2 and entry[0] is not None):
                continue
            library, class_name = entry
            if library not in ("diffusers", "transformers"):
                if not self.trust_remote_code:
                    raise BadInput(f"{self.name}: component {name} is custom code ({library}.{class_name}); review it, "
                                   "then set the option trust_remote_code=true to run it")
                continue
            try:
                if library == "diffusers":
                    getattr(diffusers, class_name).load_config(self.checkpoint.source, subfolder=name)
                elif "Tokenizer" in class_name or "Processor" in class_name:
                    getattr(transformers, class_name).from_pretrained(self.checkpoint.source, subfolder=name)
                else:
                    transformers.AutoConfig.from_pretrained(self.checkpoint.source, subfolder=name)
            except Exception as exc:  # noqa: BLE001 - whatever stops the component stops the load
                if needs_torchvision(exc):
                    raise torchvision_error(self.name, f"component {name} ({class_name})") from None
                raise BadInput(f"{self.name}: component {name} ({class_name}) cannot be read: {safe_message(exc)}") from None
        for lora in self.loras:  # a local path must exist; anything else must look like a hub id (owner/name)
            local = lora.path.startswith((".", "/", "~")) or lora.path.count("/") != 1
            if local and not Path(lora.path).expanduser().exists():
                raise BadInput(f"{self.name}: lora {lora.path}: no such file or directory (nor a hub id owner/name)")

    # ----- loading
    def pipeline(self) -> Any:
        """The loaded pipeline, built on first use and shared by every backend with the same key."""
        return runtime.model(self.key, self._load)

    load = pipeline

    def _load(self) -> Any:
        import diffusers
        import torch
        from diffusers.pipelines import pipeline_utils

        cls = getattr(diffusers, self.pipeline_class)
        dtype: Any = self.dtype
        if self.family == "wan" and self.dtype != torch.float32:
            # as Wan's own examples load it: the VAE and the CLIP image encoder stay in float32
            dtype = {"default": self.dtype, "vae": torch.float32, "image_encoder": torch.float32}
        # diffusers 0.36+ takes ``dtype`` (``torch_dtype`` is deprecated there); older releases only the latter
        kwargs: dict[str, Any] = {"dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype": dtype}
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            pipe = cls.from_pretrained(self.checkpoint.source, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is a failed backend
            raise BackendError(f"{self.name}: cannot load {self.pipeline_class}: {safe_message(exc)}") from None
        pipe.set_progress_bar_config(disable=True)
        self._adapt(pipe)
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
        if self.vae_slicing:
            pipe.vae.enable_slicing()
        return pipe

    def _adapt(self, pipe: Any) -> None:
        """LoRA adapters, the attention backend, cache hooks and regional compilation, in the order
        diffusers documents: adapters into the weights first, compilation last."""
        transformers = [m for m in (pipe.transformer, getattr(pipe, "transformer_2", None)) if m is not None]
        if self.loras:
            names = []
            for i, lora in enumerate(self.loras):
                extra = {"weight_name": lora.weight_name} if lora.weight_name else {}
                if lora.transformer_2:
                    extra["load_into_transformer_2"] = True
                try:
                    pipe.load_lora_weights(lora.path, adapter_name=f"lora{i}", **extra)
                except Exception as exc:  # noqa: BLE001 - an adapter that does not load fails the load
                    raise BackendError(f"{self.name}: cannot load lora {lora.path}: {safe_message(exc)}") from None
                names.append(f"lora{i}")
            pipe.set_adapters(names, adapter_weights=[lora.scale for lora in self.loras])
        if self.attention_backend:
            for module in transformers:
                module.set_attention_backend(str(self.attention_backend))
        if self.cache:
            for module in transformers:
                module.enable_cache(cache_config(self.cache, pipe))
        if self.compile:
            for module in transformers:
                module.compile_repeated_blocks(**dict(self.compile))

    def close(self) -> None:
        """Free the pipeline (every backend sharing it reloads on its next call)."""
        self._recent.clear()
        runtime.release(self.key)

    # ----- one clip
    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        """A clip of about ``seconds`` from ``frame`` at the model's own fps (``fps``, the
        episode's, is used only by ``resample_fps``)."""
        import torch

        pipe = self.pipeline()
        rules = geometry(self.family, pipe)
        requested = seconds * self.fps
        frames = rules.frames_for(requested)
        width, height = rules.size_for(frame.width, frame.height, self.max_area)
        context = self._recent.frames_up_to(frame.array, self.condition_frames, rules.temporal) \
            if self.condition_frames > 1 else []
        extra = len(context) - 1 if context else 0  # conditioning frames the clip repeats, dropped after
        kwargs: dict[str, Any] = {
            "prompt": prompt, "height": height, "width": width, "num_frames": frames + extra,
            "num_inference_steps": self.steps, "guidance_scale": self.guidance, "output_type": "np",
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.extra.items()},
        }
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = str(self.negative_prompt)
        if self.max_sequence_length is not None:
            kwargs["max_sequence_length"] = self.max_sequence_length
        if self.family == "ltx":
            kwargs["frame_rate"] = self.fps
        if context:
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            # one condition holding the frames in order (a flat list would be N one-frame conditions)
            kwargs["conditions"] = [LTXVideoCondition(video=[_pil(f) for f in context], frame_index=0)]
        else:
            kwargs["image"] = _pil(frame.array)

        total = self.steps if "timesteps" not in self.extra else len(self.extra["timesteps"])

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
        clip = self._to_clip(video[extra:], frame)
        if self.condition_frames > 1:
            self._recent.remember(clip.frames)
        if self.resample_fps:
            clip = clip.resample(fps)
        clip.render = asdict(Render(  # type: ignore[attr-defined]
            family=self.family, native=self.native.name, pipeline=self.pipeline_class, fps=self.fps,
            frames_requested=round(requested, 3), frames=clip.num_frames, render_size=rendered,
            size=(clip.width, clip.height), num_inference_steps=self.steps, guidance_scale=self.guidance,
            condition_frames=max(1, len(context)), seconds=round(clip.seconds, 6),
            resampled_to=float(fps) if self.resample_fps else None,
        ))
        return clip

    async def agenerate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        """``generate`` in a worker thread, for async callers: the event loop keeps running."""
        return await asyncio.to_thread(self.generate, frame, prompt, seconds=seconds, fps=fps, seed=seed)

    def _to_clip(self, video: np.ndarray, frame: Image) -> Video:
        """Float frames in [0, 1] as uint8 at the episode's frame size (even, for H.264), at the rate
        they were generated at, converted a frame at a time into the one array the clip holds:
        whole-clip float temporaries would each be four times the clip (float32), and the pipeline's
        own output is already one of them."""
        width, height = max(2, frame.width - frame.width % 2), max(2, frame.height - frame.height % 2)
        array = np.empty((len(video), height, width, 3), np.uint8)
        for i, floats in enumerate(video):
            pixels = (np.clip(np.nan_to_num(floats), 0.0, 1.0) * 255).round().astype(np.uint8)
            if pixels.shape[:2] != (height, width):
                pixels = np.asarray(PILImage.fromarray(pixels).resize((width, height), PILImage.BICUBIC))
            array[i] = pixels
        clip = Video(frames=array, fps=self.fps)
        if self.condition_frames > 1:
            # keep what the store will hold: the next step's frame is read back from the encoded clip
            clip = Video(mp4=clip.mp4, fps=self.fps)
        return clip


def _pil(array: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(array), mode="RGB")


__all__ = ["CLASSES", "OPTIONS", "PIPELINES", "DiffusersVGM", "Render", "make"]
