"""Gemini as the VLM and Veo as the VGM, through the google-genai SDK.

Spec strings: ``gemini:<model>`` (e.g. ``gemini:gemini-2.5-pro``) and ``veo:<model>`` (e.g.
``veo:veo-3.1-generate-001``). Authentication is the SDK's: an API key from the ``api_key``
option or ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY``, or Vertex AI (``vertexai``, ``project``,
``location`` options or ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION``, with ADC). Veo
runs on Vertex only: an API key alone selects Vertex express mode. ``base_url`` overrides
``GOOGLE_GEMINI_BASE_URL`` / ``GOOGLE_VERTEX_BASE_URL``. See docs/backends.md.

Every Gemini request is sized before it is sent. The API refuses a body above 20 MiB, so clips
that would take a request over ``request_limit_bytes`` go through the Files API (Gemini API) or
as sampled frames, smaller and fewer as needed (Vertex, which has no Files API); a request that
still cannot fit fails typed, unsent.

The async forms (``acall``, ``agenerate``) send on the SDK's async client (``client.aio``) and
poll with ``asyncio.sleep``; the sync forms run the same code on the sync client.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image as PILImage

from collabvr import events
from collabvr.aio import either, offload, run_inline, sleep
from collabvr.backends.api import (
    Caller,
    Failure,
    PerLoop,
    Policy,
    RoleVLM,
    Tally,
    aask_validated,
    check_options,
    estimated_cost,
    prompt_for,
    reask_chars,
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
from collabvr.media import Image, MediaError, Video, probe_fps
from collabvr.records import (
    Usage,
)

DEFAULT_GEMINI = "gemini-2.5-pro"
DEFAULT_VEO = "veo-3.1-generate-001"
# Clip lengths each Veo generation accepts, by model-name prefix (longest prefix wins).
DURATIONS: dict[str, tuple[int, ...]] = {"veo-2": (5, 6, 7, 8), "veo-3": (4, 6, 8)}
# The API's cap on one request body: it answers 400 "Request payload size exceeds the limit:
# 20971520 bytes". We stay a margin below it, for what our size estimate cannot see exactly.
API_REQUEST_LIMIT = 20 * 2**20
REQUEST_MARGIN = 2**20
DEFAULT_REQUEST_LIMIT = API_REQUEST_LIMIT - REQUEST_MARGIN

_AUTH = {"api_key", "vertexai", "project", "location", "base_url"}
_GEMINI_OPTIONS = _AUTH | {
    "temperature", "max_output_tokens", "video_fps", "inline_limit_bytes", "request_limit_bytes", "frames_per_clip",
    "file_poll_s",
}
_VEO_OPTIONS = _AUTH | {
    "aspect_ratio", "resolution", "negative_prompt", "durations", "generate_audio", "person_generation",
    "enhance_prompt", "poll_s",
}
_REFUSALS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
_TRANSIENT_OP_CODES = {4, 8, 10, 13, 14}  # google.rpc codes: deadline, exhausted, aborted, internal, unavailable
_CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def make_gemini(role: str, model: str, options: dict[str, Any]) -> GeminiVLM | None:
    """Registry factory for the ``gemini`` provider: a VLM only (Veo is the ``veo`` provider)."""
    return GeminiVLM(model or DEFAULT_GEMINI, options) if role == "vlm" else None


def make_veo(role: str, model: str, options: dict[str, Any]) -> VeoVGM | None:
    """Registry factory for the ``veo`` provider: a VGM only."""
    return VeoVGM(model or DEFAULT_VEO, options) if role == "vgm" else None


# ----------------------------------------------------------------------------- client and credentials
@dataclass(frozen=True)
class Endpoint:
    """Where a client sends its requests and how it authenticates, resolved once the way the SDK
    resolves it (options first, then its environment variables), so that nothing needs to read
    the client's private state. ``base_url`` is the effective origin, default or custom."""

    vertexai: bool
    api_key: str | None
    base_url: str
    project: str | None = None
    location: str | None = None

    @property
    def uses_adc(self) -> bool:
        """Whether requests authenticate with Application Default Credentials (Vertex, no key)."""
        return self.vertexai and not self.api_key and bool(self.project or self.location)

    @property
    def origin(self) -> tuple[str, str]:
        return _origin(self.base_url)


