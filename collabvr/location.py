"""Where a run's files live: a local directory or an fsspec URL (``s3://bucket/prefix``, ``gs://``, ``memory://``).

The artifact store, the run directory of ``collabvr run --out`` and the benchmark directory of
``collabvr bench --out`` take either. A local directory stays a :class:`pathlib.Path`; a URL is a
``universal_pathlib`` path with the same API (``/``, ``read_text``, ``write_bytes``, ``exists``,
``glob``), so one code path writes both. What a URL's filesystem cannot hold (SQLite checkpoints,
the call cache, the frame shown at an approval prompt) goes to :func:`local_dir`, a directory of the
user's cache: nothing else of a remote run is written to the local disk.

Credentials and endpoints are fsspec's and the SDK's own (for S3: ``AWS_*`` variables, the shared
config files, ``AWS_ENDPOINT_URL`` for an S3-compatible server).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import fsspec
from upath import UPath

from collabvr.errors import BadInput

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(//)?")
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}

RunPath = Path | UPath


def location(where: str | os.PathLike) -> str:
    """An absolute URL for a directory given as a path or a URL: ``file:///abs/dir`` for a local path
    (relative ones against the working directory), the URL itself otherwise. A URL that went through
    ``pathlib.Path`` (``s3:/bucket``, one slash) gets its second slash back."""
    text = str(where) if isinstance(where, UPath) else os.fspath(where)
    match = _URL.match(text)
    if match and len(match.group(1)) > 1:  # not a Windows drive letter
        scheme = match.group(1).lower()
        rest = text[match.end():].lstrip("/")
        if scheme == "file":
            return "file://" + str(Path("/" + rest))
        return f"{scheme}://{rest}".rstrip("/")
    return "file://" + str(Path(text).expanduser().resolve())  # not percent-quoted: fsspec reads it as written


def is_remote(where: str | os.PathLike) -> bool:
    """Whether a directory given as a path or URL is on a filesystem other than the local one."""
    return not location(where).startswith("file://")


def local_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL; None for any other filesystem."""
    return Path(url[len("file://"):]) if url.startswith("file://") else None


def join(url: str, *parts: str) -> str:
    """``url`` with path parts appended, ``/``-separated on every filesystem."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts if p)])


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path in it) of a URL; BadInput naming the extra to install when its
    filesystem's package is missing (``s3fs`` for s3://...)."""
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        scheme = url.split(":", 1)[0]
        extra = _EXTRAS.get(scheme)
        hint = f"pip install 'collabvr[{extra}]'" if extra else f"install fsspec's package for {scheme}://"
        raise BadInput(f"{url}: {exc}; {hint}") from None
    except ValueError as exc:  # an unknown protocol
        raise BadInput(f"{url}: {exc}") from None


def path_of(where: str | os.PathLike) -> RunPath:
    """The directory as a path object: a :class:`Path` when local, a universal path for a URL."""
    if isinstance(where, UPath | Path):
        return where
    url = location(where)
    local = local_path(url)
    if local is not None:
        return Path(where)  # as given: a relative path stays relative for messages
    filesystem(url)  # BadInput now if its package is missing
    return UPath(url)


def local_dir(where: str | os.PathLike) -> Path:
    """Where the local-only files of a run go: the directory itself when it is local; for a URL, a
    directory of the user's cache (``$XDG_CACHE_HOME/collabvr/runs/...``, else ``~/.cache/...``)
    named after it, so a resume on this machine finds them again."""
    url = location(where)
    local = local_path(url)
    if local is not None:
        return local
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "collabvr" / "runs"
    scheme, rest = url.split("://", 1)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", rest)[-60:]
    return cache / f"{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def write_atomic(where: str | os.PathLike, data: bytes) -> None:
    """Write bytes so no reader ever sees part of them: a temp file and a rename on a local disk;
    one put on an object store (whose puts are atomic)."""
    url = location(where)
    path = local_path(url)
    if path is None:
        fs, target = filesystem(url)
        fs.pipe_file(target, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
