"""Prompt templates, one file per VLM role, in ``$name`` placeholders (string.Template)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

ROLES = ("plan", "verify", "select", "judge", "rubric", "critique")  # rubric: the judge role with a rubric


@cache
def load(name: str) -> Template:
    """The template for a role; KeyError naming the known roles if there is none."""
    if name not in ROLES:
        raise KeyError(f"no prompt for role {name!r}; known: {', '.join(ROLES)}")
    return Template(resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """Fill a role's template; every placeholder must be given (KeyError otherwise)."""
    return load(name).substitute({k: str(v) for k, v in values.items()})