def _flag(name: str) -> bool | None:
    value = os.environ.get(name)
    return None if value is None else value.lower() in ("true", "1")


def resolve_endpoint(options: dict[str, Any], *, vertexai: bool | None) -> tuple[Endpoint, str | None]:
    """The endpoint the SDK would use for these options and environment, and the custom base URL
    to hand it (None: the SDK's default). Mirrors google-genai 3.x's ``BaseApiClient``."""
    if vertexai is None:
        enterprise, env_vertexai = _flag("GOOGLE_GENAI_USE_ENTERPRISE"), _flag("GOOGLE_GENAI_USE_VERTEXAI")
        vertexai = bool(enterprise if enterprise is not None else env_vertexai)
    key_option = options.get("api_key") or None
    key = key_option or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY") or None
    if not vertexai:
        custom = options.get("base_url") or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None
        return Endpoint(False, key, custom or "https://generativelanguage.googleapis.com/"), custom
    custom = options.get("base_url") or os.environ.get("GOOGLE_VERTEX_BASE_URL") or None
    project_option, location_option = options.get("project") or None, options.get("location") or None
    project = project_option or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    location = location_option or os.environ.get("GOOGLE_CLOUD_LOCATION") or None
    if key_option and not (project_option or location_option):
        project = location = None  # an explicit key beats a project/location from the environment
    elif not key_option and (project or location):
        key = None  # a project/location beats a key from the environment
    if not location and not key and (not custom or custom.endswith(".googleapis.com")):
        location = "global"
    if custom and not custom.endswith(".googleapis.com") and not ((project and location) or key):
        project = location = None  # a gateway that authenticates by itself
    if custom:
        base = custom
    elif (key and not location) or location == "global":
        base = "https://aiplatform.googleapis.com/"
    elif location in ("us", "eu"):
        base = f"https://aiplatform.{location}.rep.googleapis.com/"
    else:
        base = f"https://{location}-aiplatform.googleapis.com/"
    return Endpoint(True, key, base, project, location), custom


def _client(name: str, options: dict[str, Any], *, vertexai: bool | None, timeout_s: float) -> tuple[genai.Client, Endpoint]:
    """A google-genai client with the SDK's retries off, and the endpoint it talks to."""
    endpoint, custom = resolve_endpoint(options, vertexai=vertexai)
    for secret in (endpoint.api_key, os.environ.get("GOOGLE_API_KEY"), os.environ.get("GEMINI_API_KEY")):
        register_secret(secret)
    if not endpoint.vertexai and not endpoint.api_key:
        raise BadInput(f"{name} needs credentials: set GOOGLE_API_KEY or GEMINI_API_KEY (or the api_key option), "
                       "or use Vertex AI (vertexai=true with project and location, and ADC); see docs/backends.md")
    http = types.HttpOptions(base_url=custom, timeout=int(timeout_s * 1000), retry_options=types.HttpRetryOptions(attempts=1))
    try:
        client = genai.Client(
            vertexai=endpoint.vertexai, api_key=endpoint.api_key, project=endpoint.project, location=endpoint.location,
            http_options=http,
        )
    except Exception as exc:  # noqa: BLE001 - missing credentials etc. are the user's to fix
        if _is_missing_adc(exc):
            raise BadInput(_adc_message(name, endpoint, exc)) from None
        raise BadInput(f"{name}: cannot set up the google-genai client: {safe_message(exc)}; see docs/backends.md") from None
    return client, endpoint


def _is_missing_adc(exc: BaseException) -> bool:
    from google.auth import exceptions as auth_errors

    return isinstance(exc, auth_errors.DefaultCredentialsError)


