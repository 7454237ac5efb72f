"""The records that flow between the graph and the backends.

VLM roles return these pydantic models; API backends derive their structured-output
schemas from them. The graph state stores them as plain JSON (``model_dump(mode="json")``)
so that any checkpointer can hold it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from collabvr.media import Image, Video


class Usage(BaseModel):
    """Token counts one VLM call reported; zeros when the backend reports none."""

    input_tokens: int = 0
    output_tokens: int = 0


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Filled in by the backend, kept out of dumps and out of the structured-output schema.
    usage: Usage | None = Field(default=None, exclude=True)


class Plan(_Record):
    """The planner's next move: one immediate action, not the whole solution."""

    observation: str = Field(description="What the current frame shows that matters for the task.")
    instruction: str = Field(
        description="The immediate next action for the video model, concrete and visual. Empty if the task is already complete."
    )
    target_state: str = Field(description="What the frame should show once the action is done.")
    task_complete: bool = Field(
        description="True if the task is complete once this action is done (or already complete when instruction is empty)."
    )
    steps_left: int = Field(default=0, ge=0, description="Estimated further steps after this one.")


class Verdict(_Record):
    """The verifier's judgement of one clip against the planned action (not the whole task)."""

    accept: bool = Field(description="True only if the planned action was carried out with no error anywhere in the clip.")
    reason: str = Field(description="Why: what went right or what went wrong, and where.")
    good_fraction: float = Field(
        ge=0.0, le=1.0, description="Fraction of the clip, from its start, that is correct before the first error (1.0 if none)."
    )
    suggestion: str = Field(default="", description="A concrete correction for the next attempt; empty on accept.")
    remaining: str = Field(
        default="",
        description="The part of the planned action still to do after the correct prefix, as an instruction; empty if none.",
    )
    confidence: float = Field(default=0.5, ge=0.0, le=1.0, description="Confidence in this verdict, 0..1.")
    action_too_large: bool = Field(
        default=False, description="True if the action was too large to render reliably in one clip and should be split."
    )


class Selection(_Record):
    """The selector's pick among candidate videos (pass@k)."""

    index: int = Field(ge=0, description="0-based index of the best candidate.")
    reason: str = Field(default="", description="Why this candidate.")


class Judgement(_Record):
    """A VLM-as-judge score of a whole video against the task."""

    score: float = Field(ge=0.0, le=1.0, description="How fully the video solves the task, 0..1.")
    solved: bool = Field(description="True if the video shows the task solved with every transition legal.")
    reason: str = Field(default="", description="Why.")


class CriterionScore(BaseModel):
    """One criterion of a rubric, scored."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(description="The criterion's key exactly as the rubric names it, e.g. Criterion_1_Path_Validity.")
    description: str = Field(default="", description="What the criterion checks, as the rubric states it.")
    score: float = Field(ge=0.0, description="The points given, on the scale the rubric states for this criterion.")
    max_score: float = Field(default=1.0, ge=0.0, description="The most points this criterion can give, as the rubric states.")
    rationale: str = Field(default="", description="Why this score.")


class RubricJudgement(_Record):
    """A VLM-as-judge answer against a rubric: one entry per criterion the rubric lists, in its order."""

    criteria: list[CriterionScore] = Field(min_length=1, description="Every criterion of the rubric, scored.")


class Critique(_Record):
    """A critique of a whole video, used by the post-hoc and prompt-optimisation baselines."""

    solved: bool = Field(description="True if the video solves the task with every transition legal.")
    critique: str = Field(description="What is wrong, concretely.")
    revised_prompt: str = Field(description="A rewritten prompt for the video model that fixes the problems.")


# ----------------------------------------------------------------------------- requests
# Requests carry decoded media (not artifact refs) so backends never touch the store. ``seed`` is
# the episode's seed (the nodes stamp it): a backend that samples seeds its sampling from it with the
# role, step and attempt, so a rerun repeats and a retry draws anew.


@dataclass(frozen=True)
class StepSummary:
    """One accepted step, as the planner sees the history."""

    instruction: str
    target_state: str


@dataclass(frozen=True)
class PlanRequest:
    task: str
    frame: Image
    step: int  # 1-based
    max_steps: int
    seconds: float  # length of the clip the action must fit in
    history: tuple[StepSummary, ...] = ()
    split_from: str = ""  # when splitting: the action that proved too large; plan a smaller one
    upfront: bool = False  # plan every step now, before any frame exists: one "Step i: ..." line per step
    family: str | None = None  # sim task family when known, a hint only
    attempt: int = 0  # 0-based attempt within the step (a re-plan after a failed one is its own call)
    seed: int = 0


@dataclass(frozen=True)
class VerifyRequest:
    task: str
    clip: Video
    start_frame: Image
    instruction: str
    target_state: str
    family: str | None = None
    step: int = 0  # 0-based step and attempt of the clip, so each verification is its own call
    attempt: int = 0
    seed: int = 0


@dataclass(frozen=True)
class SelectRequest:
    task: str
    candidates: tuple[Video, ...]
    family: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class JudgeRequest:
    task: str
    video: Video
    first_frame: Image
    family: str | None = None
    rubric: str = ""  # with a rubric, the judge answers a RubricJudgement instead of a Judgement
    references: tuple[tuple[str, Image], ...] = ()  # captioned reference images (a ground-truth frame)
    seed: int = 0


@dataclass(frozen=True)
class CritiqueRequest:
    task: str
    video: Video
    prompt: str
    family: str | None = None
    extra: dict = field(default_factory=dict)
    seed: int = 0

