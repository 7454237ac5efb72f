"""Run settings from a file: the run context's fields and the backends' options, in TOML or YAML.

So a user swaps ``sim`` for ``diffusers:...`` by editing one file, and ``collabvr run`` and
``collabvr bench`` read the same file (``--config FILE``)::

    # collabvr.toml
    vlm = "transformers:Qwen/Qwen2.5-VL-7B-Instruct"
    vgm = "diffusers:Video-Reason/VBVR-Wan2.2"
    max_steps = 4

    [vgm_options]
    offload = "model"
    num_inference_steps = 20

    [vlm_options]
    constrained = true

Keys are the fields of :class:`collabvr.context.Context`; anything else is a BadInput that names
the accepted keys. Command-line flags given explicitly override the file. Keep API keys in the
environment; a key written here is registered as a secret, so nothing recorded shows it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from collabvr.context import Context
from collabvr.errors import BadInput, register_secret, secret_name

_OPTION_TABLES = ("vlm_options", "vgm_options")


def load_config(path: str | Path) -> dict[str, Any]:
    """The settings in ``path`` (``.toml``, ``.yaml`` or ``.yml``) as Context keyword arguments,
    with ``vlm_options`` and ``vgm_options`` always present; values are checked as a Context."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read config file {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"config file {path} is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        data = _yaml(text, path)
    else:
        raise BadInput(f"config file {path} must end in .toml, .yaml or .yml")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"config file {path} must hold a table of settings, not a {type(data).__name__}")
    known = Context.field_names()
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise BadInput(f"config file {path}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(known)}")
    for table in _OPTION_TABLES:
        value = data.setdefault(table, {})
        if not isinstance(value, dict):
            raise BadInput(f"config file {path}: {table} must be a table of options, got {type(value).__name__}")
        for name, option in value.items():
            if secret_name(name) and isinstance(option, str):
                register_secret(option)  # redacted from everything recorded, like a key from the environment
    try:
        Context(**data)
    except TypeError as exc:
        raise BadInput(f"config file {path}: {exc}") from None
    except BadInput as exc:
        raise BadInput(f"config file {path}: {exc}") from None
    return data


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise BadInput(f"config file {path} is YAML, which needs pyyaml: pip install pyyaml (or use TOML)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None


__all__ = ["load_config"]
