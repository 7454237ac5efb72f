"""What the local backends share: checkpoint lookup, loaded-once models, one lock per device.

A 14B pipeline takes minutes to load, so a model is built once per process and kept here, keyed
by its checkpoint and the options that change the weights (dtype, device, offload...), never by
per-call options (steps, guidance, temperature). Backend instances hold only the key and ask for
the model on every call, so two instances with different per-call options share one model, and
releasing a key really frees it (a closed backend reloads on its next call).

Calls are serialized per device: a GPU runs one denoising loop or one decode at a time, and a VLM
call waits while a clip renders on the same device. Nodes are synchronous; LangGraph runs them in
a thread pool under its async APIs, and the bench runs episodes with ``asyncio.to_thread``, so a
long call holds a worker thread and this lock, never the event loop. Async callers of a backend
use ``agenerate`` (VGM) or ``acall(role, request)`` (VLM), which run the call in a worker thread.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collabvr.errors import BadInput, CollabVRError, ModelUnavailable, redact

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Checkpoint:
    """Where a model is: ``source`` goes to ``from_pretrained``; ``files`` is a local directory
    holding at least the marker file (the snapshot directory for a hub id)."""

    source: str
    files: Path
    hub: bool

    def read_json(self, name: str) -> dict[str, Any]:
        return _read(self.files / name, self.source)

    def optional_json(self, name: str) -> dict[str, Any]:
        """``name`` (e.g. ``transformer/config.json``) read as JSON, fetched for a hub id that has not
        cached it yet (from the cache alone when offline); {} when the checkpoint has no such file."""
        path = self.files / name
        if not path.is_file() and self.hub:
            from huggingface_hub import hf_hub_download

            try:
                path = Path(hf_hub_download(self.source, name, local_files_only=offline()))
            except Exception:  # noqa: BLE001 - not there: the caller goes on without it
                return {}
        return _read(path, self.source) if path.is_file() else {}


def _read(path: Path, source: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read {path.name} of {source}: {exc}") from None


def offline() -> bool:
    """Whether the hub may not be asked (``HF_HUB_OFFLINE``), read now rather than at import."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def find_checkpoint(provider: str, model: str, marker: str) -> Checkpoint:
    """A local directory holding ``marker``, or a hub id whose ``marker`` is in the local cache
    (or, when the hub may be asked, can be fetched). Anything else is one clear BadInput."""
    spec = f"{provider}:{model}"
    if not model.strip():
        raise BadInput(f"{provider} needs a checkpoint: '{provider}:<hub id or local directory>'")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / marker).is_file():
            raise BadInput(f"{spec}: the directory has no {marker}; it is not a {provider} checkpoint")
        return Checkpoint(str(path.resolve()), path.resolve(), hub=False)
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise BadInput(f"{spec}: no such checkpoint directory")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    local_only = offline()
    try:
        try:
            found = hf_hub_download(model, marker, local_files_only=True)
        except HFValidationError:
            raise
        except Exception:  # noqa: BLE001 - not cached: ask the hub unless offline
            if local_only:
                raise
            found = hf_hub_download(model, marker)
    except Exception as exc:  # noqa: BLE001 - every way of not finding it is the user's to fix
        where = "in the Hugging Face cache (HF_HUB_OFFLINE is set)" if local_only else "in the cache or on the hub"
        raise BadInput(f"{spec}: not a local directory with a {marker}, nor a hub checkpoint {where} "
                       f"({type(exc).__name__})") from None
    return Checkpoint(model, Path(found).parent, hub=True)


