"""LangGraph-native use: defaults, embedding, schemas, state editing on every edge, plan approval."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

import collabvr
from collabvr.backends import registry
from collabvr.backends.sim import make as make_sim
from collabvr.context import Context
from collabvr.graph import METHODS, builder_for
from collabvr.runner import run

ROOT = Path(__file__).resolve().parents[1]


class CountingVGM:
    """The sim VGM, counting its generations: a resume must not repeat one."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.lock = threading.Lock()

    def generate(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
        return self.inner.generate(*args, **kwargs)


@pytest.fixture
def counting_vgm():
    made: list[CountingVGM] = []

    def factory(role, model, options):
        backend = make_sim(role, model, options)
        if role == "vgm":
            made.append(CountingVGM(backend))
            return made[-1]
        return backend

    registry.register("countsim", factory)
    yield made
    registry.register("countsim", make_sim)


def test_the_graph_runs_on_its_defaults_with_no_context(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default out_dir is runs/latest
    out = collabvr.graph.collabvr.graph.invoke({"task": "sim:maze/easy"})  # reachable after a bare import
    assert out["status"] == "complete" and out["score"]["solved"] is True
    assert set(out) <= {"task", "status", "reason", "score", "final", "final_url", "steps", "compute", "messages"}  # the output schema
    assert (tmp_path / "runs" / "latest" / "artifacts").is_dir()


def test_a_parent_graph_without_a_context_schema_embeds_it_as_a_subgraph(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Parent(TypedDict, total=False):
        task: str | dict  # in: a spec; out: the task as the episode ran it (id, prompt, first frame ref)
        status: str
        score: dict
        note: str

    def summarise(state: Parent) -> dict:
        return {"note": f"{state['task']['id']} ended {state['status']} with score {state['score']['score']:.2f}"}

    parent = StateGraph(Parent)
    parent.add_node("solve", collabvr.build_collabvr().compile())
    parent.add_node("summarise", summarise)
    parent.add_edge(START, "solve")
    parent.add_edge("solve", "summarise")
    parent.add_edge("summarise", END)
    out = parent.compile().invoke({"task": "sim:tiles/easy"})
    assert out["status"] == "complete" and out["note"].startswith("sim:tiles/easy#0 ended complete")


def test_input_and_output_schemas_are_what_a_caller_passes_and_gets():
    graph = builder_for("collabvr")().compile()
    inputs = graph.get_input_jsonschema()
    assert inputs["required"] == ["task"] and {"string", "object"} <= {t.get("type") for t in inputs["properties"]["task"]["anyOf"]}
    outputs = set(graph.get_output_jsonschema()["properties"])
    assert {"status", "score", "final", "steps", "compute"} <= outputs and "pending" not in outputs
    context = graph.get_context_jsonschema()["properties"]
    assert {"vlm", "vgm", "approve_plans", "max_steps"} <= set(context)


@pytest.mark.parametrize("method", list(METHODS))
def test_update_state_works_at_every_conditional_edge(method, tmp_path):
    """update_state runs the next router without a runtime: routers must read state only."""
    builder = builder_for(method)()
    routed = set(builder.branches)  # nodes whose next node a router decides
    graph = builder.compile(checkpointer=InMemorySaver(), interrupt_after=list(routed))
    config = {"configurable": {"thread_id": method}, "recursion_limit": 100}
    ctx = Context(out_dir=str(tmp_path), vlm="sim:noisy", max_steps=2, first_clip_seconds=2, clip_seconds=1)
    edited = set()
    graph_input = {"task": "sim:maze/easy"}
    while True:
        ran = [node for chunk in graph.stream(graph_input, config, context=ctx, stream_mode="updates") for node in chunk
               if node in routed]
        snapshot = graph.get_state(config)
        if not snapshot.next:
            break
        node = ran[-1]
        graph.update_state(config, {"reason": "edited by hand"})  # as Studio's state editor does
        assert graph.get_state(config).next == snapshot.next, node  # the router ran on state alone, same route
        edited.add(node)
        graph_input = None
    assert routed & edited, (routed, edited)
    assert graph.get_state(config).values["status"] != "running"


def test_approval_approve_edit_and_stop_and_no_generation_is_repeated(tmp_path, counting_vgm):
    answers = iter(["approve", {"action": "edit", "instruction": "move up 1 times"}, "approve", "approve", "approve"])
    asked: list[dict] = []

    def approver(payload):
        asked.append(payload)
        assert Path(payload["frame_path"]).is_file() and payload["choices"] == ["approve", "edit", "stop"]
        return next(answers)

    events: list[dict] = []
    episode = run("sim:maze/easy", vgm="countsim", out_dir=str(tmp_path / "a"), approve_plans=True,
                  on_interrupt=approver, on_event=events.append)
    decisions = [e["decision"] for e in events if e["event"] == "approval"]
    assert decisions[:2] == ["approve", "edit"] and len(decisions) == len(asked)
    attempts = episode.attempts
    assert counting_vgm[-1].calls == sum(1 for a in attempts if a.get("clip") or a["status"] == "generation_failed")
    edited = [s for s in episode.state["steps"] if s["plan"].get("approval") == "edited"]
    assert all(s["plan"]["instruction"] == "move up 1 times" for s in edited)

    before = counting_vgm[-1].calls  # one VGM per process (the registry's cache): count this run's calls
    stopped = run("sim:maze/hard", vgm="countsim", out_dir=str(tmp_path / "s"), approve_plans=True,
                  on_interrupt=lambda payload: {"action": "stop", "reason": "not worth it"})
    assert stopped.status == "stopped" and "not worth it" in stopped.reason
    assert counting_vgm[-1].calls == before and stopped.compute.get("vgm_calls", 0) == 0


def test_resuming_an_interrupt_with_command_never_regenerates(tmp_path, counting_vgm):
    graph = builder_for("collabvr")().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 100}
    ctx = Context(out_dir=str(tmp_path), vgm="countsim", approve_plans=True)
    graph.invoke({"task": "sim:maze/easy"}, config, context=ctx)
    start = counting_vgm[-1].calls if counting_vgm else 0
    assert start == 0  # paused before the first generation
    steps = 0
    while graph.get_state(config).next:
        assert graph.get_state(config).next == ("approve",)
        graph.invoke(Command(resume="approve"), config, context=ctx)
        steps += 1
    state = graph.get_state(config).values
    assert state["status"] == "complete" and steps == len(state["steps"])
    assert counting_vgm[-1].calls == state["compute"]["vgm_calls"]  # each generation made once, resumes included


PROMPT = "[a]pprove, [e]dit or [s]top"


def _terminal(args: list[str], script: list[tuple[str, str]], *, kill_at: int | None = None, timeout: float = 120
              ) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal. Each (prompt, reply) of ``script`` is typed when its prompt
    appears; approval prompts after the script are approved; ``kill_at``: SIGKILL at that approval prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "collabvr.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, cwd=ROOT)
    os.close(slave)
    seen, pending, answered, deadline = "", list(script), {}, time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([master], [], [], 0.1)[0]:
            try:
                seen += os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
        if kill_at is not None and seen.count(PROMPT) >= kill_at:
            proc.kill()
            break
        text, reply = pending[0] if pending else (PROMPT, "a")
        if seen.count(text) > answered.get(text, 0):
            os.write(master, (reply + "\n").encode())
            answered[text] = answered.get(text, 0) + 1
            if pending:
                pending.pop(0)
    proc.wait(timeout=10)
    os.close(master)
    return proc.returncode, seen


def test_cli_approve_edits_a_plan_at_the_terminal(tmp_path):
    out = tmp_path / "run"
    code, seen = _terminal(["run", "--task", "sim:maze/easy", "--seed", "0", "--out", str(out), "--approve"],
                           [(PROMPT, "e"), ("new instruction", "move up 1 times")])
    assert code == 0, seen[-2000:]
    assert "frame:" in seen and "plan edit: move up 1 times" in seen
    trace = json.loads((out / "trace.json").read_text())
    assert trace["steps"][0]["plan"]["instruction"] == "move up 1 times" and trace["status"] == "complete"


def test_cli_resume_continues_a_killed_run_without_redoing_its_accepted_steps(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--task", "sim:maze/hard", "--seed", "7", "--out", str(out), "--approve"]
    code, seen = _terminal(args, [], kill_at=2)  # killed while asking about the second step's plan
    assert code != 0 and PROMPT in seen
    db = out / "checkpoints.sqlite"
    assert db.is_file() and not (out / "trace.json").exists()
    code, seen = _terminal(["run", "--resume", str(out)], [])
    assert code == 0, seen[-2000:]
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"] == "complete" and len(trace["steps"]) >= 2
    assert seen.count(PROMPT) == len(trace["steps"]) - 1  # the first step was not planned or approved again
    assert trace["compute"]["vgm_calls"] == sum(1 for a in trace["attempts"] if a.get("clip"))  # nothing generated twice


def test_the_sim_vgm_reports_its_progress_while_it_renders(tmp_path):
    events: list[dict] = []
    episode = run("sim:maze/hard", seed=7, out_dir=str(tmp_path), on_event=events.append)
    generating = [e for e in events if e["event"] == "generating"]
    assert generating and {e["unit"] for e in generating} == {"move"}
    for (step, attempt) in {(a["step"], a["index"]) for a in episode.attempts if a.get("clip")}:
        mine = [e for e in generating if (e["step"], e["attempt"]) == (step, attempt)]
        assert [e["done"] for e in mine] == list(range(1, len(mine) + 1)) and mine[-1]["done"] == mine[-1]["total"]
        kinds = [e["event"] for e in events if (e["step"], e["attempt"]) == (step, attempt)]
        assert kinds.index("generating") < kinds.index("generated")
