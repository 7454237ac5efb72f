"""One module per method; each exports an uncompiled builder and a compiled default."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from langgraph.graph import StateGraph

from collabvr.errors import BadInput

# method name -> "module:builder function"
METHODS: dict[str, str] = {
    "collabvr": "collabvr.graph.collabvr:build_collabvr",
}


def builder_for(method: str) -> Callable[[], StateGraph]:
    """The builder function of a method; BadInput naming the known methods otherwise."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    module, _, name = METHODS[method].partition(":")
    return getattr(import_module(module), name)
