"""``transformers:<hub id or local directory>``: an image-text-to-text model as the VLM.

``AutoProcessor`` + ``AutoModelForImageTextToText``, prompted through the model's own chat template
with the same role prompts and media order as the API backends (:class:`~collabvr.backends.api.Roles`).
A clip is shown as ``frames_per_clip`` frames sampled evenly (first and last included), given as
images with their timestamps in the caption, so every image-text-to-text model works;
``video_input`` passes the clip as a video where the processor has a video processor, with its real
frame rate as the video's metadata, so the processor samples it by the model's own rule (Qwen2.5-VL,
Qwen3-VL: 2 frames a second) and times it right (Qwen2.5-VL's ``second_per_grid_ts``, Qwen3-VL's
timestamps).

Sampling is explicit on every call: greedy by default (``temperature`` 0), else ``temperature``,
``top_p`` and ``top_k`` as given (1.0 and 0, off, by default), whatever the checkpoint's own
generation config says (Qwen's ships ``top_k=1``, ``top_p=0.001``, which would make any
temperature greedy); the draw is seeded from the episode's seed, the role, the step and the
attempt, so a rerun repeats.

The answer is JSON taken out of the generated text and validated against the same pydantic records
the API backends use, with one re-ask that quotes the validation error; what still does not validate
is a typed ``invalid_output``, never an accept. ``constrained`` turns on schema-constrained decoding
with xgrammar: a logits processor that only lets through tokens that keep the output a valid
instance of the record's JSON schema (numeric ranges included, and a select index below the number of
candidates), with strings capped at ``max_string_chars`` so that decoding always ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image as PILImage

from collabvr.backends.api import (
    Roles,
    Tally,
    ask_validated,
    prompt_for,
    safe_message,
    sample_indices,
    strict_schema,
)
from collabvr.backends.local import runtime
from collabvr.backends.local.preflight import (
    check_attn_implementation,
    check_remote_code,
    needs_torchvision,
    torchvision_error,
)
from collabvr.errors import BackendError, BadInput, ModelUnavailable
from collabvr.media import Image, Video
from collabvr.records import Selection, SelectRequest, Usage

OPTIONS = {
    "dtype", "device", "max_new_tokens", "temperature", "top_p", "top_k", "attn_implementation", "frames_per_clip",
    "constrained", "video_input", "max_string_chars", "trust_remote_code", "min_pixels", "max_pixels",
    "processor_kwargs",
}
DEFAULTS = {"max_new_tokens": 512, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "frames_per_clip": 8,
            "max_string_chars": 400}
# the original InternVL checkpoints need their own remote code; the -hf conversions load natively
_HF_CONVERSIONS = {"internvl_chat": "InternVL (OpenGVLab/InternVL3-8B-hf and the other -hf checkpoints)"}


def make(role: str, model: str, options: dict[str, Any]) -> TransformersVLM | None:
    """Registry factory for the ``transformers`` provider (a VLM only)."""
    if role != "vlm":
        return None
    return TransformersVLM(model, options)


@dataclass
class _Loaded:
    """One loaded model and, once asked for, its grammar compiler (the processor is the backend's:
    backends that differ only in processor arguments share the model)."""

    model: Any
    compiler: Any = None
    grammars: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TransformersVLM(Roles):
    """Plan, verify, select, judge and critique with a local image-text-to-text model."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.model = model
        self.name = f"transformers:{model}"
        runtime.check_options(options, OPTIONS, self.name)
        self.checkpoint = runtime.find_checkpoint("transformers", model, "config.json")
        self.trust_remote_code = runtime.flag(options.get("trust_remote_code", False), "trust_remote_code")
        config = self.checkpoint.read_json("config.json")
        model_type = config.get("model_type")
        if model_type in _HF_CONVERSIONS:
            raise BadInput(f"{self.name}: model type {model_type!r} is the original checkpoint with its own code; use "
                           f"the transformers conversion of {_HF_CONVERSIONS[model_type]}")
        if not self.trust_remote_code:
            from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

            if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
                raise BadInput(f"{self.name}: model type {model_type!r} is not an image-text-to-text model that "
                               "AutoModelForImageTextToText loads (LLaVA, Qwen2.5-VL, Gemma 3, ...)")
        check_remote_code(config, self.trust_remote_code, self.name, "model")
        self.device = runtime.check_device(options.get("device"))
        self.dtype = runtime.parse_dtype(options.get("dtype"), self.device)
        self.max_new_tokens = _int(options, "max_new_tokens", 1)
        self.frames_per_clip = _int(options, "frames_per_clip", 1)
        self.max_string_chars = _int(options, "max_string_chars", 1)
        self.temperature = _float(options, "temperature", 0.0)
        self.top_p = _float(options, "top_p", 0.0, 1.0)
        self.top_k = _int(options, "top_k", 0)
        if self.top_p == 0.0:
            raise BadInput("top_p must be in (0, 1]; for greedy decoding leave temperature at 0")
        self.attn_implementation = options.get("attn_implementation")
        if self.attn_implementation:
            check_attn_implementation(str(self.attn_implementation), self.device, self.name)
        self.video_input = runtime.flag(options.get("video_input", False), "video_input")
        self.constrained = runtime.flag(options.get("constrained", False), "constrained")
        if self.constrained:
            try:
                import xgrammar  # noqa: F401
            except ImportError:
                raise BadInput("constrained decoding needs xgrammar: pip install 'collabvr[local]'") from None
        self.processor_kwargs = _processor_kwargs(options)
        self.key = ("transformers", self.checkpoint.source, str(self.dtype), self.device, self.attn_implementation,
                    self.trust_remote_code)
        self.prices = None
        self.tally = Tally()
        self._processor: Any = None
        self._processor_error: BadInput | None = None
        self._processor_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformersVLM({self.checkpoint.source!r})"

    # ----- before any call
    def preflight(self) -> None:
        """Load everything but the weights: the config, the processor (torchvision where it needs
        it), the tokenizer's chat template and, with ``video_input``, the video processor. One
        BadInput line naming the fix otherwise (the device, the attention implementation and
        remote code were checked when the backend was built)."""
        from transformers import AutoConfig

        remote = {"trust_remote_code": True} if self.trust_remote_code else {}
        try:
            AutoConfig.from_pretrained(self.checkpoint.source, **remote)
        except Exception as exc:  # noqa: BLE001 - a config that does not load is the user's to fix
            raise BadInput(f"{self.name}: cannot read its config: {safe_message(exc)}") from None
        processor = self.processor()
        if _chat_template(processor) is None:
            raise BadInput(f"{self.name}: the checkpoint has no chat template, so it cannot be prompted as a chat model; "
                           "use its instruction-tuned checkpoint (-Instruct, -it, -chat)")
        if self.video_input and getattr(processor, "video_processor", None) is None:
            raise BadInput(f"{self.name}: video_input is on, but {type(processor).__name__} has no video processor; "
                           "leave video_input off (clips go as sampled frames)")
        if self.processor_kwargs.keys() & {"min_pixels", "max_pixels"}:
            image_processor = getattr(processor, "image_processor", None)
            if "Qwen2VL" not in type(image_processor).__name__:
                raise BadInput(f"{self.name}: min_pixels and max_pixels size Qwen-VL-style processors; "
                               f"{type(image_processor).__name__} has no pixel budget (see processor_kwargs)")

    # ----- loading
    def processor(self) -> Any:
        """This backend's processor (its own arguments), loaded once; a failure is remembered too."""
        with self._processor_lock:
            if self._processor_error is not None:
                raise self._processor_error
            if self._processor is None:
                from transformers import AutoProcessor

                remote = {"trust_remote_code": True} if self.trust_remote_code else {}
                try:
                    self._processor = AutoProcessor.from_pretrained(self.checkpoint.source, **remote,
                                                                    **self.processor_kwargs)
                except Exception as exc:  # noqa: BLE001 - a processor that does not build is the user's to fix
                    self._processor_error = (torchvision_error(self.name, "its processor") if needs_torchvision(exc) else
                                             BadInput(f"{self.name}: cannot build its processor: {safe_message(exc)}"))
                    raise self._processor_error from None
            return self._processor

    def load(self) -> _Loaded:
        """The loaded model, built on first use and shared by every backend with the same key."""
        return runtime.model(self.key, self._load)

    def _load(self) -> _Loaded:
        from transformers import AutoModelForImageTextToText

        extra: dict[str, Any] = {"trust_remote_code": True} if self.trust_remote_code else {}
        if self.attn_implementation:
            extra["attn_implementation"] = str(self.attn_implementation)
        try:
            model = AutoModelForImageTextToText.from_pretrained(self.checkpoint.source, dtype=self.dtype, **extra)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is a failed backend
            raise BackendError(f"{self.name}: cannot load the model: {safe_message(exc)}") from None
        return _Loaded(model.to(self.device).eval())

    def close(self) -> None:
        """Free the model (every backend sharing it reloads on its next call)."""
        runtime.release(self.key)

    async def acall(self, role: str, request: Any) -> Any:
        """One role (``"plan"``, ``"verify"``...) in a worker thread, for async callers."""
        return await asyncio.to_thread(getattr(self, role), request)

    def estimated_cost(self, usage: dict[str, float]) -> float | None:
        """Local models have no price."""
        return None

    # ----- one role call
    def _role(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        try:
            processor = self.processor()
        except BadInput as exc:  # not preflighted: remembered, and no attempt of the episode can succeed
            raise ModelUnavailable(str(exc)) from None
        if self.video_input and getattr(processor, "video_processor", None) is None:
            raise BackendError(f"{self.name}: video_input is on, but {type(processor).__name__} has no video processor")
        loaded = self.load()
        content, images, videos = self._content(prompt_for(request), media)
        grammar = self._grammar(loaded, processor, record, request) if self.constrained else None
        seed = sampling_seed(role, request)

        def ask(retry: tuple[str, str] | None) -> tuple[str | None, Usage]:
            messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
            if retry is not None:
                messages += [{"role": "assistant", "content": [{"type": "text", "text": retry[0]}]},
                             {"role": "user", "content": [{"type": "text", "text": retry[1]}]}]
            return self._generate(loaded, processor, messages, images, videos, grammar, seed + (retry is not None))

        return ask_validated(ask, record, f"{self.name} {role}")

    def _content(self, prompt: str, media: list[Any]) -> tuple[list[dict[str, Any]], list[Any], list[Video]]:
        """Chat content (the role prompt, then captions and media in order) and the pixels behind it."""
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        images: list[Any] = []
        videos: list[Video] = []
        for item in media:
            if isinstance(item, str):
                content.append({"type": "text", "text": "\n" + item})
            elif isinstance(item, Image):
                content.append({"type": "image"})
                images.append(_pil(item))
            elif isinstance(item, Video) and self.video_input:
                content.append({"type": "video"})
                videos.append(item)
            elif isinstance(item, Video):
                indices = sample_indices(item.num_frames, self.frames_per_clip)
                content.append({"type": "text", "text": frames_caption(item, indices)})
                for i in indices:
                    content.append({"type": "image"})
                    images.append(_pil(item.frame(i)))
        return content, images, videos

    def _generate(self, loaded: _Loaded, processor: Any, messages: list[dict[str, Any]], images: list[Any],
                  videos: list[Video], grammar: Any, seed: int) -> tuple[str | None, Usage]:
        import torch

        model = loaded.model
        try:
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[text], images=images or None, return_tensors="pt", **video_inputs(processor, videos))
            inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                      if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            settings = self.sampling()
            if grammar is not None:
                import xgrammar

                settings["logits_processor"] = [xgrammar.contrib.hf.LogitsProcessor(grammar)]
            with runtime.device_lock(self.device), torch.inference_mode():
                if settings["do_sample"]:
                    torch.manual_seed(seed)  # under the device lock: no other call on it draws in between
                output = model.generate(**inputs, **settings)
        except Exception as exc:  # noqa: BLE001 - a failed call is a typed failed attempt
            raise BackendError(f"{self.name}: generation failed: {safe_message(exc)}") from None
        prompt_tokens = int(inputs["input_ids"].shape[1])
        new = output[0, prompt_tokens:]
        decode = getattr(processor, "tokenizer", processor).decode
        usage = Usage(input_tokens=prompt_tokens, output_tokens=int(new.shape[0]))
        self.tally.add(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        return extract_json(decode(new, skip_special_tokens=True)), usage

    def sampling(self) -> dict[str, Any]:
        """``generate``'s sampling arguments, every one set, so the checkpoint's generation config
        cannot override them: greedy at temperature 0, else temperature / top_p / top_k as given."""
        settings: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": 1}
        if self.temperature > 0:
            return settings | {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        # greedy: the checkpoint's sampling knobs are cleared, so they neither apply nor warn
        return settings | {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}

    # ----- constrained decoding
    def _grammar(self, loaded: _Loaded, processor: Any, record: type, request: Any) -> Any:
        """The record's schema compiled for this tokenizer (cached per schema)."""
        import xgrammar

        schema = json.dumps(constrained_schema(record, request, self.max_string_chars), sort_keys=True)
        with loaded.lock:
            if loaded.compiler is None:
                vocab = loaded.model.get_output_embeddings().weight.shape[0]
                tokenizer = getattr(processor, "tokenizer", processor)
                info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
                loaded.compiler = xgrammar.GrammarCompiler(info)
            if schema not in loaded.grammars:
                loaded.grammars[schema] = loaded.compiler.compile_json_schema(schema, any_whitespace=False)
            return loaded.grammars[schema]


def constrained_schema(record: type, request: Any, max_chars: int) -> dict[str, Any]:
    """The record's strict schema, tightened so that every valid output is finite: strings of at most
    ``max_chars`` characters without control characters, bounded integers, and a select index
    below the number of candidates."""
    schema = strict_schema(record)
    for prop in schema["properties"].values():
        if prop.get("type") == "string":
            prop["pattern"] = r'^[^"\\\x00-\x1f]{0,' + str(max_chars) + "}$"
        elif prop.get("type") == "integer":
            prop.setdefault("maximum", 1000)
    if record is Selection and isinstance(request, SelectRequest):
        schema["properties"]["index"]["maximum"] = max(0, len(request.candidates) - 1)
    return schema


def extract_json(text: str) -> str:
    """The JSON object in a model's answer: the answer itself, or from its first ``{`` to its last
    ``}`` when the model wrapped it in prose or a code fence."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        return stripped
    start, end = stripped.find("{"), stripped.rfind("}")
    return stripped[start : end + 1] if 0 <= start < end else stripped


def _pil(image: Image) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(image.array), mode="RGB")


def _int(options: dict[str, Any], name: str, minimum: int) -> int:
    value = options.get(name, DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit() or int(value) < minimum:
        raise BadInput(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _float(options: dict[str, Any], name: str, minimum: float, maximum: float | None = None) -> float:
    value = options.get(name, DEFAULTS[name])
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a number, got {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise BadInput(f"{name} must be in [{minimum:g}, {maximum if maximum is not None else 'inf'}], got {value!r}")
    return number


def _processor_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``AutoProcessor.from_pretrained``: ``processor_kwargs`` plus ``min_pixels`` and
    ``max_pixels`` (Qwen-VL's image budget, as its card sets it)."""
    kwargs = options.get("processor_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise BadInput(f"processor_kwargs must be an object of AutoProcessor.from_pretrained arguments, got {kwargs!r}")
    kwargs = dict(kwargs)
    for name in ("min_pixels", "max_pixels"):
        if options.get(name) is not None:
            kwargs[name] = _pixels(options[name], name)
    return kwargs


def _pixels(value: Any, name: str) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
        raise BadInput(f"{name} must be a whole number of pixels >= 1, got {value!r}")
    return int(value)


def _chat_template(processor: Any) -> str | None:
    return getattr(processor, "chat_template", None) or getattr(getattr(processor, "tokenizer", None), "chat_template", None)


def sampling_seed(role: str, request: Any) -> int:
    """The draw's seed: the episode's seed (``request.seed``), the role, the step and attempt where
    the request has them, and the prompt, so every call draws its own and a rerun draws the same."""
    key = json.dumps([role, getattr(request, "seed", 0), getattr(request, "step", None), getattr(request, "attempt", None),
                      prompt_for(request)])
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 2**63


def frames_caption(video: Video, indices: list[int]) -> str:
    """What the model is told about frames sampled from a clip: how many, and when each was shown."""
    times = ", ".join(f"{i / video.fps:.2f}" for i in indices)
    return f"({len(indices)} frames sampled in order, at {times} s of a {video.seconds:.2f} s clip)"


def video_inputs(processor: Any, videos: list[Video]) -> dict[str, Any]:
    """The processor's video arguments: the frames and, as the video's metadata, its real frame rate;
    the processor samples by the model's own rule when it has one (``fps`` or ``num_frames``), else
    takes every frame, and either way knows when each frame was shown."""
    if not videos:
        return {}
    video_processor = getattr(processor, "video_processor", None)
    own_rule = bool(getattr(video_processor, "fps", None) or getattr(video_processor, "num_frames", None))
    metadata = [{"total_num_frames": v.num_frames, "fps": v.fps, "duration": v.seconds, "width": v.width,
                 "height": v.height, "frames_indices": list(range(v.num_frames))} for v in videos]
    return {"videos": [np.asarray(v.frames) for v in videos], "video_metadata": metadata, "do_sample_frames": own_rule}


__all__ = ["DEFAULTS", "TransformersVLM", "constrained_schema", "extract_json", "frames_caption", "make",
           "sampling_seed", "video_inputs"]
