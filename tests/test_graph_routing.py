"""Every routing edge of the CollabVR graph, driven by scripted backends."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from collabvr.context import Context
from collabvr.errors import InvalidOutput, RefusedOutput, TransientError
from collabvr.graph.collabvr import build_collabvr
from collabvr.nodes.common import store_of
from collabvr.nodes.repair import choose_strategy
from collabvr.runner import recursion_limit
from collabvr.state import history
from collabvr.task import Task
from tests.scripted import ScriptedVGM, ScriptedVLM, install, plan, shade, verdict


def run_script(task: Task, tmp_path, plans, verdicts, *, vgm_failures=(), **ctx_overrides):
    vlm = ScriptedVLM(deque(plans), deque(verdicts))
    vgm = ScriptedVGM(deque(vgm_failures))
    install(vlm, vgm)
    ctx = Context(vlm="script", vgm="script", out_dir=str(tmp_path / "run"), first_clip_seconds=1.0, clip_seconds=1.0, fps=8, **ctx_overrides)
    task = task.materialize(store_of(ctx))
    nodes: list[str] = []
    initial = {"task": task.model_dump(mode="json")}
    graph = build_collabvr().compile(checkpointer=InMemorySaver())
    config = {"recursion_limit": recursion_limit(ctx), "configurable": {"thread_id": "script"}}
    for chunk in graph.stream(initial, config, context=ctx, stream_mode="updates"):
        nodes.extend(chunk)
    state = dict(graph.get_state(config).values)  # every channel, not only the output schema's
    assert nodes[0] == "prepare"  # every method starts there; the tests below check the method's own order
    nodes = nodes[1:]
    # the whole episode: archived logs of accepted steps plus the current step
    state["attempts"], state["repairs"] = history(state, store_of(ctx).load_json)
    return state, nodes, vlm, vgm, ctx


def test_accept_with_steps_left_plans_again_then_finishes_when_plan_completes_task(user_task, tmp_path):
    state, nodes, vlm, vgm, _ = run_script(
        user_task, tmp_path, [plan("first"), plan("second", complete=True)], [verdict(True), verdict(True)]
    )
    assert nodes == ["plan", "generate", "verify", "plan", "generate", "verify", "finalize"]
    assert state["status"] == "complete"
    assert [s["plan"]["instruction"] for s in state["steps"]] == ["first", "second"]
    # the second step starts from the first clip's last frame
    assert state["steps"][1]["start_frame"] == state["steps"][0]["end_frame"]
    assert vgm.calls[1]["frame"].array.mean() == pytest.approx(shade(0, 7), abs=3)


def test_accept_on_last_step_finalizes_when_step_budget_is_spent(user_task, tmp_path):
    state, nodes, *_ = run_script(user_task, tmp_path, [plan("a"), plan("b")], [verdict(True), verdict(True)], max_steps=2)
    assert nodes[-1] == "finalize" and nodes.count("plan") == 2
    assert state["status"] == "step_budget_spent"


def test_plan_that_finds_task_already_complete_goes_straight_to_finalize(user_task, tmp_path):
    state, nodes, _, vgm, _ = run_script(user_task, tmp_path, [plan("", complete=True)], [])
    assert nodes == ["plan", "finalize"]
    assert state["status"] == "complete" and vgm.calls == []
    assert state["final"]["frames"] == 1  # the first frame alone


def test_reject_with_small_good_fraction_evolves_the_prompt(user_task, tmp_path):
    state, nodes, _, vgm, _ = run_script(
        user_task, tmp_path, [plan("go left", complete=True)],
        [verdict(False, good=0.1, suggestion="do not cross the wall"), verdict(True)],
    )
    assert nodes == ["plan", "generate", "verify", "repair", "generate", "verify", "finalize"]
    assert state["repairs"][0]["strategy"] == "prompt_evolution"
    assert vgm.calls[1]["prompt"] == "go left\nCorrection: do not cross the wall"
    assert vgm.calls[1]["frame"].array.mean() == pytest.approx(128, abs=2)  # still from the step's start frame


def test_reject_with_good_prefix_regenerates_from_that_frame_and_splices_prefix(user_task, tmp_path):
    state, nodes, _, vgm, ctx = run_script(
        user_task, tmp_path, [plan("go left 4", complete=True)],
        [verdict(False, good=0.5, suggestion="no jumping", remaining="go left 2"), verdict(True)],
    )
    assert state["repairs"][0]["strategy"] == "partial_regeneration"
    assert vgm.calls[1]["prompt"] == "go left 2\nCorrection: no jumping"
    cut = state["repairs"][0]["cut_frame"]
    assert cut == 3  # 8 frames, good fraction 0.5: frames 0..3 are good
    assert vgm.calls[1]["frame"].array.mean() == pytest.approx(shade(0, cut), abs=3)
    clip = store_of(ctx).load_video(state["steps"][0]["clip"])
    assert clip.num_frames == (cut + 1) + (8 - 1)  # prefix + new clip without its first frame
    means = clip.frames.reshape(clip.num_frames, -1).mean(axis=1)
    assert np.allclose(means[: cut + 1], [shade(0, t) for t in range(cut + 1)], atol=3)
    assert np.allclose(means[cut + 1 :], [shade(1, t) for t in range(1, 8)], atol=3)


def test_reject_with_action_too_large_replans_a_smaller_action(user_task, tmp_path):
    state, nodes, vlm, vgm, _ = run_script(
        user_task, tmp_path, [plan("walk across the room"), plan("take one step"), plan("finish", complete=True)],
        [verdict(False, good=0.0, too_large=True), verdict(True), verdict(True)],
    )
    assert state["repairs"][0]["strategy"] == "action_splitting"
    split_request = [req for role, req in vlm.calls if role == "plan"][1]
    assert split_request.split_from == "walk across the room"
    assert vgm.calls[1]["prompt"] == "take one step"
    assert state["steps"][0]["plan"]["instruction"] == "take one step"
    assert state["status"] == "complete"


def test_action_too_large_on_the_last_step_is_not_split():
    assert choose_strategy({"good_fraction": 0.0, "action_too_large": True}, threshold=0.2, last_step=True) == "prompt_evolution"
    assert choose_strategy({"good_fraction": 0.0, "action_too_large": True}, threshold=0.2, last_step=False) == "action_splitting"
    assert choose_strategy({"good_fraction": 0.5, "action_too_large": True}, threshold=0.2, last_step=False) == "partial_regeneration"
    assert choose_strategy(None, threshold=0.2, last_step=False) == "retry"


def test_reject_with_attempts_exhausted_finalizes_with_what_was_accepted(user_task, tmp_path):
    state, nodes, *_ = run_script(
        user_task, tmp_path, [plan("a"), plan("b")],
        [verdict(True), verdict(False), verdict(False), verdict(False)],
    )
    assert nodes[-3:] == ["generate", "verify", "finalize"]
    assert state["status"] == "attempts_exhausted"
    assert "step 2: 3 attempts failed" in state["reason"]
    assert len(state["steps"]) == 1
    assert state["final"]["sha256"] != state["task"]["first_frame"]["sha256"]


@pytest.mark.parametrize("error", [TransientError("503 unavailable"), InvalidOutput("not JSON"), RuntimeError("boom")])
def test_verifier_failure_is_a_typed_failed_attempt_never_an_accept(user_task, tmp_path, error):
    state, *_ = run_script(user_task, tmp_path, [plan("a", complete=True)], [error, error, error])
    assert [a["status"] for a in state["attempts"]] == ["verification_failed"] * 3
    assert state["attempts"][0]["error"]["kind"] == getattr(error, "kind", "error")
    assert state["steps"] == [] and state["status"] == "attempts_exhausted"


def test_verifier_returning_the_wrong_type_is_a_failure_not_an_accept(user_task, tmp_path):
    state, *_ = run_script(user_task, tmp_path, [plan("a", complete=True)], [{"accept": True}, "accept", True])
    assert {a["status"] for a in state["attempts"]} == {"verification_failed"}
    assert state["steps"] == []


def test_generation_failure_is_retried_then_recorded(user_task, tmp_path):
    state, nodes, *_ = run_script(
        user_task, tmp_path, [plan("a", complete=True)], [verdict(True)], vgm_failures=[RefusedOutput("filtered: violence")]
    )
    assert nodes == ["plan", "generate", "repair", "generate", "verify", "finalize"]
    assert state["attempts"][0]["status"] == "generation_failed"
    assert state["attempts"][0]["error"]["kind"] == "refused"
    assert state["repairs"][0]["strategy"] == "retry"
    assert state["status"] == "complete"


def test_planner_failure_retries_planning_within_the_attempt_budget(user_task, tmp_path):
    state, nodes, *_ = run_script(
        user_task, tmp_path, [InvalidOutput("bad json"), InvalidOutput("bad json"), InvalidOutput("bad json")], []
    )
    assert nodes == ["plan", "plan", "plan", "finalize"]
    assert state["status"] == "attempts_exhausted"
    assert all(a["status"] == "plan_failed" for a in state["attempts"])


def test_vary_seed_policy_gives_each_attempt_its_own_seed(user_task, tmp_path):
    _, _, _, vgm, _ = run_script(
        user_task, tmp_path, [plan("a", complete=True)], [verdict(False), verdict(True)], seed_policy="vary", seed=5
    )
    assert vgm.calls[0]["seed"] != vgm.calls[1]["seed"]
    _, _, _, fixed, _ = run_script(user_task, tmp_path, [plan("a", complete=True)], [verdict(False), verdict(True)], seed=5)
    assert fixed.calls[0]["seed"] == fixed.calls[1]["seed"] == 5


def test_state_holds_references_only(user_task, tmp_path):
    state, *_ = run_script(user_task, tmp_path, [plan("a", complete=True)], [verdict(False, good=0.5), verdict(True)])
    import json

    messages = state.pop("messages")  # chat messages: LangChain objects every checkpointer stores, a line or two each
    assert messages and all(len(m.content) < 400 for m in messages)
    text = json.dumps(state)  # plain JSON: no bytes, no arrays
    assert len(text) < 8_000
    assert all(isinstance(ref, dict) and "sha256" in ref for ref in (state["frame"], state["final"]))


def test_clip_seconds_budget_stops_before_a_clip_would_exceed_it(user_task, tmp_path):
    state, nodes, _, vgm, _ = run_script(
        user_task, tmp_path, [plan("a")], [verdict(False), verdict(False)], budget_seconds=1.5
    )
    assert len(vgm.calls) == 1  # a second 1 s clip would make 2 s > 1.5 s
    assert state["compute"]["clip_seconds"] <= 1.5
    assert state["status"] == "budget_spent"


def test_cached_calls_are_not_paid_twice_but_still_count_as_compute(user_task, tmp_path):
    cache = str(tmp_path / "cache")
    first, _, vlm1, vgm1, _ = run_script(user_task, tmp_path, [plan("a", complete=True)], [verdict(False, good=0.0, suggestion="fix"), verdict(True)], cache_dir=cache)
    second, _, vlm2, vgm2, _ = run_script(user_task, tmp_path, [], [], cache_dir=cache)  # empty scripts: every call must hit
    assert len(vgm1.calls) == 2 and vgm2.calls == [] and vlm2.calls == []
    assert second["compute"]["vgm_calls"] == first["compute"]["vgm_calls"] == 2
    assert second["compute"]["vgm_cache_hits"] == 2 and "vgm_cache_hits" not in first["compute"]
    assert second["compute"]["vlm_cache_hits"] == second["compute"]["vlm_calls"] == 3
    assert second["final"]["sha256"] == first["final"]["sha256"]


def test_failed_calls_are_never_cached(user_task, tmp_path):
    cache = str(tmp_path / "cache")
    first, *_ = run_script(user_task, tmp_path, [plan("a", complete=True)], [InvalidOutput("garbage")] * 3, cache_dir=cache)
    assert first["status"] == "attempts_exhausted"
    second, _, vlm, vgm, _ = run_script(user_task, tmp_path, [], [verdict(True)], cache_dir=cache)
    assert [role for role, _ in vlm.calls] == ["verify"]  # plan and clip came from the cache; the failed verify did not
    assert vgm.calls == [] and second["status"] == "complete"


def test_graph_accepts_a_task_spec_string_as_input(tmp_path):
    ctx = Context(out_dir=str(tmp_path / "run"), first_clip_seconds=1.0, clip_seconds=1.0, max_steps=1, seed=4)
    final = build_collabvr().compile().invoke({"task": "sim:sort/easy"}, {"recursion_limit": 50}, context=ctx)
    assert final["task"]["id"] == "sim:sort/easy#4" and final["task"]["first_frame"]["mime"] == "image/png"
    assert final["status"] == "complete"