def check_options(options: dict[str, Any], known: set[str], name: str) -> None:
    """Fail early on a misspelt option, naming the ones the backend accepts."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadInput(f"unknown option(s) for {name}: {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")


def flag(value: Any, name: str) -> bool:
    """A boolean option given as a bool or as text (``--vgm-option vae_tiling=true``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise BadInput(f"{name} must be true or false, got {value!r}")


# -- devices and dtypes --------------------------------------------------------------------------


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def parse_dtype(name: Any, device: str) -> Any:
    """The torch dtype for an option value; ``None`` picks bfloat16 on accelerators, float32 on CPU."""
    import torch

    if name is None or name == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    value = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise BadInput(f"dtype must be a floating torch dtype such as bfloat16, float16 or float32, got {name!r}")
    return value


def check_device(name: Any) -> str:
    """A torch device string the machine has; BadInput otherwise."""
    import torch

    device = str(name or default_device())
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise BadInput(f"device must be a torch device such as cuda, cuda:1 or cpu, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device {device!r} asked for, but this torch sees no CUDA device")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise BadInput(f"device {device!r} asked for, but this machine has {count} CUDA device{'s' * (count != 1)} "
                       f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}); drop the index or pick one of them")
    mps = getattr(torch.backends, "mps", None)
    if kind == "mps" and not (mps is not None and mps.is_available()):
        raise BadInput(f"device {device!r} asked for, but this torch sees no MPS device")
    return device


# -- loaded once -------------------------------------------------------------------------------

_models: dict[Hashable, Any] = {}
_failed: dict[Hashable, ModelUnavailable] = {}
_loading: dict[Hashable, threading.Lock] = {}
_device_locks: dict[str, threading.RLock] = {}
_lock = threading.Lock()
loads: Counter[Hashable] = Counter()  # constructions per key in this process (benchmarks, tests)
load_seconds: dict[Hashable, float] = {}


def device_lock(device: str) -> threading.RLock:
    """The one lock of a device ("cuda" and "cuda:0" are the same GPU); model calls hold it."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    with _lock:
        return _device_locks.setdefault(str(dev), threading.RLock())


def model(key: Hashable, build: Callable[[], Any]) -> Any:
    """The model under ``key``, built by ``build()`` the first time (once, even when several
    threads ask at the same moment).

    A build that fails is remembered: every later call raises the same
    :class:`~collabvr.errors.ModelUnavailable` at once instead of reloading minutes of weights to
    fail again, until :func:`release` drops the key (``registry.close_all()``, a backend's close)."""
    with _lock:
        if key in _models:
            return _models[key]
        if key in _failed:
            raise _failed[key]
        gate = _loading.setdefault(key, threading.Lock())
    with gate:
        with _lock:
            if key in _models:
                return _models[key]
            if key in _failed:
                raise _failed[key]
        started = time.perf_counter()
        try:
            built = build()
        except Exception as exc:  # noqa: BLE001 - whatever stopped the build stops every later one too
            message = str(exc) if isinstance(exc, CollabVRError) else f"{type(exc).__name__}: {exc}"
            failed = ModelUnavailable(redact(message))
            with _lock:
                _failed[key] = failed
            free_memory()  # what the half-built model held
            raise failed from None
        with _lock:
            _models[key] = built
            loads[key] += 1
            load_seconds[key] = time.perf_counter() - started
        return built


def failed(key: Hashable) -> ModelUnavailable | None:
    """The remembered failure of ``key``'s build, if it failed."""
    with _lock:
        return _failed.get(key)


def is_loaded(key: Hashable) -> bool:
    with _lock:
        return key in _models


def release(key: Hashable | None = None) -> int:
    """Drop one model (or all, with None) and give its memory back; returns how many were dropped."""
    with _lock:
        keys = list(_models) if key is None else [k for k in _models if k == key]
        dropped = [_models.pop(k) for k in keys]
        for k in list(_failed) if key is None else [k for k in _failed if k == key]:
            del _failed[k]  # a released key may be built again (the user fixed what failed)
    for item in dropped:
        for name in ("remove_all_hooks", "close"):  # offload hooks hold on to modules; then the item's own close
            method = getattr(item, name, None)
            if callable(method):
                method()
    del dropped
    if keys:
        free_memory()
    return len(keys)


def free_memory() -> None:
    """Collect garbage and return cached accelerator memory to the driver."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        mps.empty_cache()
