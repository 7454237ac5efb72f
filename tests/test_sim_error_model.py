"""The sim error model: measured rates over many draws match the configured ones."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from collabvr.backends.sim.config import VGM_PRESETS, VLMConfig
from collabvr.backends.sim.families import FAMILIES
from collabvr.backends.sim.score import score_video
from collabvr.backends.sim.vgm import SimVGM
from collabvr.backends.sim.vlm import SimVLM
from collabvr.media import Image, Video
from collabvr.records import VerifyRequest

SORT = FAMILIES["sort"]
N = 3000


def tolerance(p: float, n: int) -> float:
    """Four standard errors of a binomial proportion, and never less than 0.01."""
    return max(0.01, 4 * math.sqrt(p * (1 - p) / n))


def sort_start(seed: int = 0):
    return SORT.generate("hard", np.random.default_rng(seed))


def swapped(before, after) -> tuple[int, ...]:
    """Which slots changed between two sort states."""
    return tuple(i for i, (a, b) in enumerate(zip(before.bars, after.bars, strict=True)) if a != b)


def rollouts(config, prompt: str, capacity: int, n: int = N):
    vgm = SimVGM(config)
    state = sort_start()
    return state, [vgm.rollout(SORT, state, prompt, capacity=capacity, rng=np.random.default_rng(i)) for i in range(n)]


@pytest.mark.parametrize("base,growth", [(0.1, 0.05), (0.3, 0.0)])
def test_drift_rate_per_move_grows_as_configured(base, growth):
    config = replace(VGM_PRESETS["weak"], drift_base=base, drift_growth=growth, violation_rate=0.0)
    moves = ["swap 1 2", "swap 3 4", "swap 5 6", "swap 2 3"]
    _, runs = rollouts(config, ", ".join(moves), capacity=4)
    for i, planned in enumerate(moves):
        want = tuple(int(x) - 1 for x in planned.split()[1:])
        off = np.mean([swapped(states[i], states[i + 1]) != want for states in runs])
        expected = base + growth * i
        assert off == pytest.approx(expected, abs=tolerance(expected, N)), f"move {i}"


def test_violation_rate_per_clip_matches_config_and_correction_halves_it():
    config = replace(VGM_PRESETS["weak"], drift_base=0.0, drift_growth=0.0, violation_rate=0.3)
    for prompt, expected in (("swap 1 2, swap 3 4", 0.3), ("swap 1 2, swap 3 4\nCorrection: careful", 0.15)):
        start, runs = rollouts(config, prompt, capacity=2)
        broken = np.mean([not all(SORT.transition_ok(a, b) for a, b in zip(states, states[1:], strict=False)) for states in runs])
        assert broken == pytest.approx(expected, abs=tolerance(expected, N))


def test_clip_capacity_follows_seconds_times_fps():
    vgm = SimVGM(replace(VGM_PRESETS["weak"], drift_base=0, drift_growth=0, violation_rate=0))
    state = sort_start()
    frame = Image(SORT.render(state, 128))
    prompt = ", ".join(["swap 1 2"] * 30)
    clip = vgm.generate(frame, prompt, seconds=3.0, fps=16, seed=0)
    assert clip.num_frames == 48
    capacity = (48 - 1) // 4
    states = vgm.rollout(SORT, state, prompt, capacity=capacity, rng=np.random.default_rng(0))
    assert len(states) == capacity + 1 == 12


def test_same_inputs_give_the_same_clip_and_a_new_prompt_gives_new_draws():
    vgm = SimVGM(VGM_PRESETS["weak"])
    frame = Image(SORT.render(sort_start(), 128))
    a = vgm.generate(frame, "swap 1 2, swap 3 4", seconds=1.0, fps=16, seed=3)
    b = vgm.generate(frame, "swap 1 2, swap 3 4", seconds=1.0, fps=16, seed=3)
    assert np.array_equal(a.frames, b.frames)
    draws = {vgm.generate(frame, f"swap 1 2\nCorrection: try {i}", seconds=1.0, fps=16, seed=3).frames.tobytes() for i in range(30)}
    assert len(draws) > 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_goal_only_prompt_solves_easy_tasks_more_often_than_hard_ones(family):
    fam = FAMILIES[family]
    vgm = SimVGM(VGM_PRESETS["strong"])

    def solved(difficulty: str, seed: int) -> bool:
        state = fam.generate(difficulty, np.random.default_rng(seed))
        frame = Image(fam.render(state, 128))
        clip = vgm.generate(frame, fam.prompt(state), seconds=6.0, fps=16, seed=seed)
        return score_video(fam, clip.frames, state).solved

    easy = np.mean([solved("easy", s) for s in range(16)])
    hard = np.mean([solved("hard", s) for s in range(16)])
    assert easy > hard + 0.2, (easy, hard)


def _clip(family, states, size=128) -> Video:
    fam = FAMILIES[family]
    frames = [fam.render(states[0], size)]
    for a, b in zip(states, states[1:], strict=False):
        frames += [fam.render_motion(a, b, k / 4, size) for k in range(1, 5)]
    return Video(frames=np.stack(frames), fps=16)


@pytest.mark.parametrize("false_accept,false_reject", [(0.2, 0.1), (0.0, 0.0)])
def test_verifier_false_accept_and_false_reject_rates_match_config(false_accept, false_reject):
    start = sort_start(1)
    plan = SORT.solve(start)[:3]
    good_states = [start]
    for m in plan:
        good_states.append(SORT.apply(good_states[-1], m))
    wrong = SORT.wrong_move(good_states[1], plan[1], np.random.default_rng(0))
    bad_states = [*good_states[:2], SORT.apply(good_states[1], wrong)]
    good, bad = _clip("sort", good_states), _clip("sort", bad_states)
    first = Image(SORT.render(start, 128))
    instruction = SORT.describe(plan)
    n = 600
    config = VLMConfig(false_accept=false_accept, false_reject=false_reject)
    accepts_bad = np.mean([SimVLM(config, seed=i).verify(VerifyRequest("t", bad, first, instruction, "")).accept for i in range(n)])
    rejects_good = np.mean([not SimVLM(config, seed=i).verify(VerifyRequest("t", good, first, instruction, "")).accept for i in range(n)])
    assert accepts_bad == pytest.approx(false_accept, abs=tolerance(false_accept, n))
    assert rejects_good == pytest.approx(false_reject, abs=tolerance(false_reject, n))


def test_verifier_reports_first_bad_frame_and_what_remains():
    start = sort_start(2)
    plan = SORT.solve(start)[:3]
    s1 = SORT.apply(start, plan[0])
    wrong = SORT.wrong_move(s1, plan[1], np.random.default_rng(0))
    clip = _clip("sort", [start, s1, SORT.apply(s1, wrong)])
    verdict = SimVLM(VLMConfig(false_accept=0, false_reject=0)).verify(
        VerifyRequest("t", clip, Image(SORT.render(start, 128)), SORT.describe(plan), "")
    )
    assert not verdict.accept
    # frames 0..4 show the first (correct) move; the wrong move shows from frame 6 or 7 (mid-motion rounding)
    assert 5 / 9 <= verdict.good_fraction <= 7 / 9
    assert SORT.parse(verdict.remaining) == plan[1:]
    assert SORT.describe(plan[1:]) in verdict.suggestion


def test_verifier_errors_are_independent_across_attempts_of_the_same_clip():
    start = sort_start(1)
    plan = SORT.solve(start)[:2]
    states = [start, SORT.apply(start, plan[0])]
    states.append(SORT.apply(states[1], plan[1]))
    clip, first = _clip("sort", states), Image(SORT.render(start, 128))
    vlm = SimVLM(VLMConfig(false_reject=0.5, false_accept=0.0))
    verdicts = [vlm.verify(VerifyRequest("t", clip, first, SORT.describe(plan), "", attempt=i)).accept for i in range(40)]
    assert 5 < sum(verdicts) < 35  # a fair coin per attempt, not one judgement repeated
    again = [vlm.verify(VerifyRequest("t", clip, first, SORT.describe(plan), "", attempt=i)).accept for i in range(40)]
    assert again == verdicts  # and still deterministic
