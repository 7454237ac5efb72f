"""Resolve "provider:model" spec strings to backend instances.

Built-in providers are imported lazily, so the core installs without their SDKs. Third-party
packages add providers through the ``collabvr.backends`` entry-point group: the entry point's
name is the provider, its value a factory ``make(role, model, options) -> backend`` where role is
"vlm" or "vgm". Instances are cached per (role, spec, options), so heavy local models load once
per process.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Literal

from collabvr.errors import BadInput

Role = Literal["vlm", "vgm"]
Factory = Callable[[Role, str, dict[str, Any]], Any]

# provider -> "module:function" of its factory; imported on first use
_BUILTIN: dict[str, str] = {
    "sim": "collabvr.backends.sim:make",
    "gemini": "collabvr.backends.google:make",
    "veo": "collabvr.backends.google:make",
    "openai": "collabvr.backends.openai:make",
    "still": "collabvr.backends.reference:make_still",  # holds the first frame: the do-nothing floor
    "groundtruth": "collabvr.backends.reference:make_groundtruth",  # replays the sample's reference video
}
_registered: dict[str, Factory] = {}
_cache: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def register(provider: str, factory: Factory) -> None:
    """Register (or replace) a provider in this process; clears its cached instances."""
    _registered[provider] = factory
    with _lock:
        for key in [k for k in _cache if k[1].split(":", 1)[0] == provider]:
            del _cache[key]


def parse_spec(spec: str) -> tuple[str, str]:
    """Split "provider:model" (model may be empty: "sim") and validate the form."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadInput(f"backend spec must be a non-empty 'provider:model' string, got {spec!r}")
    provider, _, model = spec.strip().partition(":")
    if not provider.replace("_", "").replace("-", "").isalnum():
        raise BadInput(f"bad backend spec {spec!r}: expected 'provider:model'")
    return provider, model


def known_providers() -> list[str]:
    names = set(_BUILTIN) | set(_registered)
    names |= {ep.name for ep in entry_points(group="collabvr.backends")}
    return sorted(names)


def factory(provider: str) -> Factory:
    """The factory a provider name resolves to: registered, entry point, or built in."""
    if provider in _registered:
        return _registered[provider]
    for ep in entry_points(group="collabvr.backends"):
        if ep.name == provider:
            return ep.load()
    if provider in _BUILTIN:
        module, _, name = _BUILTIN[provider].partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            raise BadInput(
                f"backend provider {provider!r} needs an optional dependency that is not installed ({exc.name}); "
                f"see docs/backends.md"
            ) from exc
    raise BadInput(f"unknown backend provider {provider!r}; known providers: {', '.join(known_providers())}")


def resolve(role: Role, spec: str, options: dict[str, Any] | None = None) -> Any:
    """The backend instance for ``spec`` in ``role`` ("vlm" or "vgm"), built once and cached."""
    provider, model = parse_spec(spec)
    options = dict(options or {})
    key = (role, spec, json.dumps(options, sort_keys=True, default=str))
    with _lock:
        if key in _cache:
            return _cache[key]
    backend = factory(provider)(role, model, options)
    if backend is None:
        raise BadInput(f"backend provider {provider!r} offers no {role.upper()}")
    with _lock:
        return _cache.setdefault(key, backend)


def resolve_vlm(spec: str, options: dict[str, Any] | None = None) -> Any:
    return resolve("vlm", spec, options)


def resolve_vgm(spec: str, options: dict[str, Any] | None = None) -> Any:
    return resolve("vgm", spec, options)
