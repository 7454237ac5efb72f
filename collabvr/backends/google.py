"""Gemini as the VLM and Veo as the VGM, through the google-genai SDK.

Spec strings: ``gemini:<model>`` (e.g. ``gemini:gemini-2.5-pro``) and ``veo:<model>`` (e.g.
``veo:veo-3.1-generate-001``). Authentication is the SDK's: an API key from the ``api_key``
option or ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY``, or Vertex AI (``vertexai``, ``project``,
``location`` options or ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION``, with ADC). Veo
runs on Vertex only: an API key alone selects Vertex express mode. ``base_url`` overrides
``GOOGLE_GEMINI_BASE_URL`` / ``GOOGLE_VERTEX_BASE_URL``. See docs/backends.md.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any
from urllib.parse import urlsplit

import av
import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from collabvr import events
from collabvr.backends.api import (
    Caller,
    Failure,
    Policy,
    RoleVLM,
    Tally,
    ask_validated,
    check_options,
    estimated_cost,
    prompt_for,
    response_schema,
    retry_after,
    safe_message,
    sample_frames,
)
from collabvr.errors import (
    BackendError,
    BadInput,
    InvalidOutput,
    RefusedOutput,
    TransientError,
    register_secret,
)
from collabvr.media import AV_ERRORS, Image, MediaError, Video
from collabvr.records import (
    Usage,
)

DEFAULT_GEMINI = "gemini-2.5-pro"
DEFAULT_VEO = "veo-3.1-generate-001"
# Clip lengths each Veo generation accepts, by model-name prefix (longest prefix wins).
DURATIONS: dict[str, tuple[int, ...]] = {"veo-2": (5, 6, 7, 8), "veo-3": (4, 6, 8)}

_AUTH = {"api_key", "vertexai", "project", "location", "base_url"}
_GEMINI_OPTIONS = _AUTH | {"temperature", "max_output_tokens", "video_fps", "inline_limit_bytes", "frames_per_clip", "file_poll_s"}
_VEO_OPTIONS = _AUTH | {
    "aspect_ratio", "resolution", "negative_prompt", "durations", "generate_audio", "person_generation",
    "enhance_prompt", "poll_s",
}
_REFUSALS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
_TRANSIENT_OP_CODES = {4, 8, 10, 13, 14}  # google.rpc codes: deadline, exhausted, aborted, internal, unavailable


def make(role: str, model: str, options: dict[str, Any]) -> GeminiVLM | VeoVGM:
    """Registry factory for the ``gemini`` (VLM) and ``veo`` (VGM) providers."""
    if role == "vgm":
        return VeoVGM(model or DEFAULT_VEO, options)
    return GeminiVLM(model or DEFAULT_GEMINI, options)


def _client(options: dict[str, Any], *, vertexai: bool | None, timeout_s: float) -> genai.Client:
    """A google-genai client with the SDK's retries off; keys stay inside the client."""
    api_key = options.get("api_key") or None
    for secret in (api_key, os.environ.get("GOOGLE_API_KEY"), os.environ.get("GEMINI_API_KEY")):
        register_secret(secret)
    http = types.HttpOptions(
        base_url=options.get("base_url") or None,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    try:
        return genai.Client(
            api_key=api_key, vertexai=vertexai, project=options.get("project"), location=options.get("location"),
            http_options=http,
        )
    except Exception as exc:  # noqa: BLE001 - missing credentials etc. are the user's to fix
        raise BadInput(f"cannot set up the google-genai client: {safe_message(exc)}; see docs/backends.md") from None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection and timeout errors of whichever httpx the SDK runs on."""
    classes: list[type[BaseException]] = [httpx.TransportError]
    try:
        import httpx2

        classes.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(classes)


_TRANSPORT = _transport_errors()


def _classify(exc: BaseException) -> Failure:
    """Retry 408/429/5xx and transport failures; everything else fails at once."""
    message = safe_message(exc)
    code = getattr(exc, "code", None) if isinstance(exc, genai_errors.APIError) else None
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
    if code is not None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if code in (408, 429) or code >= 500:
            return Failure(TransientError(message), retry=True, retry_after=retry_after(headers))
        return Failure(BackendError(message))
    if isinstance(exc, _TRANSPORT):
        return Failure(TransientError(message), retry=True)
    if isinstance(exc, ValueError):  # the SDK could not read the response
        return Failure(InvalidOutput(message))
    return Failure(BackendError(message))


def _http(timeout_s: float) -> types.HttpOptions:
    return types.HttpOptions(timeout=max(1, int(timeout_s * 1000)))


class GeminiVLM(RoleVLM):
    """Plan, verify, select, judge and critique with a Gemini model and structured output."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        super().__init__("gemini", model, options, _GEMINI_OPTIONS, _classify)
        self.video_fps = options.get("video_fps", 4.0)
        self.inline_limit = int(options.get("inline_limit_bytes", 15 * 2**20))
        self.file_poll_s = float(options.get("file_poll_s", 1.0))
        vertexai = options.get("vertexai", True if options.get("project") or options.get("location") else None)
        self._client = _client(options, vertexai=vertexai, timeout_s=self.policy.timeout_s)

    # ----- one call
    def _role(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        with self.caller.slots:
            deadline = self.caller.deadline()
            uploaded: list[str] = []
            try:
                parts = [types.Part.from_text(text=prompt_for(request))]
                for item in media:
                    parts += self._parts(item, deadline, uploaded)
                return ask_validated(lambda retry: self._ask(parts, record, retry, deadline), record, f"{self.name} {role}")
            finally:
                for name in uploaded:
                    self._delete(name)

    def _ask(self, parts: list[types.Part], record: type, retry: tuple[str, str] | None, deadline: float) -> tuple[str | None, Usage]:
        contents = [types.Content(role="user", parts=parts)]
        if retry is not None:
            contents += [
                types.Content(role="model", parts=[types.Part.from_text(text=retry[0])]),
                types.Content(role="user", parts=[types.Part.from_text(text=retry[1])]),
            ]

        def send() -> types.GenerateContentResponse:
            config = types.GenerateContentConfig(
                response_mime_type="application/json",
                response_schema=response_schema(record),
                temperature=self.temperature,
                max_output_tokens=self.max_output_tokens,
                http_options=_http(self.caller.timeout(deadline)),
            )
            return self._client.models.generate_content(model=self.model, contents=contents, config=config)

        response = self.caller.call("generate_content", send, deadline)
        meta = response.usage_metadata
        usage = Usage(
            input_tokens=(meta.prompt_token_count or 0) if meta else 0,
            output_tokens=((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0,
        )
        self.tally.add(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise RefusedOutput(f"{self.name}: prompt blocked ({feedback.block_reason})")
        if not response.candidates:
            raise InvalidOutput(f"{self.name}: the response has no candidates")
        reason = response.candidates[0].finish_reason
        if reason is not None and str(getattr(reason, "value", reason)) in _REFUSALS:
            raise RefusedOutput(f"{self.name}: answer withheld ({getattr(reason, 'value', reason)})")
        return response.text, usage

    # ----- media
    def _parts(self, item: str | Image | Video, deadline: float, uploaded: list[str]) -> list[types.Part]:
        """A label, a frame, or a clip: inline up to ``inline_limit_bytes``, else through the
        Files API (Gemini API) or as sampled frames (Vertex, which has no Files API)."""
        if isinstance(item, str):
            return [types.Part.from_text(text=item)]
        if isinstance(item, Image):
            return [types.Part.from_bytes(data=item.to_png(), mime_type="image/png")]
        meta = types.VideoMetadata(fps=float(self.video_fps)) if self.video_fps else None
        data = item.mp4
        if len(data) <= self.inline_limit:
            return [types.Part(inline_data=types.Blob(data=data, mime_type="video/mp4"), video_metadata=meta)]
        if self._client.vertexai:
            frames = sample_frames(item, self.frames_per_clip)
            return [types.Part.from_text(text=f"({len(frames)} frames sampled in order)")] + [
                types.Part.from_bytes(data=f.to_png(), mime_type="image/png") for f in frames
            ]
        uri = self._upload(data, deadline, uploaded)
        return [types.Part(file_data=types.FileData(file_uri=uri, mime_type="video/mp4"), video_metadata=meta)]

    def _upload(self, data: bytes, deadline: float, uploaded: list[str]) -> str:
        """Files API: upload a clip too large to send inline, and wait until it is ACTIVE."""
        config = types.UploadFileConfig(mime_type="video/mp4", http_options=_http(self.caller.timeout(deadline)))
        file = self.caller.call("files.upload", lambda: self._client.files.upload(file=io.BytesIO(data), config=config), deadline)
        uploaded.append(file.name)
        while str(getattr(file.state, "value", file.state)) == "PROCESSING":
            if time.monotonic() + self.file_poll_s >= deadline:
                raise TransientError(f"{self.name}: uploaded clip still processing at the deadline")
            time.sleep(self.file_poll_s)
            file = self.caller.call("files.get", lambda name=file.name: self._client.files.get(name=name), deadline)
        if str(getattr(file.state, "value", file.state)) == "FAILED":
            raise BackendError(f"{self.name}: the Files API could not process the clip")
        return file.uri

    def _delete(self, name: str) -> None:
        try:
            self._client.files.delete(name=name)
        except Exception:  # noqa: BLE001, S110 - uploaded files expire on their own after 48 h
            pass


class VeoVGM:
    """Image-to-video with Veo: submit, poll the long-running operation, fetch the bytes."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        check_options(options, _VEO_OPTIONS, f"veo:{model}")
        self.model = model
        self.name = f"veo:{model}"
        self.policy = Policy.from_options(options, deadline_s=900.0, timeout_s=60.0, concurrency=2)
        self.caller = Caller(self.name, self.policy, _classify)
        self.aspect_ratio = options.get("aspect_ratio")
        self.resolution = options.get("resolution", "720p")
        self.negative_prompt = options.get("negative_prompt")
        self.generate_audio = options.get("generate_audio", False)
        self.person_generation = options.get("person_generation")
        self.enhance_prompt = options.get("enhance_prompt")
        self.poll_s = float(options.get("poll_s", 10.0))
        self.durations = tuple(sorted(int(d) for d in options.get("durations") or _durations(model)))
        self.prices = options.get("prices")
        self.tally = Tally()
        self._client = _client(options, vertexai=True, timeout_s=self.policy.timeout_s)
        self._api_origin = _origin(str(self._client._api_client._http_options.base_url or ""))

    def __repr__(self) -> str:
        return f"VeoVGM({self.model!r})"

    def duration_for(self, seconds: float) -> int:
        """The shortest allowed duration that covers ``seconds``, else the longest allowed."""
        return next((d for d in self.durations if d >= seconds - 1e-6), self.durations[-1])

    def estimated_cost(self, usage: dict[str, float]) -> float | None:
        """USD for generated seconds (``video_seconds`` or a trace's ``clip_seconds``)."""
        return estimated_cost(self.model, usage, self.prices)

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        with self.caller.slots:
            deadline = self.caller.deadline()
            operation = self._submit(frame, prompt, seconds, seed, deadline)
            operation = self._wait(operation, deadline)
            data = self._video_bytes(operation, deadline)
        try:
            clip = Video(mp4=data, fps=_probe_fps(data))
            clip.num_frames  # noqa: B018 - decode now, so a broken file is this call's failure
        except (MediaError, ValueError) as exc:
            raise InvalidOutput(f"{self.name}: the returned video does not decode: {safe_message(exc)}") from None
        self.tally.add(video_seconds=clip.seconds)
        return clip

    def _submit(self, frame: Image, prompt: str, seconds: float, seed: int, deadline: float) -> types.GenerateVideosOperation:
        source = types.GenerateVideosSource(prompt=prompt, image=types.Image(image_bytes=frame.to_png(), mime_type="image/png"))

        def send() -> types.GenerateVideosOperation:
            config = types.GenerateVideosConfig(
                number_of_videos=1,
                duration_seconds=self.duration_for(seconds),
                aspect_ratio=self.aspect_ratio or ("9:16" if frame.height > frame.width else "16:9"),
                resolution=self.resolution,
                seed=seed % 2**32,
                negative_prompt=self.negative_prompt,
                generate_audio=self.generate_audio,
                person_generation=self.person_generation,
                enhance_prompt=self.enhance_prompt,
                http_options=_http(self.caller.timeout(deadline)),
            )
            return self._client.models.generate_videos(model=self.model, source=source, config=config)

        return self.caller.call("generate_videos", send, deadline)

    def _wait(self, operation: types.GenerateVideosOperation, deadline: float) -> types.GenerateVideosOperation:
        started = time.monotonic()
        while not operation.done:
            if time.monotonic() + self.poll_s >= deadline:
                raise TransientError(f"{self.name}: the operation did not finish within deadline_s={self.policy.deadline_s:g}")
            time.sleep(self.poll_s)
            operation = self.caller.call("operations.get", lambda op=operation: self._poll(op, deadline), deadline)
            events.report(round(time.monotonic() - started, 1), None, unit="s")  # progress: seconds waited
        if operation.error:
            code, message = operation.error.get("code"), str(operation.error.get("message", ""))[:300]
            if any(word in message.lower() for word in ("safety", "responsible ai", "usage guidelines")):
                raise RefusedOutput(f"{self.name}: generation refused: {message}")
            error = TransientError if code in _TRANSIENT_OP_CODES else BackendError
            raise error(f"{self.name}: the operation failed (code {code}): {message}")
        return operation

    def _poll(self, operation: types.GenerateVideosOperation, deadline: float) -> types.GenerateVideosOperation:
        config = types.GetOperationConfig(http_options=_http(self.caller.timeout(deadline)))
        return self._client.operations.get(operation, config=config)

    def _video_bytes(self, operation: types.GenerateVideosOperation, deadline: float) -> bytes:
        result = operation.result or operation.response
        videos = (result.generated_videos if result else None) or []
        if not videos or videos[0].video is None:
            if result is not None and result.rai_media_filtered_count:
                reasons = "; ".join(result.rai_media_filtered_reasons or []) or "no reason given"
                raise RefusedOutput(f"{self.name}: the safety filter withheld the video: {reasons}")
            raise InvalidOutput(f"{self.name}: the finished operation holds no video")
        video = videos[0].video
        if video.video_bytes:
            return video.video_bytes
        if video.uri and video.uri.startswith(("http://", "https://")):
            return self.caller.call("download", lambda: self._download(video.uri, deadline), deadline)
        raise BackendError(f"{self.name}: cannot fetch a video stored at {video.uri!r}; leave output storage unset")

    def _download(self, uri: str, deadline: float) -> bytes:
        """GET the video; the API key goes in a header, and only to the API's own origin."""
        headers = {}
        key = self._client._api_client.api_key
        if key and _origin(uri) == self._api_origin:
            headers["x-goog-api-key"] = key
        response = httpx.get(uri, headers=headers, timeout=self.caller.timeout(deadline), follow_redirects=True)
        response.raise_for_status()
        return response.content


def _durations(model: str) -> tuple[int, ...]:
    prefixes = [p for p in DURATIONS if model.startswith(p)]
    return DURATIONS[max(prefixes, key=len)] if prefixes else DURATIONS["veo-3"]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _probe_fps(data: bytes) -> float:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            rate = container.streams.video[0].average_rate
    except AV_ERRORS as exc:
        raise InvalidOutput(f"the returned video does not decode: {exc}") from None
    return float(rate) if rate else 24.0


__all__ = ["DURATIONS", "GeminiVLM", "VeoVGM", "make"]
