"""One CollabVR sim episode on a durable checkpointer, for the kill-and-resume tests.

    python -m tests.durable_run {postgres DSN | sqlite PATH} OUT_DIR CALLS_FILE DELAY_S THREAD [--resume]

The VGM is the sim behind a ``counting`` provider that appends one line to CALLS_FILE per
generation and then sleeps DELAY_S (so a test can kill the process between steps). Prints the
final trace's step clips as JSON.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collabvr.backends import registry
from collabvr.backends.sim import make as make_sim
from collabvr.graph.collabvr import build_collabvr
from collabvr.runner import run

EPISODE = {"task": "sim:maze/hard", "vlm": "sim", "vgm": "counting", "max_steps": 3, "max_attempts": 3,
           "first_clip_seconds": 1.0, "clip_seconds": 1.0}


class CountingVGM:
    """The sim VGM; every generation is logged to a file (so calls in a killed process count too)."""

    def __init__(self, inner: Any, calls: Path, delay: float) -> None:
        self.inner, self.calls, self.delay = inner, calls, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with open(self.calls, "a") as f:
            f.write("generate\n")
        video = self.inner.generate(*args, **kwargs)
        time.sleep(self.delay)
        return video


def register_counting(calls: Path, delay: float) -> None:
    registry.register("counting", lambda role, model, options: CountingVGM(make_sim(role, model, options), calls, delay))


@contextlib.contextmanager
def saver(kind: str, where: str) -> Iterator[Any]:
    if kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(where) as checkpointer:
            checkpointer.setup()
            yield checkpointer
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(where, check_same_thread=False)
        try:
            yield SqliteSaver(connection)
        finally:
            connection.close()


def thread_config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def main(argv: list[str]) -> None:
    kind, where, out, calls, delay, thread = argv[:6]
    register_counting(Path(calls), float(delay))
    with saver(kind, where) as checkpointer:
        graph = build_collabvr().compile(checkpointer=checkpointer, name="collabvr")
        episode = run(EPISODE["task"], graph=graph, config=thread_config(thread), resume="--resume" in argv, out_dir=out,
                      **{k: v for k, v in EPISODE.items() if k != "task"})
    print(json.dumps({"status": episode.status, "steps": [s["clip"]["sha256"] for s in episode.state["steps"]]}))


if __name__ == "__main__":
    main(sys.argv[1:])
