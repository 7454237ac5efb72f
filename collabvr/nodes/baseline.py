"""What the baselines share: their state, the video horizon and the budget arithmetic.

Every baseline may use the same video length as CollabVR: the horizon H is the length of all
``max_steps`` CollabVR clips together. Whole-video baselines render H seconds per generation, so
the budget that is matched across methods is VGM clip-seconds (``budget_seconds``); VLM calls are
not budgeted (docs/methods.md).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from collabvr.context import Context
from collabvr.state import Ref, State, clip_seconds_spent


class BaselineState(State, total=False):
    """The CollabVR state plus what the baselines keep. Every attempt stays in ``attempts``
    (nothing is archived per step), so ``steps`` never carry a ``log``."""

    candidates: Annotated[list[dict[str, Any]], operator.add]  # (append) fanned-out candidates of every round
    chosen: Ref | None  # the video the episode would end with if it stopped now
    script: list[str]  # the up-front plan: one action prompt per step


def horizon(ctx: Context) -> float:
    """H: the length of all CollabVR clips together, the length of one whole-video generation."""
    return float(ctx.first_clip_seconds + (ctx.max_steps - 1) * ctx.clip_seconds)


def affordable(state: BaselineState, ctx: Context, wanted: int) -> int:
    """How many of ``wanted`` whole videos fit the clip-seconds budget now."""
    return next((n for n in range(wanted, 0, -1) if ctx.affords(clip_seconds_spent(state), n * horizon(ctx))), 0)
