"""The simulated VLM. It sees pixels only: every judgement starts by decoding frames.

* plan: exact search over the decoded state; the action is the next share of the optimal
  solution (the rest on the last step), with planning noise; an up-front plan splits the whole
  solution into one "Step i: ..." line per step;
* verify: decodes every frame, checks each transition is legal and is the planned move (with no
  move in the instruction and ``goal_only_verify="task"``: that the clip solves the whole task
  legally), and reports the first
  bad frame, what remains, and a concrete correction; with configurable
  false-accept and false-reject rates, drawn afresh per call or, with ``verify_correlation``, the
  same for every call on the same clip;
* select / judge / critique: from the decoded videos, with the scorer's rules; the critique has
  its own noise knobs (``critic_*``, none in the ``accurate`` and ``noisy`` presets).
"""

from __future__ import annotations

import math

from collabvr.backends.sim.config import VLMConfig
from collabvr.backends.sim.families.base import Family, IllegalMove
from collabvr.backends.sim.score import read_trajectory, score_video
from collabvr.backends.sim.world import family_of, read_state, rng_for
from collabvr.errors import BackendError
from collabvr.media import Video
from collabvr.records import (
    CriterionScore,
    Critique,
    CritiqueRequest,
    Judgement,
    JudgeRequest,
    Plan,
    PlanRequest,
    RubricJudgement,
    Selection,
    SelectRequest,
    Verdict,
    VerifyRequest,
)

LATE_ERROR_MOVE = 3  # an error at or after this move of an action means the action was too large


