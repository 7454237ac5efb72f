"""A content-addressed cache of VGM and VLM calls.

The key is the backend spec and options, the inputs' content hashes, the prompt, the seed,
seconds, fps and the request's other fields. Reruns, resumed runs and ablations that share a
prefix never pay twice for the same clip. A hit still counts as compute for the method that asked
(nodes record it as a call, and separately as a cache hit), so comparisons stay fair.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from collabvr.artifacts import ArtifactStore
from collabvr.errors import scrub
from collabvr.media import Image, Video


def fingerprint(value: Any) -> Any:
    """A JSON-able stand-in for a request field: media become content hashes."""
    if isinstance(value, Image):
        return {"image": hashlib.sha256(value.array.tobytes() + repr(value.array.shape).encode()).hexdigest()}
    if isinstance(value, Video):
        return {"video": hashlib.sha256(value.mp4).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: fingerprint(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [fingerprint(v) for v in value]
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in sorted(value.items())}
    return value


class CallCache:
    """Cache entries are small JSON files; clips live in the cache's own artifact store."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.store = ArtifactStore(self.root / "artifacts")

    @staticmethod
    def key(*parts: Any) -> str:
        blob = json.dumps(fingerprint(list(parts)), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / "calls" / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{id(value)}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)

    def vgm_key(self, spec: str, options: dict, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> str:
        return self.key("vgm", spec, scrub(options), frame, prompt, seconds, fps, seed)

    def get_clip(self, key: str) -> Video | None:
        """The cached clip under ``key``, or None."""
        entry = self.get(key)
        return self.store.load_video(entry) if entry is not None and self.store.exists(entry) else None

    def put_clip(self, key: str, video: Video) -> None:
        self.put(key, self.store.put_video(video).model_dump(mode="json"))

    def vlm_key(self, role: str, spec: str, options: dict, request: Any) -> str:
        return self.key("vlm", role, spec, scrub(options), request)

    def get_record(self, key: str, expected: type[BaseModel]) -> Any | None:
        """The cached record under ``key``, or None. Only valid records are ever cached; failures never are."""
        entry = self.get(key)
        return expected.model_validate(entry) if entry is not None else None

    def put_record(self, key: str, record: BaseModel) -> None:
        self.put(key, record.model_dump(mode="json"))


@lru_cache(maxsize=16)
def cache_at(root: str) -> CallCache:
    return CallCache(root)
