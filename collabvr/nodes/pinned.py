"""The context pinned to a thread: an episode keeps its backends, options, budgets and artifact root.

``prepare`` records them in state (``pinned``: the fields of :data:`~collabvr.context.PINNED_FIELDS`
that differ from the defaults, options passed through :func:`~collabvr.errors.scrub`, the run's
output location and artifact root as absolute URLs). Every later node runs with the context this
module resolves from what the caller passed now:

* nothing (no context, an empty one, a Context that sets no field), the usual resume: the pinned
  one, restored (a secret recorded as ``***`` comes from the environment again);
* a context that sets a pinned field to another value: refused, one line naming the field, unless
  it sets ``allow_switch``; then the episode continues with it and ``switches`` records the change;
* anything else: the pinned context with the fields the caller set over it.

What the caller passed is read as LangGraph and the Agent Server hand it over: the run's context
(collabvr's own, or a parent graph's object or dict, of which only the fields shared by name count),
else the ``configurable`` keys of the run's config that are context fields, as the server reads them.
"""

from __future__ import annotations

from typing import Any

from collabvr.context import PINNED_FIELDS, BaseContext, Context
from collabvr.errors import BadInput, scrub
from collabvr.location import join, location
from collabvr.rundir import ARTIFACTS

_DEFAULTS = {name: scrub(getattr(Context(), name)) for name in PINNED_FIELDS}


def pin(ctx: Context) -> dict[str, Any]:
    """What state records of a context: the pinned fields that differ from the defaults (scrubbed),
    the output location and the artifact root."""
    pinned = {name: scrub(getattr(ctx, name)) for name in PINNED_FIELDS}
    out = location(ctx.out_dir)
    return {**{k: v for k, v in pinned.items() if v != _DEFAULTS[k]}, "out_dir": out, "artifacts": join(out, ARTIFACTS)}


def restore(pinned: dict[str, Any]) -> Context:
    """The context a thread was pinned to; secrets recorded as ``***`` are left out (the environment's)."""
    values = {k: v for k, v in pinned.items() if k in PINNED_FIELDS or k == "out_dir"}
    for key in ("vlm_options", "vgm_options"):
        if key in values:
            values[key] = {k: v for k, v in values[key].items() if v != "***"}
    return Context(**values)


def asked(raw: Any, configurable: dict[str, Any] | None = None) -> Context | None:
    """The context a caller passed, as a Context; None when it passed none (or an empty one)."""
    if raw is None or raw == {}:
        names = set(Context.field_names())
        found = {k: v for k, v in (configurable or {}).items() if k in names}
        return Context(**found) if found else None
    if isinstance(raw, Context):
        return raw
    if isinstance(raw, BaseContext):  # a method without plans: its own schema
        return Context(**{name: getattr(raw, name) for name in raw.given})
    return Context.shared(raw)  # a parent graph's own context, or a dict of it


def _value(ctx: Context, name: str) -> Any:
    return location(ctx.out_dir) if name == "out_dir" else _comparable(name, scrub(getattr(ctx, name)))


def _comparable(name: str, value: Any) -> Any:
    """A pinned field as resumes compare it: options without their secrets (``***``), which are
    credentials, not part of the episode, and are never recorded to compare against."""
    if name.endswith("_options") and isinstance(value, dict):
        return {k: v for k, v in value.items() if v != "***"}
    return value


def resolve(pinned: dict[str, Any] | None, raw: Any, configurable: dict[str, Any] | None = None,
            ) -> tuple[Context, dict[str, Any]]:
    """(the context a node runs with, the state update that records a switch: usually none).

    ``pinned`` is the state's; None before ``prepare`` pins one."""
    ctx = asked(raw, configurable)
    if not pinned:
        return absolute(ctx or Context()), {}
    base = restore(pinned)
    if ctx is None or not ctx.given:
        return base, {}
    changed = {}
    for name in sorted(ctx.given & {*PINNED_FIELDS, "out_dir"}):
        before = _comparable(name, pinned.get(name, _DEFAULTS.get(name)))
        if _value(ctx, name) != before:
            changed[name] = [before, _value(ctx, name)]
    merged = Context(**{**{n: getattr(base, n) for n in base.given}, **{n: getattr(ctx, n) for n in ctx.given}})
    if not changed:
        return absolute(merged), {}
    if not merged.allow_switch:
        name, (before, now) = next(iter(changed.items()))
        more = f" (and {', '.join(list(changed)[1:])})" if len(changed) > 1 else ""
        raise BadInput(f"{name}: this thread's episode runs with {before!r}, the resume asked for {now!r}{more}; "
                       "resume with the same context or none (it is restored), or set allow_switch to switch")
    return absolute(merged), {"pinned": pin(merged), "switches": [{"fields": changed}]}


def absolute(ctx: Context) -> Context:
    """The context with ``out_dir`` as an absolute URL, so nodes never resolve a relative path (which
    reads the working directory: a blocking call on the event loop)."""
    return Context(**{**{n: getattr(ctx, n) for n in ctx.given}, "out_dir": location(ctx.out_dir)})
