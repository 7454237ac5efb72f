"""Content-addressed artifact store: graph state holds small refs, the bytes live on disk."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collabvr.media import Image, Video

_EXTENSIONS = {"image/png": "png", "video/mp4": "mp4", "application/json": "json"}


class ArtifactError(LookupError):
    """An artifact is missing from the store or its bytes do not match its hash."""


class ArtifactRef(BaseModel):
    """Small, JSON-serialisable handle to stored bytes; this is what graph state carries."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uri: str
    mime: str
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    fps: float | None = None
    seconds: float | None = None


def ref_json(ref: ArtifactRef) -> dict[str, Any]:
    """The compact dict form the graph state holds (unset fields left out)."""
    return ref.model_dump(mode="json", exclude_none=True)


def as_ref(ref: ArtifactRef | dict[str, Any]) -> ArtifactRef:
    """Accept either a ref or its model_dump() dict (the form state holds)."""
    return ref if isinstance(ref, ArtifactRef) else ArtifactRef.model_validate(ref)


def _relative_path(sha: str, mime: str) -> str:
    """Where content with this hash and type lives, relative to the store root."""
    try:
        ext = _EXTENSIONS[mime]
    except KeyError:
        raise ValueError(f"unsupported mime type {mime!r}; expected one of {sorted(_EXTENSIONS)}") from None
    return f"{sha[:2]}/{sha}.{ext}"


class ArtifactStore:
    """Content-addressed files under a root dir: <root>/<sha[:2]>/<sha>.<ext>. Writing the same content twice is a no-op."""

    def __init__(self, root: str | os.PathLike, *, cache_bytes: int = 512 * 2**20) -> None:
        self.root = Path(root)
        # Decoded clips, most recent last: a clip just generated is verified without decoding it again.
        self._videos: OrderedDict[str, Video] = OrderedDict()
        self._cache_limit = cache_bytes
        self._cache_lock = threading.Lock()

    def put_bytes(self, data: bytes, *, mime: str, **meta: Any) -> ArtifactRef:
        """Store bytes atomically (temp file + rename) so concurrent writers never see partial files."""
        sha = hashlib.sha256(data).hexdigest()
        uri = _relative_path(sha, mime)
        ref = ArtifactRef(sha256=sha, uri=uri, mime=mime, **meta)
        target = self.root / uri
        if not target.exists():
            self._write_atomic(target, data)
        return ref

    @staticmethod
    def _write_atomic(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_image(self, image: Image) -> ArtifactRef:
        return self.put_bytes(image.to_png(), mime="image/png", width=image.width, height=image.height)

    def put_video(self, video: Video) -> ArtifactRef:
        """Store the clip's MP4 and record its shape and timing for consumers that never decode it."""
        ref = self.put_bytes(
            video.mp4,
            mime="video/mp4",
            width=video.width,
            height=video.height,
            frames=video.num_frames,
            fps=video.fps,
            seconds=video.seconds,
        )
        # Remember the stored bytes, not the caller's frames: H.264 is lossy, and every reader, in this
        # process or another, must see the same pixels (a mid-motion frame can read either way). Only
        # a clip its Video keeps decoded is worth remembering; a larger one is read again when asked.
        if video.small:
            self._remember(ref.sha256, video if video.decodes_stored else Video(
                mp4=video.mp4, fps=video.fps, num_frames=ref.frames, width=ref.width, height=ref.height))
        return ref

    def _remember(self, sha: str, video: Video) -> None:
        with self._cache_lock:
            self._videos[sha] = video
            self._videos.move_to_end(sha)
            total = sum(v.nbytes for v in self._videos.values())
            while total > self._cache_limit and len(self._videos) > 1:
                _, dropped = self._videos.popitem(last=False)
                total -= dropped.nbytes

    def path(self, ref: ArtifactRef | dict[str, Any]) -> Path:
        """On-disk location, derived from the hash so a tampered uri cannot escape the root."""
        ref = as_ref(ref)
        return self.root / _relative_path(ref.sha256, ref.mime)

    def get_bytes(self, ref: ArtifactRef | dict[str, Any]) -> bytes:
        """Read and verify the stored bytes against the ref's hash."""
        ref = as_ref(ref)
        path = self.path(ref)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"artifact {ref.sha256} missing at {path}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            raise ArtifactError(f"artifact {ref.sha256} at {path} is corrupt (content hash {actual})")
        return data

    def put_json(self, data: Any) -> ArtifactRef:
        """Structured records too large for graph state (e.g. a finished step's attempt log)."""
        return self.put_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), mime="application/json")

    def load_json(self, ref: ArtifactRef | dict[str, Any]) -> Any:
        return json.loads(self.get_bytes(ref))

    def load_image(self, ref: ArtifactRef | dict[str, Any]) -> Image:
        return Image.from_png(self.get_bytes(ref))

    def load_video(self, ref: ArtifactRef | dict[str, Any]) -> Video:
        """The clip: from the in-memory cache when this process made or read it recently, else a
        handle that reads the stored bytes (verified) only when, and as far as, pixels are needed."""
        ref = as_ref(ref)
        if ref.fps is None:
            raise ArtifactError(f"artifact {ref.sha256} has no fps; is it a video?")
        with self._cache_lock:
            cached = self._videos.get(ref.sha256)
        if cached is not None:
            return cached
        video = Video(opener=lambda: self.get_bytes(ref), fps=ref.fps, num_frames=ref.frames, width=ref.width,
                      height=ref.height)
        if video.small:
            self._remember(ref.sha256, video)
        return video

    def exists(self, ref: ArtifactRef | dict[str, Any]) -> bool:
        return self.path(ref).is_file()

    def export(self, ref: ArtifactRef | dict[str, Any], dest: str | os.PathLike) -> Path:
        """Write a verified copy to dest, e.g. a run's final.mp4.

        A copy, not a hard link: a user editing the exported file must not corrupt the store.
        """
        data = self.get_bytes(ref)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return dest
