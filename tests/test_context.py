"""The context pinned to the thread, a parent graph's own context, configurable, and dict contexts."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.graph import builder_for, compiled
from tests.scripted import ScriptedVGM, ScriptedVLM, install, plan, verdict


def _paused_thread(tmp_path, **fields):
    graph = builder_for("collabvr")().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 100}
    ctx = Context(out_dir=str(tmp_path / "run"), approve_plans=True, vgm="sim:strong", vlm="sim:noisy", max_steps=2,
                  seed=4, **fields)
    graph.invoke({"task": "sim:maze/easy"}, config, context=ctx)
    assert graph.get_state(config).next == ("approve",)
    return graph, config, ctx


def _finish(graph, config, **kwargs) -> dict:
    while graph.get_state(config).next:
        graph.invoke(Command(resume="approve"), config, **kwargs)
    return graph.get_state(config).values


def test_a_resume_without_a_context_goes_on_with_the_threads_own(tmp_path):
    graph, config, _ = _paused_thread(tmp_path)
    values = _finish(graph, config)  # no context at all: the Agent Server's and Studio's usual resume
    assert values["status"] == "complete"
    assert values["pinned"]["vgm"] == "sim:strong" and values["pinned"]["vlm"] == "sim:noisy"
    assert values["final"]["uri"].startswith(f"file://{tmp_path / 'run' / 'artifacts'}/")  # not runs/latest
    assert (tmp_path / "run" / "artifacts").is_dir()


def test_a_resume_that_switches_the_vgm_is_refused_naming_the_field_and_the_thread_goes_on(tmp_path):
    graph, config, ctx = _paused_thread(tmp_path)
    other = Context(out_dir=ctx.out_dir, approve_plans=True, vgm="sim:weak", vlm="sim:noisy", max_steps=2, seed=4)
    with pytest.raises(BadInput, match=r"^vgm: this thread's episode runs with 'sim:strong', the resume asked for 'sim:weak'"):
        graph.invoke(Command(resume="approve"), config, context=other)
    assert graph.get_state(config).next == ("approve",)  # nothing was taken: still waiting for the approval
    assert _finish(graph, config, context=ctx)["status"] == "complete"  # the same context goes on


def test_allow_switch_continues_with_the_new_backend_and_records_the_switch(tmp_path):
    graph, config, ctx = _paused_thread(tmp_path)
    values = _finish(graph, config, context=Context(vgm="sim:weak", allow_switch=True))
    assert values["switches"] == [{"fields": {"vgm": ["sim:strong", "sim:weak"]}}]
    assert values["pinned"]["vgm"] == "sim:weak" and values["pinned"]["vlm"] == "sim:noisy"  # the rest was kept


def test_pinned_options_are_scrubbed_and_a_resume_takes_the_key_from_the_environment(tmp_path, user_task):
    seen: list[dict] = []

    def factory(role, model, options):
        seen.append(dict(options))
        return vlm if role == "vlm" else vgm

    vlm, vgm = ScriptedVLM(deque([plan("a", complete=True)]), deque([verdict(True)])), ScriptedVGM()
    install(vlm, vgm)
    from collabvr.backends import registry

    registry.register("keyed", factory)
    graph = builder_for("collabvr")().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "k"}}
    secret = "sk-pinned-0123456789"
    ctx = Context(out_dir=str(tmp_path), vlm="keyed:m", vgm="script", vlm_options={"api_key": secret, "temperature": 0.1},
                  approve_plans=True, first_clip_seconds=1.0)
    graph.invoke({"task": user_task.model_dump(mode="json")}, config, context=ctx)
    pinned = graph.get_state(config).values["pinned"]
    assert pinned["vlm_options"] == {"api_key": "***", "temperature": 0.1} and secret not in str(graph.get_state(config))
    seen.clear()
    without_key = Context(out_dir=str(tmp_path), vlm="keyed:m", vgm="script", vlm_options={"temperature": 0.1},
                          approve_plans=True, first_clip_seconds=1.0)  # as collabvr run --resume passes it
    graph.invoke(Command(resume="approve"), config, context=without_key)  # a secret is not compared
    assert _finish(graph, config)["status"] == "complete"
    assert seen and all("api_key" not in o and o["temperature"] == 0.1 for o in seen)  # the key is the environment's


@dataclass
class AppCtx:
    """A parent app's own context: two fields shared with collabvr's by name, one of its own."""

    user_id: str
    seed: int = 0
    out_dir: str = "runs/app"


class Parent(TypedDict, total=False):
    task: str | dict
    status: str
    reason: str


def test_a_parent_graph_with_its_own_context_schema_hands_over_the_fields_it_shares(tmp_path):
    parent = StateGraph(Parent, context_schema=AppCtx)
    parent.add_node("solve", compiled("collabvr"))
    parent.add_edge(START, "solve")
    parent.add_edge("solve", END)
    out = parent.compile().invoke({"task": "sim:tiles/easy"}, context=AppCtx(user_id="u1", seed=2,
                                                                           out_dir=str(tmp_path / "app")))
    assert out["status"] == "complete", out
    assert out["task"]["id"] == "sim:tiles/easy#2"  # the parent's seed, by name
    assert (tmp_path / "app" / "artifacts").is_dir()  # and its out_dir; user_id is the parent's alone


def test_a_parent_graph_with_a_dict_context_shares_its_fields_too(tmp_path):
    class AppDict(TypedDict, total=False):
        user_id: str
        out_dir: str

    parent = StateGraph(Parent, context_schema=AppDict)
    parent.add_node("solve", compiled("single"))
    parent.add_edge(START, "solve")
    parent.add_edge("solve", END)
    out = parent.compile().invoke({"task": "sim:maze/easy"}, context={"user_id": "u", "out_dir": str(tmp_path / "d")})
    assert out["status"] == "generated" and (tmp_path / "d" / "artifacts").is_dir()


def test_a_dict_context_with_an_unknown_key_is_bad_input_naming_it(tmp_path):
    with pytest.raises(BadInput, match="unknown context field.*vmg"):
        compiled("collabvr").invoke({"task": "sim:maze/easy"}, context={"out_dir": str(tmp_path), "vmg": "sim:strong"})


def test_configurable_is_read_as_the_agent_server_reads_it(tmp_path):
    config = {"configurable": {"vgm": "sim:strong", "out_dir": str(tmp_path / "c"), "seed": 5, "thread_id": "x"}}
    out = compiled("collabvr").invoke({"task": "sim:maze/easy"}, config)
    assert out["task"]["id"] == "sim:maze/easy#5" and (tmp_path / "c" / "artifacts").is_dir()
    assert out["final"]["uri"].startswith(f"file://{tmp_path / 'c'}/")


def test_prepare_finds_a_bad_backend_before_any_call_not_after_three_failed_attempts(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BadInput, match="unknown backend provider 'nosuch'"):
        compiled("collabvr").invoke({"task": "sim:maze/easy"}, context={"vlm": "nosuch:model", "out_dir": str(tmp_path)})
    with pytest.raises(BadInput, match="openai:gpt-4.1 needs an API key"):
        compiled("single").invoke({"task": "sim:maze/easy"},
                                  context={"vgm": "sim", "vlm": "openai:gpt-4.1", "out_dir": str(tmp_path)})
    assert not (tmp_path / "artifacts").exists()  # nothing was made
