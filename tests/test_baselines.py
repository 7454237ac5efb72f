"""The baselines' wiring, budgets and compute, driven by scripted backends; one sim episode each."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest

from collabvr.backends.sim.config import VLMConfig
from collabvr.backends.sim.families import FAMILIES
from collabvr.backends.sim.vlm import SimVLM
from collabvr.context import Context
from collabvr.errors import BadInput, InvalidOutput, RefusedOutput, TransientError
from collabvr.graph import METHODS, builder_for, compiled, parse_method
from collabvr.nodes.baseline import horizon
from collabvr.nodes.common import store_of
from collabvr.nodes.upfront import script_of
from collabvr.records import PlanRequest
from collabvr.runner import run
from collabvr.task import Task
from tests.scripted import ScriptedVGM, ScriptedVLM, critique, install, plan, selection, shade

BASELINES = ("single", "pass_at_k", "upfront_plan", "posthoc_critique", "prompt_opt")


def run_baseline(method, task, tmp_path, *, plans=(), selections=(), critiques=(), vgm_failures=(), **overrides):
    """Run a baseline on scripted backends: (final state, nodes in order, vlm, vgm, ctx).

    Candidates run one at a time (max_concurrency=1) so the scripted VGM's call order is the
    ``Send`` order; every run checks that the compute counters equal the calls made."""
    vlm = ScriptedVLM(plans=deque(plans), selections=deque(selections), critiques=deque(critiques))
    vgm = ScriptedVGM(deque(vgm_failures))
    install(vlm, vgm)
    settings = {"max_steps": 2, "first_clip_seconds": 1.0, "clip_seconds": 1.0, "fps": 8} | overrides
    ctx = Context(vlm="script", vgm="script", out_dir=str(tmp_path / "run"), **settings)
    task = task.materialize(store_of(ctx))
    nodes: list[str] = []
    state: dict = {}
    config = {"recursion_limit": 50, "max_concurrency": 1}
    for mode, chunk in builder_for(method)().compile().stream(
        {"task": task.model_dump(mode="json")}, config, context=ctx, stream_mode=["updates", "values"]
    ):
        if mode == "updates":
            nodes.extend(chunk)
        else:
            state = chunk
    assert_compute_matches(state, vlm, vgm, failures=list(vgm_failures))
    return state, nodes, vlm, vgm, ctx


def assert_compute_matches(state, vlm, vgm, *, failures):
    compute = state.get("compute", {})
    assert compute.get("vgm_calls", 0) == len(vgm.calls)
    ok = [c for i, c in enumerate(vgm.calls) if i >= len(failures) or failures[i] is None]
    assert compute.get("vgm_failures", 0) == len(vgm.calls) - len(ok)
    made = sum(max(2, round(c["seconds"] * c["fps"])) / c["fps"] for c in ok)
    assert compute.get("clip_seconds", 0.0) == pytest.approx(made)
    assert compute.get("vlm_calls", 0) == len(vlm.calls)
    for role in ("plan", "verify", "select", "critique"):
        assert compute.get(f"vlm_{role}_calls", 0) == sum(r == role for r, _ in vlm.calls)


def mean(image_or_video) -> float:
    return float(np.asarray(image_or_video).mean())


def by_index(state, index):
    return next(a for a in state["attempts"] if a["index"] == index)


# ----------------------------------------------------------------------------- single


def test_single_makes_one_horizon_video_from_the_raw_task_prompt(user_task, tmp_path):
    state, nodes, vlm, vgm, ctx = run_baseline("single", user_task, tmp_path, seed=3)
    assert nodes == ["prepare", "generate", "finalize"]
    assert vlm.calls == []
    (call,) = vgm.calls
    assert call["prompt"] == "reach the goal" and call["seed"] == 3
    assert call["seconds"] == horizon(ctx) == 2.0  # first 1 s + (2 - 1) x 1 s
    assert mean(call["frame"].array) == pytest.approx(128, abs=2)  # the task's first frame
    assert state["final"] == state["attempts"][0]["clip"]
    assert state["status"] == "generated"


def test_single_generation_failure_is_a_typed_failure(user_task, tmp_path):
    state, *_ = run_baseline("single", user_task, tmp_path, vgm_failures=[RefusedOutput("filtered: violence")])
    assert state["status"] == "generation_failed" and "filtered" in state["reason"]
    assert state["attempts"][0]["error"]["kind"] == "refused"
    assert state["final"]["frames"] == 1  # no video: the first frame alone


# ----------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize("policy", ["fixed", "vary"])
def test_pass_at_k_fans_out_k_distinct_seeds_and_final_is_the_selected_clip(user_task, tmp_path, policy):
    state, nodes, vlm, vgm, ctx = run_baseline(
        "pass_at_k", user_task, tmp_path, k=3, seed=7, seed_policy=policy, selections=[selection(2)]
    )
    assert nodes == ["prepare", "candidate", "candidate", "candidate", "select", "finalize"]
    seeds = [c["seed"] for c in vgm.calls]
    assert len(set(seeds)) == 3
    if policy == "fixed":
        assert seeds == [7, 8, 9]
    assert all(c["prompt"] == "reach the goal" and c["seconds"] == horizon(ctx) for c in vgm.calls)
    (select_request,) = [req for role, req in vlm.calls if role == "select"]
    assert len(select_request.candidates) == 3
    chosen = by_index(state, 2)
    assert chosen["status"] == "selected" and chosen["selection"]["candidate"] == 2
    assert state["final"]["sha256"] == chosen["clip"]["sha256"]
    final = store_of(ctx).load_video(state["final"])
    assert np.array_equal(final.frames, select_request.candidates[2].frames)
    assert [a["status"] for a in state["attempts"]] == ["not_selected", "not_selected", "selected"]
    assert state["status"] == "selected"


@pytest.mark.parametrize("answer", [InvalidOutput("not JSON"), TransientError("503"), selection(5)])
def test_pass_at_k_selector_failure_is_not_an_accept(user_task, tmp_path, answer):
    state, nodes, *_ = run_baseline("pass_at_k", user_task, tmp_path, k=2, selections=[answer])
    assert nodes[-2:] == ["select", "finalize"]
    assert state["status"] == "selection_failed"
    assert all(a["status"] == "selection_failed" and "selection" not in a for a in state["attempts"])
    assert state["final"] == by_index(state, 0)["clip"]  # something to show, but never called selected
    assert "not selected" in state["reason"]


def test_pass_at_k_failed_candidates_are_not_offered_to_the_selector(user_task, tmp_path):
    state, _, vlm, _, _ = run_baseline(
        "pass_at_k", user_task, tmp_path, k=3, selections=[selection(0)], vgm_failures=[RefusedOutput("filtered"), None, None]
    )
    (select_request,) = [req for role, req in vlm.calls if role == "select"]
    assert len(select_request.candidates) == 2
    assert by_index(state, 0)["status"] == "generation_failed"
    assert state["final"] == by_index(state, 1)["clip"] and by_index(state, 1)["status"] == "selected"


def test_pass_at_k_with_every_candidate_failed_makes_no_select_call(user_task, tmp_path):
    state, nodes, vlm, *_ = run_baseline("pass_at_k", user_task, tmp_path, k=2, vgm_failures=[RuntimeError("boom")] * 2)
    assert vlm.calls == [] and nodes[-2:] == ["select", "finalize"]
    assert state["status"] == "generation_failed" and state["final"]["frames"] == 1


# ----------------------------------------------------------------------------- up-front plan


def test_upfront_plan_plans_once_then_renders_each_line_from_the_previous_last_frame(user_task, tmp_path):
    script = plan("Step 1: go left\nStep 2: go up\nStep 3: go right")
    state, nodes, vlm, vgm, ctx = run_baseline(
        "upfront_plan", user_task, tmp_path, max_steps=3, first_clip_seconds=2.0, seed=4, plans=[script]
    )
    assert nodes == ["prepare", "plan", *["generate", "advance"] * 3, "finalize"]
    (request,) = [req for role, req in vlm.calls if role == "plan"]
    assert request.upfront and request.step == 1 and request.max_steps == 3
    assert [c["prompt"] for c in vgm.calls] == ["go left", "go up", "go right"]
    assert [c["seconds"] for c in vgm.calls] == [2.0, 1.0, 1.0]
    assert [c["seed"] for c in vgm.calls] == [4, 4, 4]
    assert mean(vgm.calls[0]["frame"].array) == pytest.approx(128, abs=2)
    assert mean(vgm.calls[1]["frame"].array) == pytest.approx(shade(0, 15), abs=3)  # last frame of clip 1
    assert mean(vgm.calls[2]["frame"].array) == pytest.approx(shade(1, 7), abs=3)
    assert not any(role == "verify" for role, _ in vlm.calls)
    assert state["final"]["frames"] == 16 + 8 + 8  # the three clips concatenated
    assert state["status"] == "plan_executed"


def test_upfront_plan_failure_stops_before_any_generation(user_task, tmp_path):
    state, nodes, _, vgm, _ = run_baseline("upfront_plan", user_task, tmp_path, plans=[InvalidOutput("bad json")])
    assert nodes == ["prepare", "plan", "finalize"] and vgm.calls == []
    assert state["status"] == "plan_failed" and state["final"]["frames"] == 1


def test_upfront_plan_generation_failure_stops_with_what_was_rendered(user_task, tmp_path):
    state, nodes, *_ = run_baseline(
        "upfront_plan", user_task, tmp_path, plans=[plan("Step 1: a\nStep 2: b")], vgm_failures=[None, RefusedOutput("no")]
    )
    assert nodes == ["prepare", "plan", "generate", "advance", "generate", "finalize"]
    assert state["status"] == "generation_failed"
    assert [a["status"] for a in state["attempts"]] == ["generated", "generation_failed"]
    assert state["final"]["frames"] == 8  # the one rendered step


def test_script_of_splits_step_lines_and_falls_back_to_one_step():
    assert script_of("Step 1: left\nstep 2: up, then down\nStep 3: right", 3) == ["left", "up, then down", "right"]
    assert script_of("go left then up", 3) == ["go left then up"]
    assert script_of("Step 1: a\nStep 2: b\nStep 3: c", 2) == ["a", "b\nc"]  # never more clips than max_steps
    assert script_of("", 3) == []


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sim_upfront_plan_splits_the_optimal_solution_into_nearly_equal_steps(family):
    task = Task.sim(f"{family}/medium", seed=1, size=128)
    frame = task.first_image()
    fam = FAMILIES[family]
    solution = fam.solve(fam.decode(frame.array))
    request = PlanRequest(task=task.prompt, frame=frame, step=1, max_steps=3, seconds=6.0, upfront=True, family=family)
    result = SimVLM(VLMConfig(plan_noise=0.0)).plan(request)
    steps = script_of(result.instruction, 3)
    assert result.instruction.startswith("Step 1: ") and len(steps) == 3
    sizes = [len(fam.parse(s)) for s in steps]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [m for s in steps for m in fam.parse(s)] == solution
    assert result.task_complete


# ----------------------------------------------------------------------------- post-hoc critique


def test_posthoc_critique_regenerates_the_whole_video_from_the_first_frame_with_the_revised_prompt(user_task, tmp_path):
    state, nodes, vlm, vgm, ctx = run_baseline(
        "posthoc_critique", user_task, tmp_path, rounds=3, critiques=[critique(revised="fix A"), critique(revised="fix B")]
    )
    assert nodes == ["prepare", "generate", "critique", "generate", "critique", "generate", "finalize"]
    assert [c["prompt"] for c in vgm.calls] == ["reach the goal", "fix A", "fix B"]
    assert all(c["seconds"] == horizon(ctx) and mean(c["frame"].array) == pytest.approx(128, abs=2) for c in vgm.calls)
    requests = [req for role, req in vlm.calls if role == "critique"]
    assert [r.prompt for r in requests] == ["reach the goal", "fix A"]
    assert mean(requests[1].video.frames[1]) == pytest.approx(shade(1, 1), abs=3)  # the second video
    assert state["final"] == state["attempts"][-1]["clip"] and state["status"] == "rounds_spent"
    assert [bool(a.get("critique")) for a in state["attempts"]] == [True, True, False]


def test_posthoc_critique_stops_at_the_first_video_called_solved(user_task, tmp_path):
    state, nodes, _, vgm, _ = run_baseline("posthoc_critique", user_task, tmp_path, rounds=3, critiques=[critique(solved=True)])
    assert nodes == ["prepare", "generate", "critique", "finalize"] and len(vgm.calls) == 1
    assert state["status"] == "solved" and state["final"] == state["attempts"][0]["clip"]


def test_posthoc_critique_failure_is_typed_and_keeps_the_last_video(user_task, tmp_path):
    state, nodes, *_ = run_baseline("posthoc_critique", user_task, tmp_path, rounds=3, critiques=[InvalidOutput("garbage")])
    assert nodes == ["prepare", "generate", "critique", "finalize"]
    assert state["status"] == "critique_failed" and state["attempts"][0]["error"]["kind"] == "invalid_output"
    assert state["final"] == state["attempts"][0]["clip"]


# ----------------------------------------------------------------------------- prompt optimisation


def test_prompt_opt_makes_two_candidates_per_round_and_carries_the_rewrite(user_task, tmp_path):
    state, nodes, vlm, vgm, _ = run_baseline(
        "prompt_opt", user_task, tmp_path, rounds=2, seed=5,
        selections=[selection(1), selection(0)], critiques=[critique(revised="better")],
    )
    assert nodes == ["prepare", "candidate", "candidate", "select", "critique", "candidate", "candidate", "select", "finalize"]
    assert [c["prompt"] for c in vgm.calls] == ["reach the goal"] * 2 + ["better"] * 2
    assert vgm.calls[0]["seed"] != vgm.calls[1]["seed"] and vgm.calls[2]["seed"] != vgm.calls[3]["seed"]
    (review,) = [req for role, req in vlm.calls if role == "critique"]
    assert mean(review.video.frames[1]) == pytest.approx(shade(1, 1), abs=3)  # round 1's selected candidate
    assert by_index(state, 1)["critique"]["revised_prompt"] == "better"
    assert state["final"] == by_index(state, 2)["clip"]  # round 2's selection: its first candidate
    assert [a["status"] for a in state["attempts"]] == ["not_selected", "selected", "selected", "not_selected"]
    assert state["status"] == "rounds_spent"


def test_prompt_opt_selector_failure_ends_the_episode_unselected(user_task, tmp_path):
    state, nodes, *_ = run_baseline("prompt_opt", user_task, tmp_path, rounds=2, selections=[InvalidOutput("?")])
    assert nodes[-2:] == ["select", "finalize"] and state["status"] == "selection_failed"
    assert not any(a["status"] == "selected" for a in state["attempts"])


# ----------------------------------------------------------------------------- budgets

BUDGETS = {  # method: (context, scripts, budget, generations it affords)
    "single": ({}, {}, 0.5, 0),
    "pass_at_k": ({"k": 4}, {"selections": [selection(0)]}, 2.5, 2),
    "upfront_plan": ({"max_steps": 3}, {"plans": [plan("Step 1: a\nStep 2: b\nStep 3: c")]}, 2.5, 2),
    "posthoc_critique": ({"rounds": 3}, {"critiques": [critique()]}, 2.5, 2),
    "prompt_opt": ({"rounds": 3}, {"selections": [selection(0), selection(0)], "critiques": [critique()]}, 3.0, 3),
}


@pytest.mark.parametrize("method", BASELINES)
def test_budget_stops_before_a_generation_would_exceed_it(user_task, tmp_path, method):
    settings, scripts, budget, affords = BUDGETS[method]
    overrides = {"max_steps": 1, **settings}  # whole videos of 1 s; up-front steps of 1 s
    state, *_, vgm, _ = run_baseline(method, user_task, tmp_path, budget_seconds=budget, **scripts, **overrides)
    assert len(vgm.calls) == affords
    assert state["compute"].get("clip_seconds", 0.0) <= budget
    assert state["status"] == "budget_spent"


# ----------------------------------------------------------------------------- method names and diagrams


def test_every_baseline_is_registered_and_parses_by_name():
    assert set(BASELINES) <= set(METHODS)
    for name in BASELINES:
        assert parse_method(name) == (name, {})
    assert parse_method("pass@4") == ("pass_at_k", {"k": 4})


@pytest.mark.parametrize("spec", ["pass@0", "pass@-1", "pass@x", "pass@", "single@2", "best_of_n", ""])
def test_bad_method_names_are_bad_input(spec):
    with pytest.raises(BadInput):
        parse_method(spec)


EDGES = {  # (source, target, conditional)
    "single": {("prepare", "generate", True), ("prepare", "finalize", True), ("generate", "finalize", False)},
    "pass_at_k": {("prepare", "candidate", True), ("prepare", "finalize", True), ("candidate", "select", False),
                  ("select", "finalize", False)},
    "upfront_plan": {("prepare", "plan", False), ("plan", "generate", True), ("plan", "finalize", True),
                     ("generate", "advance", True), ("generate", "finalize", True), ("advance", "generate", True),
                     ("advance", "finalize", True), ("plan", "approve", True), ("approve", "generate", True),
                     ("approve", "finalize", True)},
    "posthoc_critique": {("prepare", "generate", True), ("prepare", "finalize", True), ("generate", "critique", True),
                         ("generate", "finalize", True), ("critique", "generate", True), ("critique", "finalize", True),
                         ("critique", "approve", True), ("approve", "generate", True), ("approve", "finalize", True)},
    "prompt_opt": {("prepare", "candidate", True), ("prepare", "finalize", True), ("candidate", "select", False),
                   ("select", "critique", True), ("select", "finalize", True), ("critique", "candidate", True),
                   ("critique", "finalize", True), ("critique", "approve", True), ("approve", "candidate", True),
                   ("approve", "finalize", True)},
}


@pytest.mark.parametrize("method", BASELINES)
def test_drawn_graph_has_exactly_the_routed_edges(method):
    drawn = compiled(method).get_graph()
    edges = {(e.source, e.target, e.conditional) for e in drawn.edges if "__" not in e.source + e.target}
    assert edges == EDGES[method]
    assert "prepare" in drawn.draw_mermaid()


# ----------------------------------------------------------------------------- real sim episodes


@pytest.mark.parametrize("method,ending", [("single", "generated"), ("pass@2", "selected"), ("upfront_plan", "plan_executed"),
                                           ("posthoc_critique", "solved"), ("prompt_opt", "solved")])
def test_sim_episode_writes_trace_final_video_and_score(tmp_path, method, ending):
    out = tmp_path / "run"
    episode = run(Task.sim("maze/easy", seed=0, size=128), method=method, out_dir=str(out),
                  max_steps=2, first_clip_seconds=2.0, clip_seconds=1.0, rounds=2)
    trace = json.loads((out / "trace.json").read_text())
    assert (out / "final.mp4").stat().st_size > 0 and episode.score is not None
    assert trace["status"] == episode.status == ending  # seeded: each method's own ending
    assert 0.0 <= trace["score"]["score"] <= 1.0
    clips = [a for a in trace["attempts"] if a.get("clip")]
    assert len(trace["files"]["clips"]) == len(clips) == trace["compute"]["vgm_calls"] >= 1
