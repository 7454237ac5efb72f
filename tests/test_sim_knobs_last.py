"""The last built-in assumptions as knobs (docs/simulator.md#knobs): verifier localisation error, miss
rates by kind of error, the planner's error form, the greedy prior's look-ahead. Each moves what it
documents in the documented direction, and at its default changes nothing
(tests/test_sim_knobs.py pins the digest of the published outputs)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from collabvr.backends.sim.config import VGM_PRESETS, VGMConfig, VLMConfig, build
from collabvr.backends.sim.families import FAMILIES, IllegalMove
from collabvr.backends.sim.vgm import SimVGM
from collabvr.backends.sim.vlm import SimVLM
from collabvr.calibrate.labelled import labelled_set, plan_frames, plan_scores
from collabvr.errors import BadInput
from collabvr.records import PlanRequest, VerifyRequest
from tests.test_sim_error_model import tolerance
from tests.test_sim_knobs import PUBLISHED, published_outputs_digest

EXACT = VLMConfig(false_accept=0.0, false_reject=0.0, plan_noise=0.0)


def _verify(config: VLMConfig, clip, seed: int = 0):
    request = VerifyRequest(clip.task.prompt, clip.video, clip.start, clip.instruction, clip.target_state,
                            family=clip.task.family, step=seed)
    return SimVLM(config, seed=seed).verify(request)


@pytest.fixture(scope="module")
def clips():
    return labelled_set("sim", 120, seed=0)


# -- miss rates by kind of error ----------------------------------------------------------------------


def test_a_miss_rate_by_kind_moves_only_the_clips_of_its_kind(clips):
    """Subtle errors (a legal off-plan move) missed half the time; obvious and unfinished ones never."""
    config = replace(EXACT, false_accept_off_plan=0.5)
    accepted = {kind: [] for kind in ("drift", "wrong", "violation", "incomplete", "static", "good")}
    for i, clip in enumerate(clips):
        accepted[clip.label.kind].append(_verify(config, clip, seed=i).accept)
    subtle = accepted["drift"] + accepted["wrong"]
    assert np.mean(subtle) == pytest.approx(0.5, abs=tolerance(0.5, len(subtle)) + 0.05)
    assert not any(accepted["violation"] + accepted["incomplete"] + accepted["static"])
    assert all(accepted["good"])
    # unset, each kind follows false_accept: the flat rate of today
    flat = replace(EXACT, false_accept=0.5)
    assert [_verify(flat, c, seed=i).accept for i, c in enumerate(clips)] == \
        [_verify(replace(flat, false_accept_off_plan=0.5, false_accept_illegal=0.5, false_accept_unfinished=0.5), c,
                 seed=i).accept for i, c in enumerate(clips)]


def test_the_kinds_of_error_are_read_from_the_clip(clips):
    for kind, wanted in (("illegal", {"violation"}), ("unfinished", {"incomplete", "static"}), ("off_plan", {"drift", "wrong"})):
        config = replace(EXACT, **{f"false_accept_{kind}": 1.0})
        missed = {c.label.kind for i, c in enumerate(clips) if not c.label.good and _verify(config, c, seed=i).accept}
        assert missed == wanted, kind


# -- localisation error ---------------------------------------------------------------------------


def test_localisation_error_reports_the_first_bad_frame_moves_off_and_counts_the_rest_from_there(clips):
    bad = [c for c in clips if c.label.kind in ("drift", "wrong", "violation")]
    exact = [_verify(EXACT, c, seed=i) for i, c in enumerate(bad)]
    assert all(abs(v.good_fraction - c.label.good_fraction) < 1e-6 for v, c in zip(exact, bad, strict=True))
    off = [_verify(replace(EXACT, locate_error=1.0), c, seed=i) for i, c in enumerate(bad)]
    errors = [abs(v.good_fraction - c.label.good_fraction) for v, c in zip(off, bad, strict=True)]
    move = round(16 / EXACT.moves_per_second) / len(bad[0].video.frames)
    assert not any(v.accept for v in off)
    assert np.mean([e >= 2 * move - 1e-6 for e in errors]) > 0.6  # some are clamped at the clip's ends
    assert min(errors) >= 0 and np.mean(errors) > 2 * move * 0.6
    for verdict, clip in zip(off, bad, strict=True):  # the remaining moves counted from the reported position
        fam = FAMILIES[clip.task.family]
        planned = fam.parse(clip.instruction)
        remaining = fam.parse(verdict.remaining)
        assert remaining == planned[len(planned) - len(remaining):]
        assert len(remaining) != len(planned) - clip.label.moves_done or len(remaining) in (0, len(planned))
    half = [_verify(replace(EXACT, locate_error=0.5), c, seed=i) for i, c in enumerate(bad)]
    moved = np.mean([a.good_fraction != b.good_fraction for a, b in zip(half, exact, strict=True)])
    assert moved == pytest.approx(0.5, abs=tolerance(0.5, len(bad)) + 0.05)


# -- the planner's error form ---------------------------------------------------------------------


def _plans(config: VLMConfig, n: int = 120):
    out = []
    for i, (task, image, state) in enumerate(plan_frames("sim", n, 0, 128)):
        plan = SimVLM(config, seed=i).plan(PlanRequest(task.prompt, image, 1, 3, 6.0, family=task.family))
        out.append((FAMILIES[task.family], state, plan))
    return out


def test_planner_errors_take_the_illegal_and_multi_move_forms_asked_for():
    always = replace(EXACT, plan_noise=1.0)
    single = _plans(always)
    illegal = _plans(replace(always, plan_illegal=1.0))
    multi = _plans(replace(always, plan_multi=1.0))

    def legal(fam, state, plan):
        return plan_scores(fam, state, plan)[0]

    def moves(fam, plan):
        return len(fam.parse(plan.instruction))

    assert all(legal(*p) and moves(p[0], p[2]) == 1 for p in single)  # today: one wrong legal move
    # illegal: one move the family cannot make there (a direction into a wall, a swap of non-neighbours), unless every
    # move it can name is legal there (a blank in the middle, a maze crossing): then a wrong legal one, as today
    assert np.mean([not legal(*p) for p in illegal]) > 0.75
    for fam, state, plan in illegal:
        if legal(fam, state, plan):
            assert set(fam.vocabulary()) <= set(fam.moves(state))
        else:
            with pytest.raises(IllegalMove):
                fam.apply(state, fam.parse(plan.instruction)[0])
    # multi: the whole action, wrong part-way: longer plans, and some whose first move is still optimal
    assert np.mean([moves(p[0], p[2]) for p in multi]) > 1.5
    whole = [plan_scores(*p) for p in multi]
    assert np.mean([s.optimal for s in whole]) < 0.1  # hardly ever optimal as a whole plan (another shortest path)
    first_ok = [fam.distance(fam.apply(state, fam.parse(plan.instruction)[0])) == fam.distance(state) - 1
                for fam, state, plan in multi if legal(fam, state, plan)]
    assert 0.2 < np.mean(first_ok) < 1.0


def test_plan_error_shares_must_add_up_to_at_most_one_and_the_default_keeps_every_plan():
    with pytest.raises(BadInput, match="at most 1"):
        build(VLMConfig, {"a": VLMConfig()}, "a", "a", {"plan_illegal": 0.6, "plan_multi": 0.5})
    noisy = replace(EXACT, plan_noise=0.5)
    assert [p.instruction for *_, p in _plans(noisy, 40)] == \
        [p.instruction for *_, p in _plans(replace(noisy, plan_illegal=0.0, plan_multi=0.0), 40)]


# -- the greedy prior's look-ahead ----------------------------------------------------------------


def test_a_longer_look_ahead_solves_more_tasks_from_the_raw_prompt():
    quiet = replace(VGM_PRESETS["weak"], drift_base=0.0, drift_growth=0.0, violation_rate=0.0)
    solved = {}
    for depth in (2, 4, 6):
        vgm = SimVGM(replace(quiet, prior_lookahead=depth))
        hits = []
        for family in ("maze", "tiles", "sokoban", "sort"):
            fam = FAMILIES[family]
            for seed in range(6):
                start = fam.generate("medium", np.random.default_rng(seed))
                states = vgm.rollout(fam, start, fam.prompt(start), capacity=23, rng=np.random.default_rng(seed))
                hits.append(fam.is_goal(states[-1]) and all(fam.transition_ok(a, b) for a, b in zip(states, states[1:],
                                                                                                     strict=False)))
        solved[depth] = np.mean(hits)
    assert solved[2] < solved[4] < solved[6], solved


def test_look_ahead_is_a_whole_number_and_off_its_default_it_changes_the_published_outputs():
    with pytest.raises(BadInput, match="prior_lookahead"):
        build(VGMConfig, VGM_PRESETS, "weak", "weak", {"prior_lookahead": 0})
    assert published_outputs_digest(replace(VGM_PRESETS["weak"], prior_lookahead=6)) != PUBLISHED