def _adc_message(name: str, endpoint: Endpoint, exc: BaseException) -> str:
    where = ", ".join(f"{k} {v}" for k, v in (("project", endpoint.project), ("location", endpoint.location)) if v)
    reason = safe_message(exc, 160).split(". ")[0]
    return (f"{name}: Vertex AI ({where}) needs Application Default Credentials and none were found ({reason}); "
            "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, "
            "or give an API key (api_key option or GOOGLE_API_KEY) for Vertex express mode")


def check_credentials(name: str, endpoint: Endpoint) -> None:
    """BadInput unless the endpoint's credentials exist: a key, or ADC that ``google.auth.default``
    finds (a file or gcloud's login; on Google Cloud, the metadata server)."""
    if not endpoint.vertexai and not endpoint.api_key:
        raise BadInput(f"{name} needs credentials: set GOOGLE_API_KEY or GEMINI_API_KEY (or the api_key option)")
    if not endpoint.uses_adc:
        return
    import google.auth

    try:
        google.auth.default(scopes=[_CLOUD_SCOPE])
    except Exception as exc:  # noqa: BLE001 - DefaultCredentialsError, or a malformed credentials file
        raise BadInput(_adc_message(name, endpoint, exc)) from None


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


# ----------------------------------------------------------------------------- request size
# Upper bounds, in bytes of the JSON body the SDK sends (json.dumps, ASCII-escaped).
_PART_BYTES = 96  # the braces, keys and commas around one part, and its video metadata
_FILE_PART_BYTES = 512  # a Files API reference whose URI is not known yet
_CONTENT_BYTES = 48  # one turn: role and parts list
_ESCAPED_CHAR_BYTES = 12  # the most one character can take once JSON-escaped (a surrogate pair)


