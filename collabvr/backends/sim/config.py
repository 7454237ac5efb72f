"""The simulator's error model and its presets. docs/simulator.md states the same numbers.

These were fixed before any method was compared, and must not be tuned to favour one. Every
assumption of the model is a field here (a "knob"), with the default that reproduces the clips
and verdicts of the published results; docs/simulator.md#knobs says what each one does and which
setting is least favourable to CollabVR.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from collabvr.errors import BadInput


@dataclass(frozen=True)
class VGMConfig:
    """How the simulated video model executes (and fails to execute) a prompt."""

    frames_per_move: int = 4  # a move takes 4 frames: 4 moves per second at 16 fps
    drift_base: float = 0.04  # probability that the first move of a clip is a different legal move
    drift_growth: float = 0.03  # added for every move already made in the clip (long-horizon drift)
    drift_max: float = 0.9
    violation_rate: float = 0.20  # probability per clip of one physics violation at a random move
    correction_factor: float = 0.5  # both rates are multiplied by this when the prompt carries a Correction
    # -- knobs (docs/simulator.md#knobs); the defaults reproduce the published clips exactly
    drift_carry: float = 0.0  # share of the drift reached at the conditioning frame that the next clip continues from
    cond_misread: float = 0.0  # probability that the clip starts from a slightly wrong reading of its conditioning frame
    correction_follow: float = 1.0  # probability that a Correction: line is taken in (and the factor applies)
    goal_only_violation: str = "capacity"  # where a goal-only clip's violation is drawn: "capacity" or "moves"
    prior_lookahead: int = 4  # moves the greedy visual prior of a goal-only prompt sees ahead


@dataclass(frozen=True)
class VLMConfig:
    """How reliable the simulated VLM is in each role."""

    plan_noise: float = 0.05  # probability that a plan is one wrong (legal, off-path) move
    false_accept: float = 0.03  # probability of accepting a clip that has an error
    false_reject: float = 0.03  # probability of rejecting a correct clip
    select_noise: float = 0.05  # probability that the selector picks a candidate at random
    moves_per_second: float = 3.5  # the planner's belief of how many moves fit in a second of video
    # -- knobs (docs/simulator.md#knobs); the defaults reproduce the published verdicts exactly
    verify_correlation: float = 0.0  # 0: a verifier error is drawn afresh per call; 1: the same clip always gets the same draw
    plan_horizon: str = "share"  # "share": the next share of the solution; "clip": as much as fits one clip
    critic_false_solved: float = 0.0  # probability that the critic calls an unsolved video solved
    critic_false_unsolved: float = 0.0  # probability that the critic calls a solved video unsolved
    critic_rewrite_noise: float = 0.0  # probability that the critic's rewrite starts with a wrong (legal) move
    goal_only_verify: str = "plan"  # an instruction with no move: "plan" (no move planned, as ever) or "task" (solve it all)
    locate_error: float = 0.0  # probability that a rightly rejected clip's first bad frame is reported 2-3 moves off
    # false-accept rate per kind of error (None: false_accept): a legal off-plan move, an illegal transition, an unfinished plan
    false_accept_off_plan: float | None = None
    false_accept_illegal: float | None = None
    false_accept_unfinished: float | None = None
    plan_illegal: float = 0.0  # share of planner errors that are one illegal move
    plan_multi: float = 0.0  # share of planner errors that are the whole action, wrong from a random move on

    def false_accept_for(self, kind: str) -> float:
        """The false-accept rate for a bad clip whose error is of ``kind`` (off_plan, illegal, unfinished)."""
        rate = getattr(self, f"false_accept_{kind}")
        return self.false_accept if rate is None else rate


VGM_PRESETS: dict[str, VGMConfig] = {
    "weak": VGMConfig(),
    "strong": VGMConfig(drift_base=0.01, drift_growth=0.012, violation_rate=0.08),
}
_NOISY = VLMConfig(plan_noise=0.15, false_accept=0.20, false_reject=0.10, select_noise=0.20)
VLM_PRESETS: dict[str, VLMConfig] = {
    "accurate": VLMConfig(),
    "noisy": _NOISY,
    # the noisy VLM with a critic as fallible as its verifier and planner (docs/simulator.md#knobs)
    "noisy-critic": replace(_NOISY, critic_false_solved=0.20, critic_false_unsolved=0.10, critic_rewrite_noise=0.15),
}
DEFAULT_VGM = "weak"
DEFAULT_VLM = "accurate"

# knobs that take a word, not a probability, and the words they accept
CHOICES: dict[str, tuple[str, ...]] = {
    "goal_only_violation": ("capacity", "moves"),
    "plan_horizon": ("share", "clip"),
    "goal_only_verify": ("plan", "task"),
}
_NOT_PROBABILITIES = {"frames_per_move", "moves_per_second", "prior_lookahead", *CHOICES}
_WHOLE_NUMBERS = {"frames_per_move": 1, "prior_lookahead": 1}  # knobs that take a whole number, and their least value
_UNSET_MEANS = {"false_accept_off_plan": "false_accept", "false_accept_illegal": "false_accept",
                "false_accept_unfinished": "false_accept"}  # knobs that may be unset (None), and what they then follow


def is_preset_file(model: str) -> bool:
    """Whether a sim model names a preset file (``sim:PATH.json``, or any path with a separator)
    rather than a built-in preset; preset names never hold either."""
    return model.endswith(".json") or "/" in model or "\\" in model


def load_preset(kind: type, path: str | Path) -> Any:
    """A config from a JSON object of ``kind``'s fields (the defaults fill the rest); the values are
    checked as options are, by :func:`build`."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"sim preset file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"sim preset file {path}: not a readable JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise BadInput(f"sim preset file {path}: expected a JSON object of {kind.__name__} fields, got a {type(data).__name__}")
    _check_fields(kind, data, f"sim preset file {path}: unknown field(s)")
    return replace(kind(), **data)


