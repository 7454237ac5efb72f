"""The run context: everything a run is configured with that is not state.

This is LangGraph's ``context_schema``: nodes read it through ``runtime.context``. Every field
has a default and a one-line description so LangGraph Studio can render it as a form. The
defaults are the paper's settings.

:class:`Context` is the schema of every method with a plan a person can approve; single inference
and pass@k have none, and their schema, :class:`BaseContext`, does not offer ``approve_plans``.
A context remembers which fields its caller set (:attr:`Context.given`): a resume that sets none
restores the thread's own (see :mod:`collabvr.nodes.pinned`).
"""

from __future__ import annotations

import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

from collabvr.errors import BadInput, scrub


def _f(default: Any, description: str, **kw: Any) -> Any:
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata={"description": description}, **kw)
    return field(default=default, metadata={"description": description}, **kw)


@dataclass(kw_only=True, init=False)
class BaseContext:
    """Backends, budgets and policies of one run of a method without plans to approve."""

    vlm: str = _f("sim", "Vision-language model as 'provider:model', e.g. 'gemini:gemini-2.5-pro' or 'sim'.")
    vgm: str = _f("sim", "Video generation model as 'provider:model', e.g. 'veo:veo-3.1-generate-001' or 'sim'.")
    vlm_options: dict = _f({}, "Extra options for the VLM backend (temperature, base_url, ...).")
    vgm_options: dict = _f({}, "Extra options for the VGM backend (resolution, negative_prompt, ...).")
    max_steps: int = _f(3, "Most steps (accepted clips) per episode; the last step must finish the task.")
    max_attempts: int = _f(3, "Most generation attempts per step, the first one included.")
    first_clip_seconds: float = _f(6.0, "Length of the first step's clip, in seconds.")
    clip_seconds: float = _f(3.0, "Length of every later step's clip, in seconds.")
    fps: int = _f(16, "Frames per second asked of the video model.")
    partial_threshold: float = _f(
        0.2, "Regenerate from the first error instead of from scratch when the good fraction is above this."
    )
    seed: int = _f(0, "Seed of the run: the video model's seeds derive from it.")
    seed_policy: Literal["fixed", "vary"] = _f(
        "fixed", "'fixed': every attempt uses the run seed (as in the paper); 'vary': a new seed per attempt."
    )
    out_dir: str = _f(os.environ.get("COLLABVR_OUT_DIR") or "runs/latest",
                      "Output directory or URL (s3://bucket/prefix, gs://...): artifacts, clips, trace.json, "
                      "final.mp4. Default: $COLLABVR_OUT_DIR, else runs/latest.")
    budget_seconds: float = _f(0.0, "Most VGM clip-seconds per episode; a method stops before exceeding it (0: no limit).")
    k: int = _f(4, "Candidates per pass@k episode.")
    rounds: int = _f(3, "Rounds of the critique and prompt-optimisation baselines.")
    cache_dir: str = _f("", "Directory of the cache of backend calls; empty: no cache.")
    allow_switch: bool = _f(
        False, "A resume whose backends or options differ from the thread's continues with them and records the "
        "switch in state, instead of being refused.")

    def __init__(self, **values: Any) -> None:
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise BadInput(f"unknown context field(s) for {type(self).__name__}: {', '.join(unknown)}; "
                           f"known: {', '.join(known)}")
        for name, spec in known.items():
            value = values[name] if name in values else (
                spec.default if spec.default is not MISSING else spec.default_factory())  # type: ignore[misc]
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_given", frozenset(values))
        self.__post_init__()

    @property
    def given(self) -> frozenset[str]:
        """The fields its caller set; the others hold their defaults."""
        return getattr(self, "_given", frozenset(f.name for f in fields(self)))

    @classmethod
    def of(cls, value: Any) -> Context:
        """The run's context from whatever a caller passed: nothing (the defaults), a dict (its keys must
        be fields: BadInput naming any other), a Context, or another object (:meth:`shared`)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return make_context(None, **value)
        return cls.shared(value)

    @classmethod
    def shared(cls, value: Any) -> Context:
        """The fields a foreign context (a parent graph's own: a dataclass, a pydantic model, a dict)
        shares with this one by name; the rest of it is ignored."""
        names = cls.field_names()
        if isinstance(value, dict):
            found = {k: v for k, v in value.items() if k in names}
        else:
            found = {name: getattr(value, name) for name in names if hasattr(value, name)}
        return cls(**found)

    def limits(self) -> dict[str, Any]:
        """The fields routers need, which ``prepare`` copies into state: routers then read state only,
        so ``update_state``, Studio's state editing and forks work on every edge. Only the fields
        that differ from the defaults are kept, so checkpoints stay small."""
        return {name: getattr(self, name) for name in ROUTING_FIELDS
                if hasattr(self, name) and getattr(self, name) != _DEFAULTS[name]}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fail early, naming the bad field and what it accepts: before a run directory exists and
        before a frame is allocated (an fps of 100000 would ask for hundreds of GiB)."""
        for name, (least, most) in RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
                raise BadInput(f"{name} must be a whole number >= {least} (at most {most}), got {value!r}")
        for name in ("first_clip_seconds", "clip_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value <= 120:
                raise BadInput(f"{name} must be a number of seconds in (0, 120], got {value!r}")
        if not isinstance(self.budget_seconds, int | float) or self.budget_seconds < 0:
            raise BadInput(f"budget_seconds must be >= 0 (0: no limit), got {self.budget_seconds!r}")
        if not 0.0 <= self.partial_threshold <= 1.0:
            raise BadInput(f"partial_threshold must be in [0, 1], got {self.partial_threshold!r}")
        if self.seed_policy not in ("fixed", "vary"):
            raise BadInput(f"seed_policy must be 'fixed' or 'vary', got {self.seed_policy!r}")

    def seconds_for(self, step: int) -> float:
        """Clip length for a 0-based step index."""
        return float(self.first_clip_seconds if step == 0 else self.clip_seconds)

    def affords(self, spent: float, seconds: float) -> bool:
        """Whether a clip of ``seconds`` fits in the clip-seconds budget after ``spent``."""
        return not self.budget_seconds or spent + seconds <= self.budget_seconds + 1e-9

    def seed_for(self, step: int, attempt: int) -> int:
        if self.seed_policy == "fixed":
            return self.seed
        return (self.seed * 1_000_003 + step * 1_009 + attempt) % (2**31)

    def public(self) -> dict[str, Any]:
        """The context as recorded in traces and checkpoints' metadata: secrets masked (:func:`scrub`)."""
        return scrub(asdict(self))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(kw_only=True, init=False)
class Context(BaseContext):
    """Backends, budgets and policies of one CollabVR run (or of a baseline with a plan to approve)."""

    approve_plans: bool = _f(
        False, "Pause after every plan for a person to approve, edit or stop it (interrupt(); needs a checkpointer)."
    )


SEED_MAX = 2**32 - 1  # what every backend takes (Veo's seed is a uint32) and what checkpoints can store
# the whole-number fields and the values they accept: counts bounded far above any real run, so a
# typo never reaches a checkpoint (64-bit integers) or an allocation (frames per second)
RANGES = {"max_steps": (1, 1000), "max_attempts": (1, 1000), "fps": (1, 120), "k": (1, 1000), "rounds": (1, 1000),
          "seed": (0, SEED_MAX)}

ROUTING_FIELDS = ("max_steps", "max_attempts", "first_clip_seconds", "clip_seconds", "budget_seconds", "k", "rounds",
                  "seed", "seed_policy", "approve_plans")
# the fields that make an episode what it is: a thread keeps them from its first node to its last
PINNED_FIELDS = ("vlm", "vgm", "vlm_options", "vgm_options", "max_steps", "max_attempts", "first_clip_seconds",
                 "clip_seconds", "fps", "partial_threshold", "seed", "seed_policy", "budget_seconds", "k", "rounds")


_DEFAULTS = {f.name: f.default for f in fields(Context)}


def make_context(context: Context | None = None, **overrides: Any) -> Context:
    """A validated context from an optional base plus keyword overrides (None values ignored)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(Context.field_names()))
    if unknown:
        raise BadInput(f"unknown option(s): {', '.join(unknown)}")
    if context is None:
        return Context(**overrides)
    context = Context.of(context)
    given = {name: getattr(context, name) for name in context.given}
    return Context(**{**given, **overrides})