def _b64(size: int) -> int:
    return 4 * ((size + 2) // 3)


def part_bytes(part: types.Part) -> int:
    """An upper bound on one part's share of the request body: base64 grows inline data by 4/3."""
    size = _PART_BYTES
    if part.text is not None:
        size += len(json.dumps(part.text))
    if part.inline_data is not None:
        size += _b64(len(part.inline_data.data or b"")) + len(part.inline_data.mime_type or "")
    if part.file_data is not None:
        size += len(json.dumps(part.file_data.file_uri or "")) + len(part.file_data.mime_type or "")
    return size


def _config_bytes(record: type) -> int:
    """The generation config: the SDK rewrites the schema (upper-case types, property ordering)."""
    return 2 * len(json.dumps(response_schema(record))) + 512


def _reask_bytes(record: type) -> int:
    """Room for the re-ask turn (the rejected answer and the note), whatever their characters."""
    return _ESCAPED_CHAR_BYTES * reask_chars(record) + 2 * (_PART_BYTES + _CONTENT_BYTES)


def request_bytes(contents: list[types.Content], record: type) -> int:
    """An upper bound on the body of a generateContent request with these contents."""
    parts = sum(part_bytes(p) for c in contents for p in c.parts or [])
    return parts + _CONTENT_BYTES * len(contents) + _config_bytes(record)


def frame_levels(count: int) -> list[tuple[int, int | None]]:
    """(frames per clip, longest side) to try when sampled frames do not fit: what
    ``frames_per_clip`` asks at full size, then smaller frames, then fewer."""
    levels: list[tuple[int, int | None]] = [(count, side) for side in (None, 768, 512, 384, 256)]
    while count > 1:
        count //= 2
        levels.append((count, 256))
    return levels


def _shrink(image: Image, side: int | None) -> Image:
    if side is None or max(image.width, image.height) <= side:
        return image
    scale = side / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return Image(np.asarray(PILImage.fromarray(image.array).resize(size, PILImage.Resampling.LANCZOS)))


class _Frames:
    """Sampled frames of the clips of one request, as PNG, at each level tried (cached). Each count
    of frames is decoded once, keeping only those frames, and shrunk from there for every side."""

    def __init__(self) -> None:
        self._pngs: dict[tuple[int, int, int | None], list[bytes]] = {}
        self._sampled: dict[tuple[int, int], list[Image]] = {}

    def parts(self, clip: Video, count: int, side: int | None) -> list[types.Part]:
        if side is not None and max(clip.width, clip.height) <= side:
            side = None  # already that small: the same frames
        key = (id(clip), count, side)
        if key not in self._pngs:
            if (id(clip), count) not in self._sampled:
                self._sampled[id(clip), count] = sample_frames(clip, count)
            self._pngs[key] = [_shrink(frame, side).to_png() for frame in self._sampled[id(clip), count]]
        pngs = self._pngs[key]
        return [types.Part.from_text(text=f"({len(pngs)} frames sampled in order)")] + [
            types.Part.from_bytes(data=png, mime_type="image/png") for png in pngs
        ]


# ----------------------------------------------------------------------------- Gemini
class GeminiVLM(RoleVLM):
    """Plan, verify, select, judge and critique with a Gemini model and structured output."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        super().__init__("gemini", model, options, _GEMINI_OPTIONS, _classify)
        self.video_fps = options.get("video_fps", 4.0)
        inline_limit = options.get("inline_limit_bytes")
        self.inline_limit = int(inline_limit) if inline_limit is not None else None
        self.request_limit = int(options.get("request_limit_bytes", DEFAULT_REQUEST_LIMIT))
        if self.request_limit <= 0:
            raise BadInput(f"{self.name}: request_limit_bytes must be > 0, got {self.request_limit}")
        self.file_poll_s = float(options.get("file_poll_s", 1.0))
        vertexai = options.get("vertexai", True if options.get("project") or options.get("location") else None)
        self._client, self.endpoint = _client(self.name, options, vertexai=vertexai, timeout_s=self.policy.timeout_s)
        self._aio = PerLoop(lambda: _client(self.name, options, vertexai=vertexai, timeout_s=self.policy.timeout_s)[0])

    def preflight(self) -> None:
        """What can be checked without a network call: the model answers about images and video,
        and the credentials exist. BadInput, one line, otherwise."""
        model = self.model.lower()
        if model.startswith("veo"):
            raise BadInput(f"{self.name} is a video model, not a VLM: use it as the VGM (--vgm veo:{self.model}) "
                           f"and a Gemini model as the VLM (e.g. --vlm gemini:{DEFAULT_GEMINI})")
        if model.startswith(("imagen", "lyria")) or "embedding" in model or model.endswith("-tts"):
            raise BadInput(f"{self.name} does not answer about images and video: use a Gemini model as the VLM "
                           f"(e.g. --vlm gemini:{DEFAULT_GEMINI})")
        check_credentials(self.name, self.endpoint)

    # ----- one call
    async def _arole(self, role: str, request: Any, record: type, media: list[Any]) -> Any:
        async with self.caller.slot():
            deadline = self.caller.deadline()
            uploaded: list[str] = []
            try:
                parts = await self._request_parts(f"{self.name} {role}", prompt_for(request), media, record, deadline,
                                                  uploaded)
                return await aask_validated(lambda retry: self._ask(parts, record, retry, deadline), record,
                                            f"{self.name} {role}")
            finally:
                for name in uploaded:
                    await self._delete(name)

    async def _ask(self, parts: list[types.Part], record: type, retry: tuple[str, str] | None, deadline: float,
                   ) -> tuple[str | None, Usage]:
        contents = [types.Content(role="user", parts=parts)]
        if retry is not None:
            contents += [
                types.Content(role="model", parts=[types.Part.from_text(text=retry[0])]),
                types.Content(role="user", parts=[types.Part.from_text(text=retry[1])]),
            ]
        size = request_bytes(contents, record)
        if size > self.request_limit:  # _request_parts reserved room for the re-ask: a bug if reached
            raise BackendError(f"{self.name}: refusing to send a {size}-byte request, above request_limit_bytes={self.request_limit}")

        def request() -> dict[str, Any]:
            config = types.GenerateContentConfig(
                response_mime_type="application/json",
                response_schema=response_schema(record),
                temperature=self.temperature,
                max_output_tokens=self.max_output_tokens,
                http_options=_http(self.caller.timeout(deadline)),
            )
            return {"model": self.model, "contents": contents, "config": config}

        response = await self.caller.attempt("generate_content", lambda: either(
            lambda: self._client.models.generate_content(**request()),
            lambda: self._aio.call(lambda client: client.aio.models.generate_content(**request()))), deadline)
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
    async def _request_parts(self, what: str, prompt: str, media: list[str | Image | Video], record: type,
                             deadline: float, uploaded: list[str]) -> list[types.Part]:
        """The request's parts, laid out to fit ``request_limit_bytes`` with the re-ask turn.

        Labels and frames go inline. Clips go inline as video while the whole request fits;
        otherwise the largest move first to the Files API (Gemini API) or to sampled frames
        (Vertex), and on Vertex the frames then get smaller and fewer until it fits. Nothing is
        uploaded before the layout fits; if none does, BackendError, and nothing is sent.
        """
        budget = self.request_limit - _config_bytes(record) - _reask_bytes(record) - _CONTENT_BYTES
        pieces: list[list[types.Part] | Video] = [[types.Part.from_text(text=prompt)]]
        for item in media:
            if isinstance(item, Video):
                pieces.append(item)
            elif isinstance(item, Image):
                pieces.append([types.Part.from_bytes(data=item.to_png(), mime_type="image/png")])
            else:
                pieces.append([types.Part.from_text(text=item)])
        clips = {i: piece for i, piece in enumerate(pieces) if isinstance(piece, Video)}
        levels = frame_levels(self.frames_per_clip)
        # how each clip goes: "video" inline, "file" (Files API), or (frames, longest side)
        remote: str | tuple[int, int | None] = levels[0] if self.endpoint.vertexai else "file"
        form = {i: remote if self.inline_limit is not None and len(clip.mp4) > self.inline_limit else "video"
                for i, clip in clips.items()}
        frames = _Frames()

        def size() -> int:
            total = 0
            for i, piece in enumerate(pieces):
                if isinstance(piece, Video):
                    kind = form[i]
                    if kind == "video":
                        total += _PART_BYTES + _b64(len(piece.mp4)) + len("video/mp4")
                    elif kind == "file":
                        total += _FILE_PART_BYTES
                    else:
                        total += sum(part_bytes(p) for p in frames.parts(piece, *kind))
                else:
                    total += sum(part_bytes(p) for p in piece)
            return total

        for i in sorted(clips, key=lambda i: len(clips[i].mp4), reverse=True):
            if size() <= budget:
                break
            form[i] = remote
        for level in levels[1:] if self.endpoint.vertexai else []:
            if size() <= budget:
                break
            form.update({i: level for i in clips if form[i] != "video"})
        needed = size()
        if needed > budget:
            how = "as one small sampled frame" if self.endpoint.vertexai else "in the Files API"
            raise BackendError(
                f"{what}: the request needs about {needed + self.request_limit - budget} bytes even with every clip {how}, "
                f"above request_limit_bytes={self.request_limit}; nothing was sent"
            )
        parts: list[types.Part] = []
        for i, piece in enumerate(pieces):
            if not isinstance(piece, Video):
                parts += piece
            elif form[i] == "video":
                meta = types.VideoMetadata(fps=float(self.video_fps)) if self.video_fps else None
                parts.append(types.Part(inline_data=types.Blob(data=piece.mp4, mime_type="video/mp4"), video_metadata=meta))
            elif form[i] == "file":
                uri = await self._upload(piece.mp4, deadline, uploaded)
                meta = types.VideoMetadata(fps=float(self.video_fps)) if self.video_fps else None
                parts.append(types.Part(file_data=types.FileData(file_uri=uri, mime_type="video/mp4"), video_metadata=meta))
            else:
                parts += frames.parts(piece, *form[i])
        return parts

    async def _upload(self, data: bytes, deadline: float, uploaded: list[str]) -> str:
        """Files API: upload a clip that does not fit in the request, and wait until it is ACTIVE."""
        config = types.UploadFileConfig(mime_type="video/mp4", http_options=_http(self.caller.timeout(deadline)))
        file = await self.caller.attempt("files.upload", lambda: either(
            lambda: self._client.files.upload(file=io.BytesIO(data), config=config),
            lambda: self._aio.call(lambda client: client.aio.files.upload(file=io.BytesIO(data), config=config))), deadline)
        uploaded.append(file.name)
        while str(getattr(file.state, "value", file.state)) == "PROCESSING":
            if time.monotonic() + self.file_poll_s >= deadline:
                raise TransientError(f"{self.name}: uploaded clip still processing at the deadline")
            await sleep(self.file_poll_s)
            file = await self.caller.attempt("files.get", lambda name=file.name: either(
                lambda: self._client.files.get(name=name),
                lambda: self._aio.call(lambda client: client.aio.files.get(name=name))), deadline)
        if str(getattr(file.state, "value", file.state)) == "FAILED":
            raise BackendError(f"{self.name}: the Files API could not process the clip")
        return file.uri

    async def _delete(self, name: str) -> None:
        try:
            await either(lambda: self._client.files.delete(name=name),
                         lambda: self._aio.call(lambda client: client.aio.files.delete(name=name)))
        except Exception:  # noqa: BLE001, S110 - uploaded files expire on their own after 48 h
            pass


# ----------------------------------------------------------------------------- Veo
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
        self._client, self.endpoint = _client(self.name, options, vertexai=True, timeout_s=self.policy.timeout_s)
        self._aio = PerLoop(lambda: _client(self.name, options, vertexai=True, timeout_s=self.policy.timeout_s)[0])

    def __repr__(self) -> str:
        return f"VeoVGM({self.model!r})"

    def preflight(self) -> None:
        """What can be checked without a network call: the model is a Veo model, and the
        credentials exist. BadInput, one line, otherwise."""
        if not self.model.lower().startswith("veo-"):
            if self.model.lower().startswith("gemini"):
                raise BadInput(f"{self.name} is a Gemini model (a VLM), not a video model: use it as the VLM "
                               f"(--vlm gemini:{self.model}) and a Veo model as the VGM (e.g. --vgm veo:{DEFAULT_VEO})")
            raise BadInput(f"{self.name} is not a Veo model: Veo model names start with 'veo-' (e.g. --vgm veo:{DEFAULT_VEO})")
        check_credentials(self.name, self.endpoint)

    def duration_for(self, seconds: float) -> int:
        """The shortest allowed duration that covers ``seconds``, else the longest allowed."""
        return next((d for d in self.durations if d >= seconds - 1e-6), self.durations[-1])

    def billed_seconds(self, seconds: float) -> float:
        """Seconds Veo generates, and bills, for a request of ``seconds`` (see :meth:`duration_for`)."""
        return float(self.duration_for(seconds))

    def estimated_cost(self, usage: dict[str, float]) -> float | None:
        """USD for generated seconds (``video_seconds`` or a trace's ``clip_seconds``)."""
        return estimated_cost(self.model, usage, self.prices)

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        return run_inline(self.agenerate(frame, prompt, seconds=seconds, fps=fps, seed=seed))

    async def agenerate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        """One clip on the SDK's async client, polling with ``asyncio.sleep``: no thread is held while Veo works."""
        async with self.caller.slot():
            deadline = self.caller.deadline()
            operation = await self._submit(frame, prompt, seconds, seed, deadline)
            operation = await self._wait(operation, deadline)
            data = await self._video_bytes(operation, deadline)
        clip = await offload(self._decoded, data)
        self.tally.add(video_seconds=clip.seconds)
        return clip

    def _decoded(self, data: bytes) -> Video:
        try:
            clip = Video(mp4=data, fps=probe_fps(data))
            clip.num_frames  # noqa: B018 - decode now, so a broken file is this call's failure
        except (MediaError, ValueError) as exc:
            raise InvalidOutput(f"{self.name}: the returned video does not decode: {safe_message(exc)}") from None
        return clip

    async def _submit(self, frame: Image, prompt: str, seconds: float, seed: int, deadline: float,
                      ) -> types.GenerateVideosOperation:
        source = types.GenerateVideosSource(prompt=prompt, image=types.Image(image_bytes=frame.to_png(), mime_type="image/png"))

        def request() -> dict[str, Any]:
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
            return {"model": self.model, "source": source, "config": config}

        return await self.caller.attempt("generate_videos", lambda: either(
            lambda: self._client.models.generate_videos(**request()),
            lambda: self._aio.call(lambda client: client.aio.models.generate_videos(**request()))), deadline)

    async def _wait(self, operation: types.GenerateVideosOperation, deadline: float) -> types.GenerateVideosOperation:
        """Poll until the operation is done, reporting the seconds waited (``generating`` events)."""
        started = time.monotonic()
        while not operation.done:
            if time.monotonic() + self.poll_s >= deadline:
                raise TransientError(f"{self.name}: the operation did not finish within deadline_s={self.policy.deadline_s:g}")
            await sleep(self.poll_s)
            operation = await self.caller.attempt("operations.get", lambda op=operation: self._poll(op, deadline), deadline)
            events.report(round(time.monotonic() - started, 1), None, unit="s")
        if operation.error:
            code, message = operation.error.get("code"), str(operation.error.get("message", ""))[:300]
            if any(word in message.lower() for word in ("safety", "responsible ai", "usage guidelines")):
                raise RefusedOutput(f"{self.name}: generation refused: {message}")
            error = TransientError if code in _TRANSIENT_OP_CODES else BackendError
            raise error(f"{self.name}: the operation failed (code {code}): {message}")
        return operation

    def _poll(self, operation: types.GenerateVideosOperation, deadline: float) -> Any:
        config = types.GetOperationConfig(http_options=_http(self.caller.timeout(deadline)))
        return either(lambda: self._client.operations.get(operation, config=config),
                      lambda: self._aio.call(lambda client: client.aio.operations.get(operation, config=config)))

    async def _video_bytes(self, operation: types.GenerateVideosOperation, deadline: float) -> bytes:
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
            return await self.caller.attempt("download", lambda: either(
                lambda: self._download(video.uri, deadline), lambda: self._adownload(video.uri, deadline)), deadline)
        raise BackendError(f"{self.name}: cannot fetch a video stored at {video.uri!r}; leave output storage unset")

    def _download_headers(self, uri: str) -> dict[str, str]:
        """The API key goes in a header, and only to the API's own origin."""
        if self.endpoint.api_key and _origin(uri) == self.endpoint.origin:
            return {"x-goog-api-key": self.endpoint.api_key}
        return {}

    def _download(self, uri: str, deadline: float) -> bytes:
        response = httpx.get(uri, headers=self._download_headers(uri), timeout=self.caller.timeout(deadline),
                             follow_redirects=True)
        response.raise_for_status()
        return response.content

    async def _adownload(self, uri: str, deadline: float) -> bytes:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            response = await client.get(uri, headers=self._download_headers(uri), timeout=self.caller.timeout(deadline))
        response.raise_for_status()
        return response.content


def _durations(model: str) -> tuple[int, ...]:
    prefixes = [p for p in DURATIONS if model.startswith(p)]
    return DURATIONS[max(prefixes, key=len)] if prefixes else DURATIONS["veo-3"]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


__all__ = ["DEFAULT_REQUEST_LIMIT", "DURATIONS", "Endpoint", "GeminiVLM", "VeoVGM", "make_gemini", "make_veo",
           "resolve_endpoint"]
