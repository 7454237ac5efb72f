"""Checks the local backends share before any model call: packages, devices, remote code.

The backends' ``preflight()`` loads everything but the weights (configs, processor, tokenizer, chat
template); what it finds wrong is one :class:`~collabvr.errors.BadInput` line naming the fix, so the
CLI stops with exit 2 before an episode starts, instead of each attempt failing inside it.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from collabvr.errors import BadInput

# transformers' attn_implementation -> (package that provides it, whether it runs on CUDA only)
_ATTN_PACKAGES: dict[str, tuple[str | None, bool]] = {
    "eager": (None, False),
    "sdpa": (None, False),
    "flex_attention": (None, False),
    "flash_attention_2": ("flash_attn", True),
    "flash_attention_3": ("flash_attn_interface", True),
}
_PIP = {"flash_attn": "flash-attn", "flash_attn_interface": "flash-attn (FA3, built from source)", "kernels": "kernels"}


def torchvision_line() -> str:
    """The exact pip line that installs the torchvision built for the installed torch: the same
    minor series (torch 2.x pairs with torchvision 0.(x+15)) from the same wheel index (CPU, CUDA)."""
    import torch

    version, _, local = torch.__version__.partition("+")
    major, minor = (int(p) for p in re.findall(r"\d+", version)[:2])
    pin = f"torchvision=={major - 2}.{minor + 15}.*" if major == 2 else "torchvision"
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    return f"pip install '{pin}'{index}"


def needs_torchvision(exc: BaseException) -> bool:
    """Whether a processor failed to build because torchvision is missing or does not import."""
    return isinstance(exc, ImportError | ModuleNotFoundError) and "torchvision" in str(exc).lower()


def torchvision_error(spec: str, what: str) -> BadInput:
    return BadInput(f"{spec}: {what} needs torchvision, which is not installed (or does not import beside this torch); "
                    f"install the build that matches your torch: {torchvision_line()}")


def check_attn_implementation(name: str, device: str, spec: str) -> None:
    """transformers' ``attn_implementation``: a known kind whose package imports, on a device it runs on."""
    if name.startswith("kernels-community/") or "/" in name:  # a hub kernel, loaded by the kernels package
        package, cuda_only = "kernels", False
    elif name in _ATTN_PACKAGES:
        package, cuda_only = _ATTN_PACKAGES[name]
    else:
        raise BadInput(f"{spec}: attn_implementation must be one of {', '.join(_ATTN_PACKAGES)} or a hub kernel "
                       f"(kernels-community/...), got {name!r}")
    if package and importlib.util.find_spec(package) is None:
        raise BadInput(f"{spec}: attn_implementation={name} needs the {package} package: pip install {_PIP[package]}")
    if cuda_only and not device.startswith("cuda"):
        raise BadInput(f"{spec}: attn_implementation={name} runs on CUDA only; device is {device} (use sdpa)")


# diffusers attention backends whose kernels run on CUDA only (flash-attn, sage, xformers, aiter, and
# PyTorch's cuDNN / flash / memory-efficient SDPA kernels)
_CUDA_ONLY = ("flash", "_flash", "sage", "_sage", "aiter", "xformers", "_native_cudnn", "_native_flash",
              "_native_efficient")


def check_attention_backend(name: str, device: str, dtype: Any, spec: str) -> None:
    """diffusers' ``attention_backend``: a known backend whose package imports (diffusers' own
    requirement check), on a device and in a dtype it runs with."""
    try:
        from diffusers.models import attention_dispatch as dispatch
    except ImportError:
        raise BadInput("attention_backend needs diffusers >= 0.35 (attention dispatch)") from None
    known = [b.value for b in dispatch.AttentionBackendName]
    if name not in known:
        raise BadInput(f"attention_backend must be one of {', '.join(known)}, got {name!r}")
    backend = dispatch.AttentionBackendName(name)
    try:
        dispatch._check_attention_backend_requirements(backend)
    except (RuntimeError, ImportError) as exc:
        raise BadInput(f"{spec}: attention_backend={name}: {exc}") from None
    if name.startswith(_CUDA_ONLY) and not device.startswith("cuda"):
        raise BadInput(f"{spec}: attention_backend={name} runs on CUDA only; device is {device} (leave it unset for SDPA)")
    checks = {getattr(check, "__name__", "") for check in dispatch._AttentionBackendRegistry._constraints.get(backend, [])}
    half = str(dtype).removeprefix("torch.") in ("bfloat16", "float16")
    if checks & {"_check_qkv_dtype_bf16_or_fp16", "_check_qkv_dtype_bf16"} and not half:
        raise BadInput(f"{spec}: attention_backend={name} runs in bfloat16 or float16; dtype is {dtype} (set dtype=bfloat16)")


def check_remote_code(config: dict[str, Any], trust_remote_code: bool, spec: str, what: str) -> None:
    """A checkpoint that ships its own model code (``auto_map``) loads only with trust_remote_code."""
    if config.get("auto_map") and not trust_remote_code:
        raise BadInput(f"{spec}: the checkpoint ships its own {what} code (auto_map); review it, then set the option "
                       "trust_remote_code=true to run it")


__all__ = ["check_attention_backend", "check_attn_implementation", "check_remote_code", "needs_torchvision",
           "torchvision_error", "torchvision_line"]
