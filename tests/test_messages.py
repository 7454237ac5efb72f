"""The episode as chat messages: stream_mode="messages" and chat UIs show each plan, verdict, repair
and the result, with the URLs of the artifacts they are about."""

from __future__ import annotations

import re

from langchain_core.messages import AIMessage

from collabvr.context import Context
from collabvr.graph import compiled


def test_stream_mode_messages_shows_each_plan_verdict_repair_and_the_result(tmp_path):
    graph = compiled("collabvr")
    ctx = Context(out_dir=str(tmp_path), vlm="sim:noisy", seed=7)
    streamed = [(message, meta) for message, meta in graph.stream({"task": "sim:maze/hard"}, context=ctx,
                                                                     stream_mode="messages")]
    out = graph.invoke({"task": "sim:maze/hard"}, context=ctx)  # the same seeded episode
    texts = [m.content for m, _ in streamed]
    assert all(isinstance(m, AIMessage) for m, _ in streamed)
    assert texts == [m.content for m in out["messages"]]  # what streamed is what the state keeps
    nodes = [meta["langgraph_node"] for _, meta in streamed]
    assert nodes[0] == "plan" and texts[0].startswith("Step 1 plan: ") and "frame: /artifacts/" in texts[0]
    verdicts = [t for t, n in zip(texts, nodes, strict=True) if n == "verify"]
    assert verdicts and all(re.match(r"Step \d+, attempt \d+: (accepted|rejected|verification_failed)", t) for t in verdicts)
    assert any(n == "repair" and t.startswith("Repair (") for t, n in zip(texts, nodes, strict=True)) == bool(
        out.get("steps") and any(s["attempts"] > 1 for s in out["steps"]))
    assert nodes[-1] == "finalize" and texts[-1].startswith(f"{out['status']} ")
    assert f"final video: /artifacts/{out['final']['sha256']}.mp4" in texts[-1] == out["messages"][-1].content
    assert out["messages"][-1].additional_kwargs["artifacts"]["final_video"] == out["final_url"]
