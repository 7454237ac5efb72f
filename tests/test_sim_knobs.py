"""Every assumption of the sim error model is a knob: each moves the clips or verdicts the way
docs/simulator.md#knobs says, and at its default reproduces the published outputs exactly."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from collabvr.backends.sim import wear
from collabvr.backends.sim.config import VGM_PRESETS, VLM_PRESETS, VGMConfig, VLMConfig, build
from collabvr.backends.sim.families import FAMILIES
from collabvr.backends.sim.score import score_video
from collabvr.backends.sim.vgm import SimVGM
from collabvr.backends.sim.vlm import SimVLM
from collabvr.backends.sim.world import rng_for
from collabvr.errors import BadInput
from collabvr.media import Image, Video
from collabvr.records import CritiqueRequest, PlanRequest, VerifyRequest
from tests.test_sim_error_model import SORT, N, _clip, rollouts, sort_start, swapped, tolerance

# sha256 of published_outputs_digest() computed with the code of 15d58cd, before the knobs existed
PUBLISHED = "a17763204ae5cbfabfdba3d06011401fd0af65819a955a5450f286791ab0accf"
QUIET = replace(VGM_PRESETS["weak"], drift_base=0.0, drift_growth=0.0, violation_rate=0.0)


def published_outputs_digest(vgm_config: VGMConfig = VGM_PRESETS["weak"], vlm_config: VLMConfig = VLM_PRESETS["noisy"]) -> str:
    """Clips (goal-only, explicit, corrected), repeated verifications, critiques and plans, hashed."""
    h = hashlib.sha256()
    vgm, vlm = SimVGM(vgm_config), SimVLM(vlm_config, seed=3)
    for _, fam in sorted(FAMILIES.items()):
        for difficulty, seed in (("easy", 1), ("hard", 0)):
            state = fam.generate(difficulty, np.random.default_rng(seed))
            frame = Image(fam.render(state, 128))
            solution = fam.solve(state)
            for prompt in (fam.prompt(state), fam.describe(solution[:5]), fam.describe(solution[:5]) + "\nCorrection: careful"):
                clip = vgm.generate(frame, prompt, seconds=3.0, fps=16, seed=seed)
                h.update(clip.frames.tobytes())
                for attempt in range(3):
                    h.update(vlm.verify(VerifyRequest("t", clip, frame, prompt, "", attempt=attempt)).model_dump_json().encode())
                h.update(vlm.critique(CritiqueRequest("t", clip, prompt)).model_dump_json().encode())
            for step in (1, 2, 3):
                h.update(vlm.plan(PlanRequest("t", frame, step, 3, 6.0)).model_dump_json().encode())
    return h.hexdigest()


def test_default_knobs_reproduce_the_published_outputs_exactly():
    assert published_outputs_digest() == PUBLISHED


def test_a_knob_off_its_default_changes_the_outputs():
    """The digest above can fail: a knob that moves the outputs moves it."""
    assert published_outputs_digest(replace(VGM_PRESETS["weak"], cond_misread=0.5)) != PUBLISHED


def test_knobs_are_validated_with_the_accepted_values():
    assert build(VGMConfig, VGM_PRESETS, "weak", "weak", {"goal_only_violation": "moves"}).goal_only_violation == "moves"
    with pytest.raises(BadInput, match="capacity, moves"):
        build(VGMConfig, VGM_PRESETS, "weak", "weak", {"goal_only_violation": "all"})
    with pytest.raises(BadInput, match="share, clip"):
        build(VLMConfig, VLM_PRESETS, "accurate", "accurate", {"plan_horizon": 3})
    with pytest.raises(BadInput, match="probability"):
        build(VGMConfig, VGM_PRESETS, "weak", "weak", {"drift_carry": 1.5})


# -- drift carry-over -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_wear_survives_h264_and_leaves_the_decoded_state_unchanged(family):
    fam = FAMILIES[family]
    state = fam.generate("medium", np.random.default_rng(0))
    frame = fam.render(state, 128)
    worn = [wear.stamp(frame, w, fam.background) for w in (0, 1, 23, 200)]
    stored = Video(mp4=Video(frames=np.stack(worn), fps=16).mp4, fps=16).frames  # what every reader sees
    assert [wear.read(f, fam.background) for f in stored] == [0, 1, 23, 200]
    assert all(fam.decode(f) == state for f in stored)
    assert wear.read(frame, fam.background) == 0  # a clean frame (a task's first frame) has no wear


def _stored_last_frame(clip: Video) -> Image:
    return Image(Video(mp4=clip.mp4, fps=clip.fps).frames[-1])


@pytest.mark.parametrize("carry", [0.0, 1.0])
def test_with_full_carry_over_clip_two_continues_the_drift_where_clip_one_ended(carry):
    """carry 1: the first move of clip 2 drifts as the next move of clip 1 would; carry 0: afresh."""
    base, growth = 0.05, 0.03
    config = replace(QUIET, drift_base=base, drift_growth=growth, drift_carry=carry)
    vgm, start = SimVGM(replace(config, drift_base=0.0, drift_growth=0.0)), sort_start()
    moves = SORT.solve(start)[:8]
    clip = vgm.generate(Image(SORT.render(start, 128)), SORT.describe(moves), seconds=3.0, fps=16, seed=0)
    cond = _stored_last_frame(clip)
    assert wear.read(cond.array, SORT.background) == (len(moves) if carry else 0)

    state = SORT.decode(cond.array)
    follow = SORT.solve(state)[:1]
    second = SimVGM(config).generate(cond, SORT.describe(follow), seconds=1.0, fps=16, seed=0)
    carried = wear.read(second.frames[0], SORT.background)  # where generate() starts clip 2's drift index
    assert carried == (len(moves) if carry else 0)
    runs = [SimVGM(config).rollout(SORT, state, SORT.describe(follow), capacity=1, rng=np.random.default_rng(i), carried=carried)
            for i in range(N)]
    want = tuple(int(x) - 1 for x in SORT.describe(follow).split()[1:])
    drifted = np.mean([swapped(r[0], r[1]) != want for r in runs])
    expected = base + growth * (len(moves) if carry else 0)  # the drift of move 8, the one after clip 1's last
    assert drifted == pytest.approx(expected, abs=tolerance(expected, N))


def test_wear_is_written_only_when_carry_over_is_on():
    start = sort_start()
    frame = Image(SORT.render(start, 128))
    prompt = SORT.describe(SORT.solve(start)[:3])
    plain = SimVGM(QUIET).generate(frame, prompt, seconds=1.0, fps=16, seed=0)
    worn = SimVGM(replace(QUIET, drift_carry=0.5)).generate(frame, prompt, seconds=1.0, fps=16, seed=0)
    assert [wear.read(f, SORT.background) for f in plain.frames] == [0] * 16
    assert [wear.read(f, SORT.background) for f in worn.frames][::4] == [0, 1, 2, 3]


# -- conditioning-frame fidelity ------------------------------------------------------------------


@pytest.mark.parametrize("misread", [0.0, 0.3, 1.0])
def test_a_misread_conditioning_frame_starts_the_clip_from_a_neighbouring_state(misread):
    prompt = "swap 1 2, swap 3 4"
    start, exact = rollouts(QUIET, prompt, capacity=2, n=1000)
    _, runs = rollouts(replace(QUIET, cond_misread=misread), prompt, capacity=2, n=1000)
    off = np.mean([r != e for r, e in zip(runs, exact, strict=True)])
    assert off == pytest.approx(misread, abs=tolerance(misread, 1000))
    assert all(SORT.transition_ok(r[0], r[1]) for r in runs)  # a legal jump, not a violation
    assert all(len(r) == 3 for r in runs)  # the misread takes one move of the clip's capacity


# -- correction following -------------------------------------------------------------------------


@pytest.mark.parametrize("follow,expected", [(1.0, 0.15), (0.0, 0.3), (0.5, 0.225)])
def test_a_correction_lowers_the_error_rates_only_when_it_is_taken_in(follow, expected):
    config = replace(QUIET, violation_rate=0.3, correction_follow=follow)
    _, runs = rollouts(config, "swap 1 2, swap 3 4\nCorrection: careful", capacity=2)
    broken = np.mean([not all(SORT.transition_ok(a, b) for a, b in zip(r, r[1:], strict=False)) for r in runs])
    assert broken == pytest.approx(expected, abs=tolerance(expected, N))


# -- the violation draw for goal-only prompts -----------------------------------------------------


def test_goal_only_violations_are_drawn_over_capacity_by_default_and_over_moves_made_on_request(monkeypatch):
    maze = FAMILIES["maze"]
    start = maze.generate("easy", np.random.default_rng(0))
    made = len(maze.solve(start))  # the greedy prior walks this easy maze straight to the goal
    calls: list[int] = []
    violate = maze.violate
    monkeypatch.setattr(maze, "violate", lambda state, rng: calls.append(1) or violate(state, rng))
    config = replace(VGM_PRESETS["weak"], drift_base=0.0, drift_growth=0.0, violation_rate=0.3)
    n, rates = 1000, {}
    for rule in ("capacity", "moves"):
        calls.clear()
        vgm = SimVGM(replace(config, goal_only_violation=rule))
        for i in range(n):
            vgm.rollout(maze, start, maze.prompt(start), capacity=23, rng=np.random.default_rng(i))
        rates[rule] = len(calls) / n
    assert rates["moves"] == pytest.approx(0.3, abs=tolerance(0.3, n))  # the documented rule: every violation lands
    assert rates["capacity"] == pytest.approx(0.3 * made / 23, abs=tolerance(0.3 * made / 23, n))  # most fall after the goal


def test_the_violation_rule_for_goal_only_prompts_leaves_explicit_prompts_alone():
    start = sort_start()
    prompt = SORT.describe(SORT.solve(start)[:6])
    for i in range(50):
        a, b = (SimVGM(replace(VGM_PRESETS["weak"], goal_only_violation=rule)).rollout(
            SORT, start, prompt, capacity=11, rng=np.random.default_rng(i)) for rule in ("capacity", "moves"))
        assert a == b


# -- verifier error correlation -------------------------------------------------------------------


def _good_clip():
    start = sort_start(1)
    plan = SORT.solve(start)[:2]
    states = [start, SORT.apply(start, plan[0])]
    states.append(SORT.apply(states[1], plan[1]))
    return _clip("sort", states), Image(SORT.render(start, 128)), SORT.describe(plan)


@pytest.mark.parametrize("correlation", [0.0, 1.0])
def test_verifier_correlation_one_judges_every_call_on_a_clip_alike_as_before_8b7b8e2(correlation):
    clip, first, instruction = _good_clip()
    consistent = 0
    for seed in range(40):
        vlm = SimVLM(VLMConfig(false_reject=0.5, false_accept=0.0, verify_correlation=correlation), seed=seed)
        verdicts = {vlm.verify(VerifyRequest("t", clip, first, instruction, "", attempt=a)).accept for a in range(4)}
        consistent += len(verdicts) == 1
        if correlation == 1.0:
            # the draw of the code before 8b7b8e2: seeded by the clip alone, not the call
            states = vlm._check(SORT, sort_start(1), SORT.parse(instruction), clip)[1]
            assert verdicts == {not rng_for("verify", seed, instruction, *states).random() < 0.5}
    assert consistent == (40 if correlation == 1.0 else pytest.approx(40 / 8, abs=5))


def test_verifier_correlation_keeps_the_error_rate_per_call():
    clip, first, instruction = _good_clip()
    n = 400
    vlms = [SimVLM(VLMConfig(false_reject=0.3, false_accept=0.0, verify_correlation=0.5), seed=s) for s in range(n)]
    rejects = np.mean([not v.verify(VerifyRequest("t", clip, first, instruction, "", attempt=1)).accept for v in vlms])
    assert rejects == pytest.approx(0.3, abs=tolerance(0.3, n))


# -- planner horizon ------------------------------------------------------------------------------


def test_planner_horizon_clip_plans_as_much_as_fits_one_clip():
    start = SORT.generate("hard", np.random.default_rng(0))
    frame, remaining = Image(SORT.render(start, 128)), len(SORT.solve(start))
    share = SimVLM(VLMConfig(plan_noise=0.0)).plan(PlanRequest("t", frame, 1, 3, 6.0))
    whole = SimVLM(VLMConfig(plan_noise=0.0, plan_horizon="clip")).plan(PlanRequest("t", frame, 1, 3, 6.0))
    short = SimVLM(VLMConfig(plan_noise=0.0, plan_horizon="clip")).plan(PlanRequest("t", frame, 1, 3, 1.0))
    assert len(SORT.parse(share.instruction)) == -(-remaining // 3)
    assert len(SORT.parse(whole.instruction)) == remaining <= 21 and whole.task_complete  # 6 s fits 21 planned moves
    assert len(SORT.parse(short.instruction)) == 3  # 1 s fits 3


# -- critic noise ---------------------------------------------------------------------------------


def test_the_critic_errs_only_in_the_noisy_critic_preset():
    start = sort_start(2)
    bad = _clip("sort", [start, SORT.apply(start, SORT.wrong_move(start, SORT.solve(start)[0], np.random.default_rng(0)))])
    assert not score_video(SORT, bad.frames, start).solved
    exact = SimVLM(VLM_PRESETS["noisy"]).critique(CritiqueRequest("t", bad, "sort the bars"))
    assert not exact.solved and SORT.parse(exact.revised_prompt) == SORT.solve(start)
    n = 500
    config = VLM_PRESETS["noisy-critic"]
    critiques = [SimVLM(config, seed=s).critique(CritiqueRequest("t", bad, "sort the bars")) for s in range(n)]
    false_solved = np.mean([c.solved for c in critiques])
    rewrites = [SORT.parse(c.revised_prompt) for c in critiques if not c.solved]
    wrong_rewrite = np.mean([r[:1] != SORT.solve(start)[:1] for r in rewrites])
    assert false_solved == pytest.approx(config.critic_false_solved, abs=tolerance(config.critic_false_solved, n))
    assert wrong_rewrite == pytest.approx(config.critic_rewrite_noise, abs=tolerance(config.critic_rewrite_noise, len(rewrites)))


def test_the_noisy_critic_can_call_a_solved_video_unsolved():
    start = SORT.generate("easy", np.random.default_rng(4))
    states = [start]
    for move in SORT.solve(start):
        states.append(SORT.apply(states[-1], move))
    good = _clip("sort", states)
    n = 400
    config = VLM_PRESETS["noisy-critic"]
    unsolved = np.mean([not SimVLM(config, seed=s).critique(CritiqueRequest("t", good, "p")).solved for s in range(n)])
    assert unsolved == pytest.approx(config.critic_false_unsolved, abs=tolerance(config.critic_false_unsolved, n))


def test_latency_s_sleeps_before_each_call_and_changes_no_result():
    import time

    from collabvr.backends.sim import make

    fam = FAMILIES["maze"]
    state = fam.generate("easy", np.random.default_rng(1))
    frame, prompt = Image(fam.render(state, 128)), fam.prompt(state)
    plain, slow = make("vgm", "weak", {}), make("vgm", "weak", {"latency_s": 0.2})
    started = time.perf_counter()
    clip = slow.generate(frame, prompt, seconds=1.0, fps=16, seed=2)
    assert time.perf_counter() - started >= 0.2
    assert np.array_equal(clip.frames, plain.generate(frame, prompt, seconds=1.0, fps=16, seed=2).frames)
    assert slow.name == plain.name
    for bad in (-1, "soon", True):
        with pytest.raises(BadInput, match="latency_s"):
            make("vlm", "accurate", {"latency_s": bad})
