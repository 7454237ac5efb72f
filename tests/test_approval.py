"""Plan approval by the book: an answer the graph cannot read is asked again, never stored and replayed;
every method with a plan honours approve_plans, and those without one do not offer it."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.graph import builder_for, compiled
from collabvr.runner import run
from tests.test_langgraph_native import PROMPT, _terminal


def _paused(graph, config) -> dict:
    snapshot = graph.get_state(config)
    assert snapshot.next and snapshot.interrupts, snapshot.next
    return snapshot.interrupts[-1].value


def test_an_answer_it_cannot_read_is_asked_again_with_the_error_and_never_wedges_the_thread(tmp_path):
    graph = builder_for("collabvr")().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 100}
    ctx = Context(out_dir=str(tmp_path), approve_plans=True, max_steps=2)
    graph.invoke({"task": "sim:maze/easy"}, config, context=ctx)
    first = _paused(graph, config)
    assert "error" not in first and first["choices"] == ["approve", "edit", "stop"]
    for bad in ("maybe", {"action": "edit"}, {"action": "launch"}):
        graph.invoke(Command(resume=bad), config, context=ctx)  # no exception: the node asks again
        again = _paused(graph, config)
        assert graph.get_state(config).next == ("approve",)
        assert again["plan"] == first["plan"] and ("approve" in again["error"] or "instruction" in again["error"])
        assert graph.get_state(config).values.get("compute", {}).get("vgm_calls", 0) == 0  # nothing paid
    while graph.get_state(config).next:  # a valid answer goes on, on this same thread
        graph.invoke(Command(resume="approve"), config, context=ctx)
    values = graph.get_state(config).values
    assert values["status"] == "complete" and values["steps"][0]["plan"]["approval"] == "approved"


def test_an_invalid_answer_over_ainvoke_is_asked_again_too(tmp_path):
    import asyncio

    graph = builder_for("collabvr")().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    ctx = Context(out_dir=str(tmp_path), approve_plans=True)

    async def main() -> dict:
        await graph.ainvoke({"task": "sim:maze/easy"}, config, context=ctx)
        await graph.ainvoke(Command(resume="yes please"), config, context=ctx)
        return (await graph.aget_state(config)).interrupts[-1].value

    assert "yes please" in asyncio.run(main())["error"]


@pytest.mark.parametrize("method", ["upfront_plan", "posthoc_critique", "prompt_opt"])
def test_every_method_with_a_plan_pauses_for_approval_and_stops_when_told(method, tmp_path):
    asked: list[dict] = []

    def stop(payload):
        asked.append(payload)
        return {"action": "stop", "reason": "enough"}

    episode = run("sim:maze/hard", method=method, out_dir=str(tmp_path), approve_plans=True, on_interrupt=stop,
                  max_steps=2, first_clip_seconds=2.0, clip_seconds=1.0, rounds=3, seed=3)
    assert len(asked) == 1 and asked[0]["plan"]["instruction"] and asked[0]["prompt"]
    assert asked[0]["frame_url"].startswith("/artifacts/") and asked[0]["frame_url"].endswith(".png")
    assert episode.status == "stopped" and "enough" in episode.reason
    generations = episode.compute.get("vgm_calls", 0)
    assert generations == (0 if method == "upfront_plan" else 2 if method == "prompt_opt" else 1)  # nothing after the stop


def test_an_edited_upfront_plan_is_split_into_its_steps(tmp_path):
    episode = run("sim:maze/easy", method="upfront_plan", out_dir=str(tmp_path), approve_plans=True, max_steps=3,
                  on_interrupt=lambda payload: {"action": "edit", "instruction": "Step 1: move up 1 times\nStep 2: move up 1 times"})
    assert [s["plan"]["instruction"] for s in episode.state["steps"]] == ["move up 1 times", "move up 1 times"]
    assert episode.state["plan"]["approval"] == "edited"


@pytest.mark.parametrize("method", ["single", "pass_at_k"])
def test_methods_without_a_plan_do_not_offer_approval(method, tmp_path):
    assert "approve_plans" not in compiled(method).get_context_jsonschema()["properties"]
    assert "approve_plans" in compiled("collabvr").get_context_jsonschema()["properties"]
    with pytest.raises(BadInput, match="approve_plans"):
        compiled(method).invoke({"task": "sim:maze/easy"}, context={"approve_plans": True, "out_dir": str(tmp_path)})
    with pytest.raises(BadInput, match="no plan to approve"):
        run("sim:maze/easy", method=method, out_dir=str(tmp_path), approve_plans=True, on_interrupt=lambda p: "approve")


def test_the_terminal_asks_again_after_a_typo_and_shows_the_plan_once(tmp_path):
    out = tmp_path / "run"
    code, seen = _terminal(["run", "--task", "sim:maze/easy", "--seed", "0", "--out", str(out), "--approve"],
                           [(PROMPT, "x"), ("approve, edit or stop", "apporve"), ("approve, edit or stop", "a")])
    assert code == 0, seen[-2000:]
    steps = seen.count("plan: ")
    assert seen.count("answer approve, edit or stop") == 2  # the typos were refused, not taken as approvals
    assert seen.count(PROMPT) == steps + 2 and seen.count("step 1\x1b[0m plan:") == 1
