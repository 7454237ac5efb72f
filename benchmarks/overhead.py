"""Orchestration overhead: the CollabVR graph against a plain Python loop making the same calls.

The loop calls the very same node functions and routers, and applies the same reducers, so both
sides make identical sim backend calls (everything is seeded) and the difference is what LangGraph
adds. Runs alternate between the two sides; we report the median ratio of wall times and the
median extra milliseconds per node transition.

    python benchmarks/overhead.py [--episodes 12] [--repeats 5] [--size 128]

Bar (issue 2): ratio <= 1.3x and <= 2 ms per transition.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from langgraph.runtime import Runtime

from collabvr.aio import run_inline
from collabvr.context import Context
from collabvr.graph import collabvr as method
from collabvr.nodes.prepare import prepare
from collabvr.state import State, add_counts
from collabvr.task import Task

NODES = {"prepare": prepare, "plan": method.plan, "generate": method.generate, "verify": method.verify,
         "repair": method.repair, "finalize": method.finalize}
ROUTERS = {"prepare": lambda state: "plan", "plan": method.after_plan, "generate": method.after_generate,
           "verify": method.after_verify, "repair": lambda state: "generate", "finalize": lambda state: None}


def plain_loop(initial: State, ctx: Context) -> tuple[State, int]:
    """The same episode without LangGraph: call node, merge update, route."""
    runtime = Runtime(context=ctx)
    state: dict[str, Any] = dict(initial)
    node, transitions = "prepare", 0
    while node is not None:
        update = run_inline(NODES[node](state, runtime))  # the node's own body, driven without LangGraph
        for key, value in update.items():
            if key == "compute":
                state[key] = add_counts(state.get(key), value)
            elif key in ("steps", "messages", "switches"):
                state[key] = [*state.get(key, []), *value]
            else:
                state[key] = value
        transitions += 1
        node = ROUTERS[node](state)
    return state, transitions


def graph_run(initial: State, ctx: Context) -> tuple[State, int]:
    transitions = 0
    final = None
    # "values" streams the output schema's channels, the final video among them
    for mode, chunk in method.graph.stream(initial, {"recursion_limit": 200}, context=ctx, stream_mode=["updates", "values"]):
        if mode == "updates":
            transitions += len(chunk)
        else:
            final = chunk
    return final, transitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    families = ["maze", "tiles", "sokoban", "sort"]
    work = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.episodes):
            task = Task.sim(f"{families[i % 4]}/{['easy', 'medium', 'hard'][i % 3]}", seed=i, size=args.size)
            ctx = Context(out_dir=f"{tmp}/ep{i}", seed=i)
            work.append(({"task": task.model_dump(mode="json")}, ctx))
        for initial, ctx in work:  # warm both paths (imports, solver caches, artifact store)
            plain_loop(initial, ctx)
            graph_run(initial, ctx)

        ratios, per_transition, loop_ms, graph_ms, counts = [], [], [], [], []
        for repeat in range(args.repeats):
            for initial, ctx in work:
                sides = [("loop", plain_loop), ("graph", graph_run)]
                if repeat % 2:
                    sides.reverse()
                timing: dict[str, float] = {}
                results: dict[str, tuple[State, int]] = {}
                for name, fn in sides:
                    t0 = time.perf_counter()
                    results[name] = fn(initial, ctx)
                    timing[name] = time.perf_counter() - t0
                (loop_state, n_loop), (graph_state, n_graph) = results["loop"], results["graph"]
                assert n_loop == n_graph and loop_state["final"] == graph_state["final"], "the two sides diverged"
                ratios.append(timing["graph"] / timing["loop"])
                per_transition.append((timing["graph"] - timing["loop"]) * 1000 / n_graph)
                loop_ms.append(timing["loop"] * 1000)
                graph_ms.append(timing["graph"] * 1000)
                counts.append(n_graph)

    ratio = statistics.median(ratios)
    extra = statistics.median(per_transition)
    print(f"episodes: {args.episodes} x {args.repeats} repeats, sim backends, {args.size}px, seeds 0..{args.episodes - 1}")
    print(f"node transitions per episode: median {statistics.median(counts):g} (min {min(counts)}, max {max(counts)})")
    print(f"plain loop: median {statistics.median(loop_ms):.1f} ms/episode; graph: median {statistics.median(graph_ms):.1f} ms/episode")
    print(f"graph / loop wall-time ratio: median {ratio:.3f}x (bar <= 1.3x)")
    print(f"extra per node transition: median {extra:.3f} ms (bar <= 2 ms)")
    print("PASS" if ratio <= 1.3 and extra <= 2.0 else "FAIL")


if __name__ == "__main__":
    main()
