"""A fake Gemini API / Vertex AI endpoint, speaking the REST wire format google-genai sends.

Routes (any API version prefix; Vertex paths may carry ``projects/*/locations/*`` and
``publishers/google``):
- ``POST .../models/{model}:generateContent``            -> endpoint "generateContent"
- ``POST .../models/{model}:predictLongRunning``         -> "predictLongRunning" (Veo submit)
- ``POST .../models/{model}:fetchPredictOperation``      -> "fetchPredictOperation" (Veo poll on Vertex)
- ``GET  .../operations/{id}``                           -> "getOperation" (Gemini API poll form)
- ``POST /upload/{version}/files`` and ``/upload-session/{id}`` -> "uploadStart", "uploadData" (Files API)
- ``GET|DELETE /{version}/files/{id}``                   -> "getFile", "deleteFile"
- ``GET /download/{id}``                                 -> "download" (a video's URI)
"""

from __future__ import annotations

import base64
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from collabvr.media import Image, Video
from tests.fakes.brain import Brain, colour_clip, role_of
from tests.fakes.server import FakeServer, Reply, Request, error

_MODEL = r"/(?P<version>v1\w*)/(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?models/(?P<model>[^/:]+)"


def gemini_answer(answer: Any, *, prompt_tokens: int = 100, output_tokens: int = 20, finish: str = "STOP",
                  fault: str | None = None) -> Reply:
    """A generateContent reply whose text is ``answer`` (JSON-encoded unless already a string)."""
    import json

    text = answer if isinstance(answer, str) else json.dumps(answer)
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                          "totalTokenCount": prompt_tokens + output_tokens},
        "modelVersion": "fake",
    }
    return Reply(200, body, fault=fault)


@dataclass
class Op:
    """How one Veo operation ends. ``polls``: polls that still say not done (-1: never done)."""

    polls: int = 1
    video: bytes | None = None  # None: made by the server's ``clip`` default
    as_uri: bool = False
    filtered: list[str] | None = None  # RAI reasons: the video is withheld
    error: dict | None = None
    fault: str | None = None
    name: str = ""
    request: dict = field(default_factory=dict)


# The real API's cap on a request body; above it, it answers 400 INVALID_ARGUMENT.
API_BODY_LIMIT = 20 * 2**20


