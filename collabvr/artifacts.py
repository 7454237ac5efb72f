"""Content-addressed artifact store on any filesystem: graph state holds small refs, the bytes live elsewhere.

The store's root is a local directory (``file://``, the default) or any fsspec URL: ``s3://bucket/prefix``,
``gs://bucket/prefix``, ``memory://name``. Content with hash ``H`` and type ``.ext`` lives at
``<root>/<H[:2]>/<H>.<ext>``, and a ref's ``uri`` is that absolute URL, so a ref means the same in
every process and on every machine that reaches the root: Ray workers on several nodes, two Agent
Server replicas, a container restarted. Reads never follow a ref's ``uri``: the location is derived
again from the hash under this store's root and the bytes are checked against it, so a tampered
ref can neither escape the root nor pass off other bytes.

Every store a process opens is remembered (:func:`opened`), so the Agent Server's artifact route
(:mod:`collabvr.routes`) serves by hash the stores that the runs it served wrote, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from collabvr.location import filesystem, join, local_path, location, write_atomic
from collabvr.media import Image, Video

EXTENSIONS = {"image/png": "png", "video/mp4": "mp4", "application/json": "json"}
MIMES = {ext: mime for mime, ext in EXTENSIONS.items()}
ROUTE = "/artifacts"  # the Agent Server route serving artifacts by hash: ROUTE/<sha256>.<ext>


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
        ext = EXTENSIONS[mime]
    except KeyError:
        raise ValueError(f"unsupported mime type {mime!r}; expected one of {sorted(EXTENSIONS)}") from None
    return f"{sha[:2]}/{sha}.{ext}"


def public_url(ref: ArtifactRef | dict[str, Any] | None) -> str | None:
    """The artifact's path on the Agent Server's route (``/artifacts/<sha256>.<ext>``): a remote client
    fetches it from the server it talks to. None for no ref."""
    if not ref:
        return None
    ref = as_ref(ref)
    return f"{ROUTE}/{_relative_path(ref.sha256, ref.mime).split('/', 1)[1]}"


_opened: dict[str, ArtifactStore] = {}
_opened_lock = threading.Lock()


class _DecodedClips:
    """Clips this process made or read recently, most recent last, for every store at once: a clip just
    generated is verified without decoding it again. One budget for the process, not one per store: a
    long sweep opens a store per run directory, and a budget per store grew the process by gigabytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._clips: OrderedDict[tuple[str, str], Video] = OrderedDict()
        self._held = 0  # bytes held by the clips as they were put (a Video's nbytes only grows once read)
        self._sizes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Video | None:
        with self._lock:
            video = self._clips.get(key)
            if video is not None:
                self._clips.move_to_end(key)
            return video

    def put(self, key: tuple[str, str], video: Video) -> None:
        with self._lock:
            self._held -= self._sizes.pop(key, 0)
            self._clips[key] = video
            self._clips.move_to_end(key)
            self._sizes[key] = size = max(video.nbytes, video.decoded_nbytes or 0)
            self._held += size
            while self._held > self.limit and len(self._clips) > 1:
                dropped, _ = self._clips.popitem(last=False)
                self._held -= self._sizes.pop(dropped)


_DECODED = _DecodedClips(512 * 2**20)


def opened() -> list[ArtifactStore]:
    """Every store this process has opened, oldest first."""
    with _opened_lock:
        return list(_opened.values())


class ArtifactStore:
    """Content-addressed files under a root (a path or an fsspec URL): <root>/<sha[:2]>/<sha>.<ext>.
    Writing the same content twice is a no-op."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.url = location(root)
        self.fs, self._base = filesystem(self.url)
        with _opened_lock:
            _opened.setdefault(self.url, self)

    @property
    def root(self) -> Path | None:
        """The root as a local path; None when the store is on another filesystem (see :attr:`url`)."""
        return local_path(self.url)

    def uri(self, ref: ArtifactRef | dict[str, Any]) -> str:
        """The absolute URL of the ref's bytes in this store, derived from its hash (not its ``uri``)."""
        ref = as_ref(ref)
        return join(self.url, _relative_path(ref.sha256, ref.mime))

    def _target(self, sha: str, mime: str) -> str:
        return f"{self._base.rstrip('/')}/{_relative_path(sha, mime)}"

    def put_bytes(self, data: bytes, *, mime: str, **meta: Any) -> ArtifactRef:
        """Store bytes atomically (see :func:`write_atomic`) so concurrent writers never see partial files."""
        sha = hashlib.sha256(data).hexdigest()
        uri = join(self.url, _relative_path(sha, mime))
        ref = ArtifactRef(sha256=sha, uri=uri, mime=mime, **meta)
        if not self.fs.exists(self._target(sha, mime)):
            write_atomic(uri, data)
        return ref

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
        _DECODED.put((self.url, sha), video)

    def path(self, ref: ArtifactRef | dict[str, Any]) -> Path:
        """On-disk location of a local store, derived from the hash so a tampered uri cannot escape the
        root. A store on another filesystem has none: use :meth:`uri` or :meth:`open`."""
        root = self.root
        if root is None:
            raise ArtifactError(f"the store at {self.url} is not on this machine's disk; use its uri() or open()")
        ref = as_ref(ref)
        return root / _relative_path(ref.sha256, ref.mime)

    def open(self, ref: ArtifactRef | dict[str, Any]) -> IO[bytes]:
        """A binary file object of the stored bytes (not verified: :meth:`get_bytes` verifies)."""
        ref = as_ref(ref)
        try:
            return self.fs.open(self._target(ref.sha256, ref.mime), "rb")
        except OSError as exc:
            raise ArtifactError(f"artifact {ref.sha256} missing at {self.uri(ref)}: {exc}") from exc

    def get_bytes(self, ref: ArtifactRef | dict[str, Any]) -> bytes:
        """Read and verify the stored bytes against the ref's hash."""
        ref = as_ref(ref)
        try:
            data = self.fs.cat_file(self._target(ref.sha256, ref.mime))
        except (OSError, ValueError) as exc:  # FileNotFoundError, or a store that is not there at all
            raise ArtifactError(f"artifact {ref.sha256} missing at {self.uri(ref)}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            raise ArtifactError(f"artifact {ref.sha256} at {self.uri(ref)} is corrupt (content hash {actual})")
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
        cached = _DECODED.get((self.url, ref.sha256))
        if cached is not None:
            return cached
        video = Video(opener=lambda: self.get_bytes(ref), fps=ref.fps, num_frames=ref.frames, width=ref.width,
                      height=ref.height)
        if video.small:
            self._remember(ref.sha256, video)
        return video

    def exists(self, ref: ArtifactRef | dict[str, Any]) -> bool:
        ref = as_ref(ref)
        return bool(self.fs.exists(self._target(ref.sha256, ref.mime)))

    def find(self, sha: str, ext: str) -> bytes | None:
        """The verified bytes stored under this hash and extension, or None: what the HTTP route serves."""
        if ext not in MIMES or not re.fullmatch(r"[0-9a-f]{64}", sha):
            return None
        try:
            return self.get_bytes(ArtifactRef(sha256=sha, uri="", mime=MIMES[ext]))
        except ArtifactError:
            return None

    def export(self, ref: ArtifactRef | dict[str, Any], dest: str | os.PathLike) -> str | Path:
        """Write a verified copy to ``dest`` (a path or a URL), e.g. a run's final.mp4.

        A copy, not a hard link: a user editing the exported file must not corrupt the store.
        Returns ``dest`` as given (a Path stays a Path).
        """
        write_atomic(dest, self.get_bytes(ref))
        return dest
