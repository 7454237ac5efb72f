"""``transformers:<hub id or local directory>``: an image-text-to-text model as the VLM.

``AutoProcessor`` + ``AutoModelForImageTextToText``, prompted through the model's own chat template
with the same role prompts and media order as the API backends (:class:`~collabvr.backends.api.Roles`).
A clip is shown as ``frames_per_clip`` frames sampled evenly (first and last included), given as
images, so every image-text-to-text model works; ``video_input`` passes the clip as a video where
the processor has a video processor.

The answer is JSON taken out of the generated text and validated against the same pydantic records
the API backends use, with one re-ask that quotes the validation error; what still does not validate
is a typed ``invalid_output``, never an accept. ``constrained`` turns on schema-constrained decoding
with xgrammar: a logits processor that only lets through tokens that keep the output a valid
instance of the record's JSON schema (numeric ranges included, and a select index below the number of
candidates), with strings capped at ``max_string_chars`` so that decoding always ends.
"""

from __future__ import annotations

import asyncio
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
    sample_frames,
    strict_schema,
)
from collabvr.backends.local import runtime
from collabvr.errors import BackendError, BadInput
from collabvr.media import Image, Video
from collabvr.records import Selection, SelectRequest, Usage

OPTIONS = {
    "dtype", "device", "max_new_tokens", "temperature", "attn_implementation", "frames_per_clip", "constrained",
    "video_input", "max_string_chars", "trust_remote_code",
}
DEFAULTS = {"max_new_tokens": 512, "temperature": 0.0, "frames_per_clip": 8, "max_string_chars": 400}


def make(role: str, model: str, options: dict[str, Any]) -> TransformersVLM | None:
    """Registry factory for the ``transformers`` provider (a VLM only)."""
    if role != "vlm":
        return None
    return TransformersVLM(model, options)


@dataclass
class _Loaded:
    """One loaded model with its processor and, once asked for, its grammar compiler."""

    processor: Any
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
        model_type = self.checkpoint.read_json("config.json").get("model_type")
        if not self.trust_remote_code:
            from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

            if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
                raise BadInput(f"{self.name}: model type {model_type!r} is not an image-text-to-text model that "
                               "AutoModelForImageTextToText loads (LLaVA, Qwen2.5-VL, Gemma 3, ...)")
        self.device = runtime.check_device(options.get("device"))
        self.dtype = runtime.parse_dtype(options.get("dtype"), self.device)
        self.max_new_tokens = _int(options, "max_new_tokens", 1)
        self.frames_per_clip = _int(options, "frames_per_clip", 1)
        self.max_string_chars = _int(options, "max_string_chars", 1)
        try:
            self.temperature = float(options.get("temperature", DEFAULTS["temperature"]))
        except (TypeError, ValueError):
            raise BadInput(f"temperature must be a number, got {options.get('temperature')!r}") from None
        self.attn_implementation = options.get("attn_implementation")
        self.video_input = runtime.flag(options.get("video_input", False), "video_input")
        self.constrained = runtime.flag(options.get("constrained", False), "constrained")
        if self.constrained:
            try:
                import xgrammar  # noqa: F401
            except ImportError:
                raise BadInput("constrained decoding needs xgrammar: pip install 'collabvr[local]'") from None
        self.key = ("transformers", self.checkpoint.source, str(self.dtype), self.device, self.attn_implementation,
                    self.trust_remote_code)
        self.prices = None
        self.tally = Tally()

    def __repr__(self) -> str:
        return f"TransformersVLM({self.checkpoint.source!r})"

    # ----- loading
    def load(self) -> _Loaded:
        """The loaded model, built on first use and shared by every backend with the same key."""
        return runtime.model(self.key, self._load)

    def _load(self) -> _Loaded:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        extra: dict[str, Any] = {"trust_remote_code": True} if self.trust_remote_code else {}
        if self.attn_implementation:
            extra["attn_implementation"] = str(self.attn_implementation)
        try:
            processor = AutoProcessor.from_pretrained(self.checkpoint.source, **({"trust_remote_code": True}
                                                                                 if self.trust_remote_code else {}))
            model = AutoModelForImageTextToText.from_pretrained(self.checkpoint.source, dtype=self.dtype, **extra)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is a failed backend
            raise BackendError(f"{self.name}: cannot load the model: {safe_message(exc)}") from None
        if self.video_input and getattr(processor, "video_processor", None) is None:
            raise BackendError(f"{self.name}: video_input is on, but {type(processor).__name__} has no video processor")
        return _Loaded(processor, model.to(self.device).eval())

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
        loaded = self.load()
        content, images, videos = self._content(prompt_for(request), media)
        grammar = self._grammar(loaded, record, request) if self.constrained else None

        def ask(retry: tuple[str, str] | None) -> tuple[str | None, Usage]:
            messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
            if retry is not None:
                messages += [{"role": "assistant", "content": [{"type": "text", "text": retry[0]}]},
                             {"role": "user", "content": [{"type": "text", "text": retry[1]}]}]
            return self._generate(loaded, messages, images, videos, grammar)

        return ask_validated(ask, record, f"{self.name} {role}")

    def _content(self, prompt: str, media: list[Any]) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
        """Chat content (the role prompt, then captions and media in order) and the pixels behind it."""
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        images: list[Any] = []
        videos: list[Any] = []
        for item in media:
            if isinstance(item, str):
                content.append({"type": "text", "text": "\n" + item})
            elif isinstance(item, Image):
                content.append({"type": "image"})
                images.append(_pil(item))
            elif isinstance(item, Video) and self.video_input:
                content.append({"type": "video"})
                videos.append(np.asarray(item.frames))
            elif isinstance(item, Video):
                frames = sample_frames(item, self.frames_per_clip)
                content.append({"type": "text", "text": f"({len(frames)} frames sampled in order)"})
                for frame in frames:
                    content.append({"type": "image"})
                    images.append(_pil(frame))
        return content, images, videos

    def _generate(self, loaded: _Loaded, messages: list[dict[str, Any]], images: list[Any], videos: list[Any],
                  grammar: Any) -> tuple[str | None, Usage]:
        import torch

        processor, model = loaded.processor, loaded.model
        try:
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")
            inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                      if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            settings: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
            if self.temperature > 0:
                settings["temperature"] = self.temperature
            if grammar is not None:
                import xgrammar

                settings["logits_processor"] = [xgrammar.contrib.hf.LogitsProcessor(grammar)]
            with runtime.device_lock(self.device), torch.inference_mode():
                output = model.generate(**inputs, **settings)
        except Exception as exc:  # noqa: BLE001 - a failed call is a typed failed attempt
            raise BackendError(f"{self.name}: generation failed: {safe_message(exc)}") from None
        prompt_tokens = int(inputs["input_ids"].shape[1])
        new = output[0, prompt_tokens:]
        decode = getattr(processor, "tokenizer", processor).decode
        usage = Usage(input_tokens=prompt_tokens, output_tokens=int(new.shape[0]))
        self.tally.add(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        return extract_json(decode(new, skip_special_tokens=True)), usage

    # ----- constrained decoding
    def _grammar(self, loaded: _Loaded, record: type, request: Any) -> Any:
        """The record's schema compiled for this tokenizer (cached per schema)."""
        import xgrammar

        schema = json.dumps(constrained_schema(record, request, self.max_string_chars), sort_keys=True)
        with loaded.lock:
            if loaded.compiler is None:
                vocab = loaded.model.get_output_embeddings().weight.shape[0]
                tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
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


__all__ = ["DEFAULTS", "TransformersVLM", "constrained_schema", "extract_json", "make"]
