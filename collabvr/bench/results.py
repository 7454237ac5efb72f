"""``results.jsonl``: one line per finished episode, appended safely, read back tolerantly.

Below the bench runner (which writes it) and the report (which reads it). On an object store
(``s3://...``), which has no append, each line rewrites the file whole, in one atomic put.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path
from typing import Any

from collabvr.location import RunPath, is_remote, path_of, write_atomic

RESULTS = "results.jsonl"


def read_results(path: str | RunPath) -> list[dict[str, Any]]:
    """The finished episodes in a results file, the last line per episode winning.

    A torn last line (a run killed mid-write) and any other unparseable line are skipped
    (:func:`unreadable` names them, for a warning). A path ending in ``.gz`` is read through gzip
    (the published runs in docs/results/runs/ are stored so).
    """
    latest: dict[tuple, dict[str, Any]] = {}
    for _, record in _lines(path):
        if record is not None:
            latest[result_key(record)] = record
    return list(latest.values())


def unreadable(path: str | Path) -> list[int]:
    """The numbers (from 1) of the lines of a results file that :func:`read_results` skips."""
    return [number for number, record in _lines(path) if record is None]


def _lines(path: str | Path) -> list[tuple[int, dict[str, Any] | None]]:
    """(line number, its record, or None when it cannot be read) for each non-empty line."""
    try:
        text = gzip.open(path, "rt").read() if str(path).endswith(".gz") else path_of(path).read_text()
    except FileNotFoundError:
        return []
    out: list[tuple[int, dict[str, Any] | None]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            result_key(record)
        except (json.JSONDecodeError, KeyError, TypeError):
            record = None
        out.append((number, record))
    return out


def read_run(path: str | Path) -> list[dict[str, Any]]:
    """The finished episodes of a bench directory, or of a results file given directly (``.jsonl``,
    or ``.jsonl.gz`` as the published runs in docs/results/runs/ are stored)."""
    path = Path(path)
    return read_results(path / RESULTS if path.is_dir() else path)


def result_key(r: dict[str, Any]) -> tuple[str, str, str, int, str | None]:
    """Which episode a line is: method, family, difficulty, seed, and the benchmark sample (None for sim)."""
    return (r["method"], r["family"], r["difficulty"], r["seed"], r.get("sample"))


class ResultsFile:
    """Appends one JSON line per finished episode: under a lock, flushed and fsynced (a local file),
    or the whole file put again (an object store)."""

    def __init__(self, path: RunPath) -> None:
        self.path = path
        self.lock = threading.Lock()
        if is_remote(path):
            self._lines = path.read_bytes() if path.exists() else b""
            self._lines = self._lines[: self._lines.rfind(b"\n") + 1]  # a torn tail is dropped
        else:
            _drop_torn_tail(path)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        if is_remote(self.path):
            with self.lock:
                self._lines += line.encode()
                write_atomic(self.path, self._lines)
            return
        with self.lock, open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline, so the next append starts clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