class FakeGoogle(FakeServer):
    """Gemini generateContent (answers from ``brain``), Veo operations, Files API, downloads.

    ``max_body_bytes`` enforces a request size cap as the real API does (its cap is
    :data:`API_BODY_LIMIT`): a larger body (Files API uploads aside) gets the API's 400.
    """

    def __init__(self, brain: Brain | None = None, clip: Video | None = None, *, max_body_bytes: int | None = None) -> None:
        super().__init__()
        self.max_body_bytes = max_body_bytes
        self.brain = brain or Brain()
        self.clip = clip or colour_clip((0, 200, 0))
        self.ops: dict[str, Op] = {}
        self.op_plans: deque[Op] = deque()
        self.files: dict[str, bytes] = {}
        self.downloads: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self.route("POST", _MODEL + r":generateContent", "generateContent", self._generate_content)
        self.route("POST", _MODEL + r":predictLongRunning", "predictLongRunning", self._submit)
        self.route("POST", _MODEL + r":fetchPredictOperation", "fetchPredictOperation", self._fetch)
        self.route("GET", r"/v1\w*/(?P<name>.*/operations/[^/]+)", "getOperation", self._get_operation)
        self.route("POST", r"/upload/v1\w*/files", "uploadStart", self._upload_start)
        self.route("POST", r"/upload-session/(?P<id>\w+)", "uploadData", self._upload_data)
        self.route("GET", r"/v1\w*/files/(?P<id>\w+)", "getFile", self._get_file)
        self.route("DELETE", r"/v1\w*/files/(?P<id>\w+)", "deleteFile", lambda r: Reply(200, {}))
        self.route("GET", r"/download/(?P<id>\w+)", "download", lambda r: Reply(200, self.downloads[r.match["id"]]))

    def answer(self, request: Request) -> Reply:
        if self.max_body_bytes is not None and request.endpoint != "uploadData" and len(request.body) > self.max_body_bytes:
            message = f"Request payload size exceeds the limit: {self.max_body_bytes} bytes."
            return error(400, message, fault="too_large")
        return super().answer(request)

    def plan_ops(self, *ops: Op) -> None:
        """Queue how the next Veo operations end."""
        with self.lock:
            self.op_plans.extend(ops)

    # ----- Gemini
    def decode(self, request: Request) -> tuple[str, list[Image | Video]]:
        """The first text part and the media parts (decoded) of a generateContent request."""
        texts, media = [], []
        for content in request.json["contents"]:
            for part in content.get("parts", []):
                if "text" in part:
                    texts.append(part["text"])
                elif "inlineData" in part:
                    blob = part["inlineData"]  # the SDK sends mime_type here, the REST docs mimeType
                    data = base64.urlsafe_b64decode(blob["data"].replace("+", "-").replace("/", "_"))  # SDK: urlsafe
                    mime = blob.get("mimeType") or blob.get("mime_type")
                    media.append(Video(mp4=data, fps=8) if mime == "video/mp4" else Image.from_png(data))
                elif "fileData" in part:
                    uri = part["fileData"].get("fileUri") or part["fileData"].get("file_uri")
                    file_id = uri.rsplit("/", 1)[-1]
                    media.append(Video(mp4=self.files[file_id], fps=8))
        return (texts[0] if texts else ""), media

    def _generate_content(self, request: Request) -> Reply:
        text, media = self.decode(request)
        return gemini_answer(self.brain.answer(role_of(text), text, media))

    # ----- Veo
    def _submit(self, request: Request) -> Reply:
        op_id = f"op{next(self._ids)}"
        name = f"projects/fake/locations/us-central1/publishers/google/models/{request.match['model']}/operations/{op_id}"
        with self.lock:
            op = self.op_plans.popleft() if self.op_plans else Op()
        op.name, op.request = name, request.json
        self.ops[name] = op
        return Reply(200, {"name": name}, fault=op.fault)

    def _fetch(self, request: Request) -> Reply:
        return self._state(request.json["operationName"])

    def _get_operation(self, request: Request) -> Reply:
        return self._state(request.match["name"])

    def _state(self, name: str) -> Reply:
        op = self.ops[name]
        if op.polls != 0:
            op.polls = op.polls - 1 if op.polls > 0 else -1
            return Reply(200, {"name": name, "done": False}, fault=op.fault)
        body: dict[str, Any] = {"name": name, "done": True}
        if op.error is not None:
            body["error"] = op.error
        elif op.filtered is not None:
            body["response"] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                                "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": op.filtered}
        else:
            data = op.video if op.video is not None else self.clip.mp4
            if op.as_uri:
                key = f"v{next(self._ids)}"
                self.downloads[key] = data
                video = {"gcsUri": f"{self.url}/download/{key}", "mimeType": "video/mp4"}
            else:
                video = {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"}
            body["response"] = {"@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                                "raiMediaFilteredCount": 0, "videos": [video]}
        return Reply(200, body, fault=op.fault)

    # ----- Files API
    def _upload_start(self, request: Request) -> Reply:
        file_id = f"f{next(self._ids)}"
        headers = {"x-goog-upload-url": f"{self.url}/upload-session/{file_id}", "x-goog-upload-status": "active"}
        return Reply(200, {}, headers)

    def _upload_data(self, request: Request) -> Reply:
        """One chunk of a resumable upload (the SDK sends 8 MiB chunks); the last one says finalize."""
        file_id = request.match["id"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        offset = int(headers.get("x-goog-upload-offset", 0))
        with self.lock:
            data = self.files.get(file_id, b"")
            if offset != len(data):
                return Reply(400, {"error": {"code": 400, "message": f"offset {offset}, have {len(data)} bytes"}},
                             {"x-goog-upload-status": "final"}, fault="bad_offset")
            self.files[file_id] = data + request.body
        if "finalize" not in headers.get("x-goog-upload-command", ""):
            return Reply(200, {}, {"x-goog-upload-status": "active"})
        size = len(self.files[file_id])
        file = {"name": f"files/{file_id}", "uri": f"{self.url}/v1beta/files/{file_id}", "mimeType": "video/mp4",
                "sizeBytes": str(size), "state": "PROCESSING"}
        return Reply(200, {"file": file}, {"x-goog-upload-status": "final"})

    def _get_file(self, request: Request) -> Reply:
        file_id = request.match["id"]
        return Reply(200, {"name": f"files/{file_id}", "uri": f"{self.url}/v1beta/files/{file_id}",
                           "mimeType": "video/mp4", "state": "ACTIVE"})