class SimVLM:
    def __init__(self, config: VLMConfig, *, seed: int = 0, name: str = "sim") -> None:
        self.config = config
        self.seed = seed
        self.name = name

    # ------------------------------------------------------------------ plan
    def plan(self, request: PlanRequest) -> Plan:
        family = family_of(request.frame.array, request.family)
        state = read_state(family, request.frame.array, "current frame")
        seen = family.state_text(state)
        if family.is_goal(state):
            return Plan(observation=seen, instruction="", target_state=seen, task_complete=True, steps_left=0)
        solution = family.solve(state)
        if solution is None:
            raise BackendError(f"the planner finds no way to solve the task from here ({seen})")
        if request.upfront:
            return self._plan_upfront(family, state, solution, request)
        moves = solution[: self._action_size(family, request, len(solution))]
        rng = rng_for("plan", self.seed, state, request.step, request.split_from)
        if rng.random() < self.config.plan_noise:
            wrong = family.wrong_move(state, moves[0], rng)
            moves = [wrong] if wrong else moves
        end = _walk(family, state, moves)
        complete = end is not None and family.is_goal(end)
        left = len(solution) - len(moves)
        per_step = max(1, math.floor(request.seconds * self.config.moves_per_second))
        return Plan(
            observation=seen,
            instruction=family.describe(moves),
            target_state=family.state_text(end) if end is not None else "unknown",
            task_complete=complete,
            steps_left=0 if complete else max(1, math.ceil(left / per_step)),
        )

    def _plan_upfront(self, family: Family, state: object, solution: list[str], request: PlanRequest) -> Plan:
        """Every step now: the optimal moves in ``max_steps`` nearly equal chunks (longer ones first,
        for the longer first clip), one "Step i: ..." line each. Planning noise, as for a single
        action, is one wrong (legal, off-path) move: here it replaces the first move of the plan."""
        moves = list(solution)
        rng = rng_for("plan", self.seed, state, request.step, "upfront")
        if rng.random() < self.config.plan_noise:
            wrong = family.wrong_move(state, moves[0], rng)
            moves = [wrong, *moves[1:]] if wrong else moves
        parts = min(request.max_steps, len(moves))
        size, extra = divmod(len(moves), parts)
        bounds = [0]
        for i in range(parts):
            bounds.append(bounds[-1] + size + (i < extra))
        chunks = [moves[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        end = _walk(family, state, moves)
        return Plan(
            observation=family.state_text(state),
            instruction="\n".join(f"Step {i}: {family.describe(chunk)}" for i, chunk in enumerate(chunks, 1)),
            target_state=family.state_text(end) if end is not None else "unknown",
            task_complete=end is not None and family.is_goal(end),
            steps_left=len(chunks) - 1,
        )

    def _action_size(self, family: Family, request: PlanRequest, remaining: int) -> int:
        steps_here = request.max_steps - request.step + 1
        if request.split_from:
            return max(1, min(remaining, len(family.parse(request.split_from)) // 2))
        if steps_here <= 1:
            return remaining  # the last step must finish the task
        fits = max(1, math.floor(request.seconds * self.config.moves_per_second))
        if self.config.plan_horizon == "clip":
            return min(fits, remaining)  # as much of the solution as fits one clip
        return min(fits, math.ceil(remaining / steps_here))

    # ---------------------------------------------------------------- verify
    def verify(self, request: VerifyRequest) -> Verdict:
        family = family_of(request.start_frame.array, request.family)
        start = read_state(family, request.start_frame.array, "start frame")
        planned = family.parse(request.instruction)
        if planned or self.config.goal_only_verify == "plan":
            verdict, seen = self._check(family, start, planned, request.clip)
        else:  # no move in the instruction, read as the whole task (a one-step episode; calibrate --from)
            verdict, seen = self._check_task(family, start, request.clip)
        u = self._verify_draw(request, seen)
        if not verdict.accept and u < self.config.false_accept:
            return Verdict(accept=True, reason="the action looks carried out", good_fraction=1.0, confidence=0.6)
        if verdict.accept and u < self.config.false_reject:
            return Verdict(
                accept=False,
                reason="the motion looks implausible",
                good_fraction=0.0,
                suggestion=f"carry out exactly: {request.instruction}",
                confidence=0.6,
            )
        return verdict

    def _verify_draw(self, request: VerifyRequest, seen: list) -> float:
        """The uniform draw that decides a false accept or false reject.

        Each call has its own draw (seeded with its step and attempt, ``8b7b8e2``), so a correct
        redo of a falsely rejected clip is judged afresh. With ``verify_correlation`` = c, a share
        c of clips are judged consistently instead: every call on such a clip (same instruction,
        same decoded states) reuses one draw, as every call did before ``8b7b8e2`` (c = 1)."""
        u = float(rng_for("verify", self.seed, request.step, request.attempt, request.instruction, *seen).random())
        if self.config.verify_correlation > 0:
            shared = rng_for("verify", self.seed, request.instruction, *seen)
            u_shared, u_clip = shared.random(2)
            if u_clip < self.config.verify_correlation:
                u = float(u_shared)
        return u

    def _check(self, family: Family, start: object, planned: list[str], clip: Video) -> tuple[Verdict, list]:
        """The true verdict, and the states the clip showed (which seed the error draws)."""
        expected = [start]
        for move in planned:
            nxt = _walk(family, expected[-1], [move])
            if nxt is None:
                break
            expected.append(nxt)
        trajectory = read_trajectory(family, clip.iter_frames(), start)
        states, n = trajectory.states, clip.num_frames
        done = 0  # planned moves carried out, in order
        bad, problem = trajectory.bad_frame, trajectory.problem
        for i, state in enumerate(states[1:], start=1):
            if done + 1 < len(expected) and state == expected[done + 1]:
                done += 1
                continue
            bad = trajectory.last_good[i - 1] + 1
            want = planned[done] if done < len(planned) else "nothing more"
            problem = f"frame {bad}: the world moved off the plan (wanted: {want}) -> {family.state_text(state)}"
            break
        remaining = family.describe(planned[done:]) if done < len(planned) else ""
        if bad is None and done == len(planned) and len(expected) == len(planned) + 1:
            verdict = Verdict(accept=True, reason=f"all {len(planned)} planned moves carried out legally",
                              good_fraction=1.0, confidence=0.9)
            return verdict, states
        if bad is None:
            if len(expected) < len(planned) + 1:
                problem = f"the planned action is impossible from move {len(expected)} on"
            else:
                problem = f"the clip ended after {done} of {len(planned)} planned moves"
            bad = n
        too_large = bad == n or done >= LATE_ERROR_MOVE
        suggestion = f"move one step at a time, obey the rules, and carry out exactly: {remaining or 'nothing more'}"
        verdict = Verdict(
            accept=False,
            reason=problem,
            good_fraction=round(bad / n, 6),
            suggestion=suggestion,
            remaining=remaining,
            confidence=0.9,
            action_too_large=too_large,
        )
        return verdict, [*states, bad]

    def _check_task(self, family: Family, start: object, clip: Video) -> tuple[Verdict, list]:
        """The true verdict on a clip that should solve the whole task: every transition legal and
        the goal reached (the scorer's rule), and the states the clip showed."""
        trajectory = read_trajectory(family, clip.iter_frames(), start)
        states, n = trajectory.states, clip.num_frames
        if trajectory.bad_frame is None and family.is_goal(states[-1]):
            return Verdict(accept=True, reason="the task is solved and every transition is legal", good_fraction=1.0,
                           confidence=0.9), states
        bad = n if trajectory.bad_frame is None else trajectory.bad_frame
        left = family.distance(states[-1])
        reason = trajectory.problem or f"the clip ends before the goal ({left} moves left)"
        remaining = family.describe(family.solve(states[-1]) or []) if left else ""
        verdict = Verdict(accept=False, reason=reason, good_fraction=round(bad / n, 6),
                          suggestion=f"move one step at a time, obey the rules, and carry out exactly: {remaining or 'the task'}",
                          remaining=remaining, confidence=0.9, action_too_large=bad == n)
        return verdict, [*states, bad]

    # ------------------------------------------------- select / judge / critique
    def select(self, request: SelectRequest) -> Selection:
        if not request.candidates:
            raise BackendError("no candidates to select from")
        scores = [self._score(request.family, video).score for video in request.candidates]
        rng = rng_for("select", self.seed, request.task, *scores)
        if rng.random() < self.config.select_noise:
            return Selection(index=int(rng.integers(len(scores))), reason="a guess")
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return Selection(index=best, reason=f"best-looking candidate (score {scores[best]:.2f})")

    def judge(self, request: JudgeRequest) -> Judgement | RubricJudgement:
        family = family_of(request.first_frame.array, request.family)
        start = read_state(family, request.first_frame.array, "first frame")
        result = score_video(family, request.video.iter_frames(), start)
        if request.rubric:  # the sim reads no rubric: one criterion, its own rule-based score
            return RubricJudgement(criteria=[CriterionScore(name="Criterion_1_Solved", description="the sim scorer's verdict",
                                                            score=result.score, max_score=1.0, rationale=result.reason)])
        return Judgement(score=result.score, solved=result.solved, reason=result.reason)

    def critique(self, request: CritiqueRequest) -> Critique:
        first = request.video.frame(0).array
        family = family_of(first, request.family)
        start = read_state(family, first, "first frame")
        result = score_video(family, request.video.iter_frames(), start)
        solved, reason = result.solved, result.reason
        solution = family.solve(start) or []
        cfg = self.config
        if cfg.critic_false_solved or cfg.critic_false_unsolved or cfg.critic_rewrite_noise:
            # the critic's own errors, of the verifier's kinds: a wrong verdict, a wrong move in the rewrite
            seen = read_trajectory(family, request.video.iter_frames(), start).states
            rng = rng_for("critique", self.seed, request.prompt, *seen)
            u_verdict, u_rewrite = rng.random(2)
            if solved and u_verdict < cfg.critic_false_unsolved:
                solved, reason = False, "the motion looks implausible"
            elif not solved and u_verdict < cfg.critic_false_solved:
                solved, reason = True, "the task looks solved"
            if not solved and solution and u_rewrite < cfg.critic_rewrite_noise:
                wrong = family.wrong_move(start, solution[0], rng)
                solution = [wrong, *solution[1:]] if wrong else solution
        return Critique(
            solved=solved,
            critique=reason,
            revised_prompt=f"{family.describe(solution)}\nCorrection: {reason}" if not solved else request.prompt,
        )

    def _score(self, hint: str | None, video: Video):
        first = video.frame(0).array
        family = family_of(first, hint)
        return score_video(family, video.iter_frames(), read_state(family, first, "first frame"))


def _walk(family: Family, state: object, moves: list[str]) -> object | None:
    """The state after ``moves``, or None if one of them is illegal."""
    for move in moves:
        try:
            state = family.apply(state, move)
        except IllegalMove:
            return None
    return state
