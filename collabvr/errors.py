"""Typed failures.

A backend failure never becomes an accept: nodes turn every exception a backend raises into a
failed attempt whose ``kind`` says what happened. User mistakes raise :class:`BadInput`, which the
CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import os
import re
from typing import Any


class CollabVRError(Exception):
    """Base class for errors this package raises on purpose."""


class BadInput(CollabVRError, ValueError):
    """The caller asked for something that cannot work (unknown task, bad budget, unreadable image...)."""


class BackendError(CollabVRError):
    """A backend call failed. ``kind`` is recorded in the failed attempt."""

    kind = "backend_error"


class TransientError(BackendError):
    """Worth retrying: rate limits, 5xx, timeouts."""

    kind = "transient"


class RefusedOutput(BackendError):
    """The backend withheld its output (safety filter, refusal)."""

    kind = "refused"


class InvalidOutput(BackendError):
    """The backend answered, but the answer could not be parsed or validated."""

    kind = "invalid_output"


class ModelUnavailable(BackendError):
    """A local model could not be built. The failure is remembered for the process (no attempt
    reloads minutes of weights to fail again), so the episode ends at the first such failure."""

    kind = "load_failed"


class UnsupportedTask(BackendError, BadInput):
    """The backend cannot work on this task at all (e.g. the sim backend on a user image)."""

    kind = "unsupported_task"


class Stopped(KeyboardInterrupt):
    """An episode asked to stop (Ctrl-C in a bench) after the node that was running: not a failure and
    not a result; its checkpoint continues it when the same command runs again. A KeyboardInterrupt,
    so no ``except Exception`` records it as an error."""


_SECRET_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "COLLABVR_API_KEY", "LANGSMITH_API_KEY",
               "HF_TOKEN")
_KEYLIKE = re.compile(r"(?i)(key=|bearer\s+|api[_-]?key[\"':= ]+)([A-Za-z0-9_\-\.]{8,})")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"']+@")  # scheme://user:password@host
# option and field names that hold secrets: api_key, key, access_token, client_secret, password, ...
# (not counters such as input_tokens)
_SECRET_NAME = re.compile(r"(?i)(^|[_-])(api_?key|key|token|secret|password|passwd|credentials?|auth|authorization)$")
_registered_secrets: set[str] = set()
# A key's value is searched for in free text only when it looks like a key: long enough not to occur
# in a path or a prompt by chance ("sk-test", "bench", a folder name). Shorter values are still masked
# wherever they stand under a secret's name (:func:`scrub`). Real API keys are 20 to 200 characters.
KEY_MIN = 12
MASK = "***"


def key_like(value: str) -> bool:
    """Whether a secret's value is long enough, and free of spaces, to be looked for in any text."""
    return len(value) >= KEY_MIN and not any(c.isspace() for c in value)


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` strips it from anything we record or show."""
    if value and key_like(value):
        _registered_secrets.add(value)


def redact(text: str) -> str:
    """Remove API keys from text that may reach a trace, a log, a checkpoint or the terminal."""
    secrets = set(_registered_secrets)
    secrets.update(v for k in _SECRET_ENV if key_like(v := os.environ.get(k, "")))
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    return _KEYLIKE.sub(lambda m: m.group(1) + MASK, text)


def unmasked(value: str, what: str) -> str:
    """``value``, read back from a file we wrote, to be used again as input; BadInput when redaction
    masked part of it (it contained a key's value), so it is never used as a wrong path."""
    if MASK in value:
        raise BadInput(f"{what} was recorded as {value!r}: part of it equals an API key's value and was masked "
                       f"when it was written; give the path again (or rename it) and run the command that wrote it again")
    return value


def secret_name(name: str) -> bool:
    """Whether an option or field of this name holds a secret (``api_key``, ``auth_token``...)."""
    return bool(_SECRET_NAME.search(name))


def scrub(value: Any) -> Any:
    """A copy of JSON-like data fit to record anywhere: values under secret-like names become
    ``"***"``, and every string is :func:`redact`-ed (registered keys, URL credentials, key=...).
    The one redaction every writer uses: traces, bench.json, summary.json, results.jsonl, reports."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and secret_name(k) and v not in (None, "") else scrub(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def failure(exc: BaseException) -> dict:
    """The JSON record of a failed backend call."""
    kind = getattr(exc, "kind", None) or "error"
    return {"kind": kind, "type": type(exc).__name__, "message": redact(str(exc))[:500]}
