"""Resolve "provider:model" spec strings to backend instances.

Built-in providers are imported lazily, so the core installs without their SDKs. Third-party
packages add providers through the ``collabvr.backends`` entry-point group: the entry point's
name is the provider, its value a factory ``make(role, model, options) -> backend`` where role is
"vlm" or "vgm". Instances are cached per (role, spec, options), so heavy local models load once
per process; :func:`close_all` closes them (a backend's ``close()``, if it has one, frees its
model), and so does replacing a provider with :func:`register`.

A provider whose backends hold a heavy local model says so with ``needs_gpu = True`` on its factory
(the built-in ``diffusers`` and ``transformers`` are); the Ray executor then keeps its backends in
one actor per GPU instead of building them in every episode's process (docs/scaling.md).
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Literal

from collabvr.errors import BadInput

Role = Literal["vlm", "vgm"]
Factory = Callable[[Role, str, dict[str, Any]], Any]

# provider -> "module:function" of its factory; imported on first use
_BUILTIN: dict[str, str] = {
    "sim": "collabvr.backends.sim:make",
    "gemini": "collabvr.backends.google:make_gemini",
    "veo": "collabvr.backends.google:make_veo",
    "openai": "collabvr.backends.openai:make",
    "diffusers": "collabvr.backends.local.diffusers_vgm:make",
    "transformers": "collabvr.backends.local.transformers_vlm:make",
    "still": "collabvr.backends.reference:make_still",  # holds the first frame: the do-nothing floor
    "groundtruth": "collabvr.backends.reference:make_groundtruth",  # replays the sample's reference video
}
# the extra of pyproject.toml that installs each built-in provider's SDK
_EXTRAS: dict[str, str] = {"gemini": "google", "veo": "google", "openai": "openai", "diffusers": "local",
                           "transformers": "local"}
# the roles each built-in provider offers, to say which to use when a spec names the wrong one
_BUILTIN_ROLES: dict[str, tuple[Role, ...]] = {"sim": ("vlm", "vgm"), "gemini": ("vlm",), "veo": ("vgm",), "openai": ("vlm",)}
# built-in providers with heavy local models (their factories' modules import torch: not imported to ask)
_GPU = {"diffusers", "transformers"}
_EXAMPLES: dict[Role, str] = {"vlm": "gemini:gemini-2.5-pro", "vgm": "veo:veo-3.1-generate-001"}
_registered: dict[str, Factory] = {}
_cache: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def register(provider: str, factory: Factory) -> None:
    """Register (or replace) a provider in this process; closes and drops its cached instances."""
    _registered[provider] = factory
    with _lock:
        dropped = [_cache.pop(k) for k in [k for k in _cache if k[1].split(":", 1)[0] == provider]]
    _close(dropped)


@contextmanager
def overriding(factories: dict[str, Factory]) -> Iterator[None]:
    """Within the block these providers resolve through these factories; their own come back after
    (each change closes and drops the providers' cached instances, as :func:`register` does)."""
    originals = {provider: factory(provider) for provider in factories}
    for provider, make in factories.items():
        register(provider, make)
    try:
        yield
    finally:
        for provider, original in originals.items():
            register(provider, original)


def close(role: Role, spec: str, options: dict[str, Any] | None = None) -> bool:
    """Close and drop one cached backend; False when none was cached under these arguments."""
    key = (role, spec, json.dumps(dict(options or {}), sort_keys=True, default=str))
    with _lock:
        backend = _cache.pop(key, None)
    _close([backend] if backend is not None else [])
    return backend is not None


def close_all() -> int:
    """Close and drop every cached backend, and free the local models they loaded; returns how
    many backends were dropped. The next :func:`resolve` builds afresh."""
    with _lock:
        dropped = list(_cache.values())
        _cache.clear()
    _close(dropped)
    local = sys.modules.get("collabvr.backends.local.runtime")
    if local is not None:  # models whose backends were dropped without being closed
        local.release()
    return len(dropped)


def _close(backends: list[Any]) -> None:
    """Call each backend's ``close()``; a failing close must not stop the others."""
    for backend in backends:
        method = getattr(backend, "close", None)
        if callable(method):
            try:
                method()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass


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
            extra = _EXTRAS.get(provider, provider)
            raise BadInput(
                f"backend provider {provider!r} needs an optional dependency that is not installed ({exc.name}): "
                f"pip install 'collabvr[{extra}]' (docs/backends.md)"
            ) from exc
    raise BadInput(f"unknown backend provider {provider!r}; known providers: {', '.join(known_providers())}")


def needs_gpu(provider: str) -> bool:
    """Whether the provider's backends hold a heavy local model: built-in ``diffusers`` and
    ``transformers``, or a factory (registered or an entry point) declaring ``needs_gpu = True``."""
    if provider in _GPU and provider not in _registered:
        return True
    if provider in _BUILTIN and provider not in _registered:
        return False
    return bool(getattr(factory(provider), "needs_gpu", False))


def in_process_only(provider: str) -> bool:
    """Whether the provider exists only through :func:`register` in this process, so that other
    processes (Ray workers) cannot find it."""
    return provider in _registered and provider not in _BUILTIN and provider not in {
        ep.name for ep in entry_points(group="collabvr.backends")}


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
        raise BadInput(_wrong_role(role, spec, provider))
    with _lock:
        return _cache.setdefault(key, backend)


def _wrong_role(role: Role, spec: str, provider: str) -> str:
    """One line: the spec, that its provider offers no such role, and what to use instead."""
    other: Role = "vgm" if role == "vlm" else "vlm"
    offers = _BUILTIN_ROLES.get(provider, ())
    hint = f"; {spec} is a {other.upper()}: use it as --{other}" if other in offers else ""
    builtin = ", ".join(sorted(p for p, roles in _BUILTIN_ROLES.items() if role in roles))
    return (f"--{role} {spec}: backend provider {provider!r} offers no {role.upper()}{hint}; "
            f"{role.upper()} providers: {builtin} (e.g. --{role} {_EXAMPLES[role]})")


def resolve_vlm(spec: str, options: dict[str, Any] | None = None) -> Any:
    return resolve("vlm", spec, options)


def resolve_vgm(spec: str, options: dict[str, Any] | None = None) -> Any:
    return resolve("vgm", spec, options)
