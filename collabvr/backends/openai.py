"""OpenAI (and any OpenAI-compatible server: vLLM, Ollama, ...) as the VLM, through the openai SDK.

Spec string: ``openai:<model>`` (e.g. ``openai:gpt-4.1``). ``base_url`` and ``api_key`` come from
the options, else from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. Frames go in as base64 PNG
image parts; a clip as ``frames_per_clip`` frames sampled evenly. Answers use strict
``json_schema`` structured output; a server that rejects it is asked in JSON mode instead.
There is no OpenAI VGM (the Sora API is shut down). ``acall`` sends on ``AsyncOpenAI``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

import openai as _openai

from collabvr.aio import either, offload
from collabvr.backends.api import (
    Failure,
    PerLoop,
    RoleVLM,
    aask_validated,
    prompt_for,
    response_schema,
    retry_after,
    safe_message,
    sample_frames,
    strict_schema,
)
from collabvr.errors import (
    BackendError,
    BadInput,
    InvalidOutput,
    RefusedOutput,
    TransientError,
    register_secret,
)
from collabvr.media import Image, Video
from collabvr.records import (
    Usage,
)

DEFAULT_MODEL = "gpt-4.1"
_OPTIONS = {"api_key", "base_url", "temperature", "max_output_tokens", "frames_per_clip", "image_detail", "response_format"}
_SCHEMA_WORDS = ("response_format", "json_schema", "schema", "strict", "structured")
# OpenAI models that are not chat models taking images: video, image, speech, transcription,
# embedding, moderation and realtime models. Checked only against OpenAI's own API; a server at a
# custom base_url names its models as it likes.
_NOT_CHAT = re.compile(
    r"^(sora|dall-e|gpt-image|tts-|whisper|text-embedding|omni-moderation|text-moderation|babbage|davinci|gpt-realtime)"
    r"|-(tts|transcribe|realtime)(-|$)"
)
_OPENAI_HOST = "api.openai.com"


class SchemaRejected(BackendError):
    """The server does not take strict JSON-schema output; ask again in JSON mode."""


def make(role: str, model: str, options: dict[str, Any]) -> OpenAIVLM | None:
    """Registry factory for the ``openai`` provider: a VLM only."""
    if role != "vlm":
        return None
    return OpenAIVLM(model or DEFAULT_MODEL, options)


def _classify(exc: BaseException) -> Failure:
    """Retry 408/409/429/5xx, timeouts and dropped connections; never other 4xx."""
    message = safe_message(exc)
    if isinstance(exc, _openai.APIStatusError):
        code = exc.status_code
        if code in (408, 409, 429) or code >= 500:
            return Failure(TransientError(message), retry=True, retry_after=retry_after(exc.response.headers))
        if code in (400, 422) and any(word in message.lower() for word in _SCHEMA_WORDS):
            return Failure(SchemaRejected(message))
        return Failure(BackendError(message))
    if isinstance(exc, _openai.APIConnectionError):  # includes APITimeoutError
        return Failure(TransientError(message), retry=True)
    if isinstance(exc, _openai.APIResponseValidationError | ValueError):
        return Failure(InvalidOutput(message))
    return Failure(BackendError(message))


class OpenAIVLM(RoleVLM):
    """Plan, verify, select, judge and critique with a chat-completions model."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        super().__init__("openai", model, options, _OPTIONS, _classify)
        self.image_detail = options.get("image_detail", "auto")
        self.mode = options.get("response_format", "json_schema")
        if self.mode not in ("json_schema", "json_object"):
            raise BadInput(f"response_format must be 'json_schema' or 'json_object', got {self.mode!r}")
        if self.frames_per_clip < 1:
            raise BadInput(f"frames_per_clip must be >= 1, got {self.frames_per_clip}")
        base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
        self.custom_server = bool(base_url) and urlsplit(base_url).hostname != _OPENAI_HOST
        api_key = options.get("api_key") or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if not base_url:
                raise BadInput(f"{self.name} needs an API key: set OPENAI_API_KEY or the api_key option")
            api_key = "EMPTY"  # local OpenAI-compatible servers (vLLM, Ollama) take any key
        register_secret(api_key)
        client = {"api_key": api_key, "base_url": base_url, "max_retries": 0, "timeout": self.policy.timeout_s}
        self._client = _openai.OpenAI(**client)
        self._aclient = PerLoop(lambda: _openai.AsyncOpenAI(**client))

    def preflight(self) -> None:
        """What can be checked without a network call (the key was checked when the backend was
        built): on OpenAI's own API, the model is a chat model. BadInput, one line, otherwise."""
        if not self.custom_server and _NOT_CHAT.search(self.model.lower()):
            raise BadInput(f"{self.name} is not a chat model, so it cannot plan or verify: use a chat model that takes "
                           f"images as the VLM (e.g. --vlm openai:{DEFAULT_MODEL}); video models go in --vgm (e.g. veo:...)")

    # ----- one call
    async def _arole(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        content = await offload(self._contents, prompt_for(request), media)
        async with self.caller.slot():
            deadline = self.caller.deadline()
            return await aask_validated(lambda retry: self._ask(content, record, retry, deadline), record,
                                        f"{self.name} {role}")

    def _contents(self, prompt: str, media: list[Any]) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        for item in media:
            content += self._content(item)
        return content

    async def _ask(self, content: list[dict], record: type, retry: tuple[str, str] | None, deadline: float,
                   ) -> tuple[str | None, Usage]:
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if retry is not None:
            messages += [{"role": "assistant", "content": retry[0]}, {"role": "user", "content": retry[1]}]
        try:
            response = await self._send(messages, record, deadline)
        except SchemaRejected:
            self.mode = "json_object"  # remembered: this server only does JSON mode
            response = await self._send(messages, record, deadline)
        usage = Usage(
            input_tokens=(response.usage.prompt_tokens or 0) if response.usage else 0,
            output_tokens=(response.usage.completion_tokens or 0) if response.usage else 0,
        )
        self.tally.add(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        if not response.choices:
            raise InvalidOutput(f"{self.name}: the response has no choices")
        choice = response.choices[0]
        if getattr(choice.message, "refusal", None):
            raise RefusedOutput(f"{self.name}: refused: {str(choice.message.refusal)[:300]}")
        if choice.finish_reason == "content_filter":
            raise RefusedOutput(f"{self.name}: answer withheld by the content filter")
        return choice.message.content, usage

    async def _send(self, messages: list[dict[str, Any]], record: type, deadline: float) -> Any:
        if self.mode == "json_schema":
            schema = {"name": record.__name__, "schema": strict_schema(record), "strict": True}
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": schema}
        else:  # JSON mode needs the schema in the prompt (and the word "JSON")
            note = {"role": "user", "content": f"Answer with only a JSON object matching this schema: {json.dumps(response_schema(record))}"}
            messages = [*messages, note]
            response_format = {"type": "json_object"}
        extra: dict[str, Any] = {}
        if self.temperature is not None:
            extra["temperature"] = float(self.temperature)
        if self.max_output_tokens is not None:
            extra["max_completion_tokens"] = int(self.max_output_tokens)

        def request() -> dict[str, Any]:
            return {"model": self.model, "messages": messages, "response_format": response_format,
                    "timeout": self.caller.timeout(deadline), **extra}

        return await self.caller.attempt("chat.completions", lambda: either(
            lambda: self._client.chat.completions.create(**request()),
            lambda: self._aclient.call(lambda aio: aio.chat.completions.create(**request()))), deadline)

    def _content(self, item: str | Image | Video) -> list[dict[str, Any]]:
        if isinstance(item, str):
            return [{"type": "text", "text": item}]
        if isinstance(item, Image):
            return [self._image(item)]
        frames = sample_frames(item, self.frames_per_clip)
        return [{"type": "text", "text": f"({len(frames)} frames sampled in order from {item.seconds:.1f} s)"}] + [
            self._image(frame) for frame in frames
        ]

    def _image(self, image: Image) -> dict[str, Any]:
        url = "data:image/png;base64," + base64.b64encode(image.to_png()).decode("ascii")
        return {"type": "image_url", "image_url": {"url": url, "detail": self.image_detail}}


__all__ = ["OpenAIVLM", "SchemaRejected", "make"]
