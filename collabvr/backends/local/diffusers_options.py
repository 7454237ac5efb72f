"""The diffusers VGM's options: parsed, checked and split into the two kinds that matter.

- **Load options** change the loaded pipeline (its weights, hooks or compiled code): dtype, device,
  offload, VAE tiling and slicing, the attention backend, the pipeline class, LoRA adapters,
  ``compile``, ``enable_cache``. They are part of the load-once key: two backends that differ in
  one of them hold two pipelines.
- **Call options** are arguments of one ``pipe(...)`` call (steps, guidance, the model cards'
  recommended extras such as ``guidance_scale_2`` or LTX's ``decode_timestep``): backends that
  differ only in them share one pipeline.

The pass-through call options (:data:`PASSTHROUGH`) go to the pipeline exactly as given; a pipeline
class whose ``__call__`` does not take one refuses it at construction, naming the class.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collabvr.backends.local import runtime
from collabvr.errors import BadInput

OFFLOAD = ("none", "model", "sequential", "group")
DEFAULTS = {"num_inference_steps": 20, "guidance_scale": 5.0}  # the paper's settings


def number(value: Any, name: str, kind: type = float, minimum: float | None = None, maximum: float | None = None) -> Any:
    """``value`` as a number of ``kind`` within bounds, or one BadInput naming the option."""
    try:
        if isinstance(value, bool):
            raise TypeError
        result = kind(value)
        if kind is int and float(value) != result:
            raise ValueError
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a {'whole number' if kind is int else 'number'}, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise BadInput(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and result > maximum:
        raise BadInput(f"{name} must be <= {maximum:g}, got {value!r}")
    return result


def _scalar_or_list(value: Any, name: str) -> float | tuple[float, ...]:
    if isinstance(value, list | tuple):
        return tuple(number(v, name) for v in value)
    return number(value, name)


def _timesteps(value: Any, name: str) -> tuple[float, ...]:
    steps = tuple(number(v, name, minimum=0) for v in (value if isinstance(value, list | tuple) else [value]))
    if not steps or any(a <= b for a, b in zip(steps, steps[1:], strict=False)):
        raise BadInput(f"{name} must be a non-empty list of decreasing timesteps (e.g. [1000, 993, 987, 981]), got {value!r}")
    return steps


# option -> parser; each goes to the pipeline's __call__ under its own name, where the class takes it
PASSTHROUGH: dict[str, Callable[[Any, str], Any]] = {
    "guidance_scale_2": lambda v, n: number(v, n, minimum=0),  # Wan 2.2 A14B: CFG of the low-noise expert
    "decode_timestep": _scalar_or_list,  # LTX 0.9.1+: the timestep the VAE decodes at
    "decode_noise_scale": _scalar_or_list,  # LTX: noise mixed in at the decode timestep
    "image_cond_noise_scale": lambda v, n: number(v, n, minimum=0),  # LTXCondition: noise on the conditioning latents
    "guidance_rescale": lambda v, n: number(v, n, minimum=0, maximum=1),  # LTX
    "timesteps": _timesteps,  # custom schedule (distilled LTX checkpoints; CogVideoX)
    "use_dynamic_cfg": lambda v, n: runtime.flag(v, n),  # CogVideoX: the cosine CFG schedule its card recommends
}


@dataclass(frozen=True)
class Lora:
    """One adapter for ``load_lora_weights``: a directory, file or hub id, and its scale."""

    path: str
    scale: float = 1.0
    weight_name: str | None = None
    transformer_2: bool = False  # Wan 2.2 A14B: load into the low-noise expert instead


def loras(value: Any) -> tuple[Lora, ...]:
    """``lora`` given as a path, a ``{"path", "scale", "weight_name", "transformer_2"}`` object, or a list of them."""
    if value in (None, "", []):
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    parsed: list[Lora] = []
    for item in items:
        if isinstance(item, str) and item.strip():
            parsed.append(Lora(item.strip()))
        elif isinstance(item, dict) and isinstance(item.get("path"), str) and item["path"].strip():
            unknown = set(item) - {"path", "scale", "weight_name", "transformer_2"}
            if unknown:
                raise BadInput(f"lora: unknown field(s) {', '.join(sorted(unknown))}; accepted: path, scale, weight_name, "
                               "transformer_2")
            parsed.append(Lora(item["path"].strip(), number(item.get("scale", 1.0), "lora scale"),
                               item.get("weight_name"), runtime.flag(item.get("transformer_2", False), "lora transformer_2")))
        else:
            raise BadInput(f"lora must be a path or hub id, an object with a path (and scale, weight_name, transformer_2), "
                           f"or a list of them; got {item!r}")
    return tuple(parsed)


_COMPILE_KEYS = {"mode", "fullgraph", "dynamic", "backend"}


def compile_settings(value: Any) -> tuple[tuple[str, Any], ...] | None:
    """``compile``: true (regional ``torch.compile`` of the transformer's repeated blocks with
    ``fullgraph=True``, as diffusers recommends), false, or an object of ``torch.compile`` arguments."""
    if isinstance(value, dict):
        unknown = set(value) - _COMPILE_KEYS
        if unknown:
            raise BadInput(f"compile: unknown field(s) {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(_COMPILE_KEYS))}")
        return tuple(sorted({"fullgraph": True, **value}.items()))
    return (("fullgraph", True),) if runtime.flag(value, "compile") else None


# enable_cache's "type" -> the diffusers config class (only those the installed diffusers has are offered)
CACHE_TYPES = {
    "first_block": "FirstBlockCacheConfig", "faster": "FasterCacheConfig", "taylorseer": "TaylorSeerCacheConfig",
    "pyramid_attention_broadcast": "PyramidAttentionBroadcastConfig", "mag": "MagCacheConfig",
}


def cache_settings(value: Any) -> tuple[tuple[str, Any], ...] | None:
    """``enable_cache``: ``{"type": "first_block", "threshold": 0.05}`` or another of diffusers' cache
    configs with its fields; checked by building the config now."""
    if value in (None, False, "", {}):
        return None
    if not isinstance(value, dict) or "type" not in value:
        raise BadInput(f"enable_cache must be an object with a type ({', '.join(CACHE_TYPES)}) and its config fields, "
                       f"e.g. {{\"type\": \"first_block\", \"threshold\": 0.05}}; got {value!r}")
    config_class(str(value["type"]))(**_cache_fields(value))  # a wrong field fails here, not at load
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in value.items()))


def config_class(kind: str) -> Any:
    import diffusers

    available = {k: getattr(diffusers, v) for k, v in CACHE_TYPES.items() if hasattr(diffusers, v)}
    if kind not in available:
        raise BadInput(f"enable_cache type must be one of {', '.join(available) or '(none in this diffusers)'}, got {kind!r}")
    return available[kind]


def _cache_fields(value: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in value.items() if k != "type"}
    try:
        signature = inspect.signature(config_class(str(value["type"])))
    except (TypeError, ValueError):
        return fields
    unknown = set(fields) - set(signature.parameters)
    if unknown:
        accepted = ", ".join(p for p in signature.parameters if p != "current_timestep_callback")
        raise BadInput(f"enable_cache {value['type']}: unknown field(s) {', '.join(sorted(unknown))}; accepted: {accepted}")
    return fields


def cache_config(settings: tuple[tuple[str, Any], ...], pipe: Any) -> Any:
    """A fresh config object (one per transformer: hooks keep state in it) wired to ``pipe``."""
    value = dict(settings)
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in _cache_fields(value).items()}
    cls = config_class(str(value["type"]))
    if "current_timestep_callback" in inspect.signature(cls).parameters:
        fields["current_timestep_callback"] = lambda: pipe.current_timestep
    return cls(**fields)


def check_call_options(pipeline_class: str, given: dict[str, Any], spec: str) -> None:
    """Refuse a pass-through option that ``pipeline_class.__call__`` does not take."""
    if not given:
        return
    import diffusers

    accepted = set(inspect.signature(getattr(diffusers, pipeline_class).__call__).parameters)
    refused = sorted(set(given) - accepted)
    if refused:
        raise BadInput(f"{spec}: {pipeline_class} does not take {', '.join(refused)} (options of other families)")


__all__ = ["CACHE_TYPES", "DEFAULTS", "OFFLOAD", "PASSTHROUGH", "Lora", "cache_config", "cache_settings",
           "check_call_options", "compile_settings", "loras", "number"]
