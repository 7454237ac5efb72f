"""Every status word the framework records, one ``Literal`` per kind, and what each means.

Three kinds, never mixed:

* :data:`AttemptStatus`: one generation attempt (or candidate) in a trace's ``attempts``.
* :data:`Last`: the state's ``last`` channel, what the latest node concluded; routers read it.
* :data:`EpisodeStatus`: why an episode ended (``state["status"]``, ``trace.json``, results).

An episode *completed* when its method produced its answer as designed (:data:`COMPLETED`);
every other end (a budget or the attempts spent, a typed failure) is *incomplete*, and the CLI
exits with :data:`EXIT_INCOMPLETE` for it, so a script can tell them apart.
"""

from __future__ import annotations

from typing import Literal, get_args

AttemptStatus = Literal[
    "accepted",  # CollabVR: the verifier accepted the clip
    "rejected",  # CollabVR: the verifier rejected the clip
    "plan_failed",  # the planner call failed (no clip)
    "generation_failed",  # the VGM call failed (no clip)
    "verification_failed",  # the verifier call failed: never an accept
    "generated",  # a baseline's clip, made and not verified
    "selected",  # pass@k / prompt optimisation: the selector's pick
    "not_selected",
    "selection_failed",  # the selector failed: nothing was selected
    "critique_failed",  # the critic failed on this video
]

Last = Literal[
    "accepted", "rejected", "plan_failed", "generation_failed", "verification_failed",
    "planned", "generated", "selected", "selection_failed", "critiqued", "solved", "critique_failed", "stopped",
]

EpisodeStatus = Literal[
    "running",
    # completed
    "complete",  # CollabVR: the planner's last action finishes the task, and it was accepted
    "solved",  # critique baselines: the critic called a video solved
    "generated",  # single: its one video was made
    "selected",  # pass@k: the selector picked a candidate
    "plan_executed",  # up-front plan: every planned step rendered
    # incomplete
    "step_budget_spent",  # CollabVR: every step used, the task not finished
    "attempts_exhausted",  # CollabVR: a step failed max_attempts times
    "budget_spent",  # the clip-seconds budget cannot afford the next clip
    "rounds_spent",  # critique baselines: every round used without a "solved"
    "plan_failed",
    "generation_failed",
    "selection_failed",
    "critique_failed",
    "load_failed",  # a local model could not be built: no attempt in this process can succeed
    "stopped",  # a person stopped the episode
    "error",  # an internal error (trace.json of a run that raised; results of a bench episode)
]

RepairStrategy = Literal["prompt_evolution", "partial_regeneration", "action_splitting", "retry"]

# failure kinds no retry can fix (see collabvr.errors.ModelUnavailable): the episode ends at the first
HALTING: frozenset[str] = frozenset({"load_failed"})
COMPLETED: frozenset[str] = frozenset({"complete", "solved", "generated", "selected", "plan_executed"})
FAILED_CALLS: frozenset[str] = frozenset({"plan_failed", "generation_failed", "selection_failed", "critique_failed"})

EXIT_OK = 0  # the episode completed (bench: every episode ran)
EXIT_INTERNAL = 1  # a bug or an unexpected error
EXIT_BAD_INPUT = 2  # bad input or a failed preflight: nothing was called
EXIT_INCOMPLETE = 3  # the episode ended without completing


def completed(status: str) -> bool:
    """Whether an episode with this status produced its method's answer as designed."""
    return status in COMPLETED


def exit_code(status: str) -> int:
    """The CLI's exit code for an episode that ended with ``status``."""
    if status == "error":
        return EXIT_INTERNAL
    return EXIT_OK if completed(status) else EXIT_INCOMPLETE


ATTEMPT_STATUSES: tuple[str, ...] = get_args(AttemptStatus)
EPISODE_STATUSES: tuple[str, ...] = get_args(EpisodeStatus)