def save_preset(config: Any, path: str | Path) -> Path:
    """Write ``config`` as a preset file that ``sim:PATH`` loads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    return path


def _check_fields(kind: type, given: dict[str, Any], what: str) -> None:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise BadInput(f"{what} {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def build(kind: type, presets: dict[str, Any], model: str, default: str, options: dict[str, Any]) -> Any:
    """A config from a preset name (or preset file) and option overrides, with errors that list
    what is accepted."""
    name = model or default
    if is_preset_file(name):
        base = load_preset(kind, name)
    elif name in presets:
        base = presets[name]
    else:
        raise BadInput(f"unknown sim preset {name!r}; known: {', '.join(presets)}, or a preset file sim:PATH.json")
    overrides = {k: v for k, v in options.items() if k != "seed"}
    _check_fields(kind, overrides, "unknown sim option(s)")
    config = replace(base, **overrides)
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in CHOICES:
            if value not in CHOICES[f.name]:
                raise BadInput(f"sim option {f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")
        elif f.name in _WHOLE_NUMBERS:
            least = _WHOLE_NUMBERS[f.name]
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BadInput(f"{f.name} must be a whole number >= {least}, got {value!r}")
        elif value is None and f.name in _UNSET_MEANS:
            continue  # unset: the knob follows _UNSET_MEANS[f.name]
        elif f.name not in _NOT_PROBABILITIES and not (isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0):
            raise BadInput(f"sim option {f.name} must be a probability in [0, 1], got {value!r}")
    if isinstance(config, VLMConfig) and config.plan_illegal + config.plan_multi > 1.0 + 1e-12:
        raise BadInput(f"plan_illegal + plan_multi are shares of the planner's errors and must add up to at most 1, got "
                       f"{config.plan_illegal:g} + {config.plan_multi:g}")
    return config
