"""CollabVR as one node of your own graph, with your state mapped in and out.

    python examples/subgraph.py
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

import collabvr

solver = collabvr.build_collabvr().compile()  # compile it once; add your checkpointer to the parent


class Ticket(TypedDict, total=False):
    puzzle: str  # the parent's own name for the task
    verdict: str
    video: dict  # the final video's artifact ref


def solve(ticket: Ticket) -> dict:
    """Map the parent's state into the subgraph's input and its output back."""
    out = solver.invoke({"task": ticket["puzzle"]}, context=collabvr.Context(out_dir="runs/example-subgraph"))
    return {"verdict": f"{out['status']} (score {out['score']['score']:.2f})", "video": out["final"]}


builder = StateGraph(Ticket)
builder.add_node("solve", solve)
builder.add_edge(START, "solve")
builder.add_edge("solve", END)
parent = builder.compile()

if __name__ == "__main__":
    result = parent.invoke({"puzzle": "sim:maze/easy"})
    print(result["verdict"], result["video"]["uri"])
