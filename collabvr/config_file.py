"""``--config FILE``: context fields and backend options in one TOML or YAML file.

    # run.toml
    vlm = "gemini:gemini-2.5-pro"
    vgm = "veo:veo-3.1-generate-001"
    max_steps = 3

    [vlm_options]
    temperature = 0.2

    [vgm_options]
    resolution = "720p"

Keys are :class:`~collabvr.context.Context` fields; flags given on the command line override them.
Keep API keys in the environment: a key written here works, but the file itself is a secret then.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from collabvr.context import Context
from collabvr.errors import BadInput, register_secret, secret_name


def load_config(path: str | Path) -> dict[str, Any]:
    """The file's context fields, checked against :class:`Context`; BadInput naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read config file {path}: {exc.strerror or exc}") from None
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise BadInput(f"config file {path} must hold a table of context fields, got {type(data).__name__}")
    known = set(Context.field_names())
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInput(f"unknown key(s) in config file {path}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for key in ("vlm_options", "vgm_options"):
        options = data.get(key, {})
        if not isinstance(options, dict):
            raise BadInput(f"{key} in config file {path} must be a table of options, got {type(options).__name__}")
        for name, value in options.items():
            if secret_name(name) and isinstance(value, str):
                register_secret(value)  # redacted from everything recorded, like a key from the environment
    return data


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise BadInput(f"config file {path} is YAML, which needs PyYAML: pip install pyyaml (or use TOML)") from None
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise BadInput(f"config file {path} is not valid YAML: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}") from None
