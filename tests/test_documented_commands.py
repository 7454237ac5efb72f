"""Every shell example in README.md and docs/*.md that runs offline runs, as written, in a temp dir.

The offline commands of a fenced ``bash`` block run by bash in order (``set -e``: each must exit 0).
A command that needs an API key, a server or a user's image (``NOT_OFFLINE``) is left out; a block
with a loop runs whole. The test changes only what makes a run small: ``pip install ... &&``
prefixes are dropped (the package is installed), bench and sweep examples get ``--n 1`` and one sim
cell instead of the whole suite, and the benchmark scripts get a count of a few episodes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# a command that needs any of these cannot run here: an API backend, a user's image, a server, a GPU
# (the Wan-sized benchmark), the network (installing), a benchmark's data (~/data/..., and the exports
# and official scripts that follow from it: tests/test_benchmarks.py runs those commands on fixtures in
# the same layouts), a person at a terminal (--approve, and the --resume of its run: tests/test_langgraph_native.py
# drives both on a pty), LangSmith (tests/test_langsmith.py traces to a loopback one), a Ray cluster of several
# machines (`ray start`, `--address`: tests/test_bench_ray.py joins a local cluster by its address), a Docker
# daemon (`langgraph build`, `docker run`: tests/test_agent_server.py checks the Dockerfile langgraph.json makes),
# an S3 bucket (tests/test_s3.py runs those commands against a loopback S3 server); the test suite itself is
# what runs this
NOT_OFFLINE = re.compile(r"(gemini|veo|openai):|--image |_API_KEY=|base_url=http|pytest$|--scale wan|^\s*pip install [^&]*$"
                         r"|~/data/|run_evaluation\.py|exports/|--approve|--resume|LANGSMITH_|^\s*ray start|--address "
                         r"|^\s*(langgraph build|docker) |s3://|gs://", re.M)
# the narrowing the test may apply: counts of episodes, and one sim cell for the whole suite
NARROW = [
    (re.compile(r"--n \d+"), "--n 1"),
    (re.compile(r"--suite sim(?=\s)"), "--suite sim:maze/easy"),
    (re.compile(r"(benchmarks/overhead\.py)(?!\S)"), r"\1 --episodes 2 --repeats 1"),
    (re.compile(r"(benchmarks/concurrency\.py)(?!\S)"), r"\1 --n 2 --vgm-latency 0.05 --vlm-latency 0.01"),
    (re.compile(r"(benchmarks/api_fault_soak\.py)(?!\S)"), r"\1 --n 4"),
    (re.compile(r"(benchmarks/local_gpu\.py)(?!\S)"), r"\1 --episodes 1"),
    (re.compile(r"(benchmarks/ray_scaling\.py)(?!\S)"), r"\1 --n 1 --repeats 1 --vgm-latency 0.05 --vlm-latency 0.01"),
    (re.compile(r"(benchmarks/memory\.py)(?!\S)"), r"\1 --cases vbvr,veo --concurrency 1 --repeats 1 --samples 1 "
                                                   r"--vbvr-size 128 --veo-size 128x72 --clip-seconds 1 --veo-seconds 1"),
    (re.compile(r"pip install [^&\n]*&&\s*"), ""),
]


def blocks() -> list[tuple[str, str]]:
    """(name, the block's offline commands) of every fenced block that has any."""
    found = []
    for doc in DOCS:
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            runnable = "\n".join(c for c in commands(match.group(1)) if not NOT_OFFLINE.search(c))
            found.append((f"{doc.relative_to(ROOT)}#{i + 1}", runnable))
    return found


def commands(block: str) -> list[str]:
    """A block's commands: continuation lines joined; a block with a loop is one command."""
    if re.search(r"^\s*(for|while)\b", block, re.M):
        return [block]
    logical = re.sub(r"\\\n\s*", " ", block)
    return [line for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def offline(block: str) -> bool:
    return bool(block.strip())


def narrowed(block: str) -> str:
    for pattern, replacement in NARROW:
        block = pattern.sub(replacement, block)
    return block


def test_the_docs_have_offline_examples_and_the_filter_keeps_the_quick_start():
    runnable = dict(OFFLINE)
    assert "README.md#1" in runnable and len(runnable) >= 6, list(runnable)
    assert narrowed(runnable["README.md#1"]).strip() == "collabvr run --task sim:maze/hard --seed 7"
    assert "collabvr run --task sim:maze/hard --method pass@4" in runnable["README.md#4"]
    assert "--image" not in runnable["README.md#4"] and "README.md#2" not in runnable  # the test suite itself


OFFLINE = [b for b in blocks() if offline(b[1])]


@pytest.mark.parametrize("name,block", OFFLINE, ids=[name for name, _ in OFFLINE])
def test_documented_command_runs_as_written(name, block, tmp_path):
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    (tmp_path / "docs").symlink_to(ROOT / "docs")  # the published runs' results, docs/results/runs/
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    script = "set -euo pipefail\n" + narrowed(block)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{script}\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]


def test_python_and_collabvr_on_path_are_this_checkout():
    """The commands above must run this repository's code, not another install."""
    proc = subprocess.run([sys.executable, "-c", "import collabvr; print(collabvr.__file__)"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/")
    assert Path(proc.stdout.strip()).resolve().is_relative_to(ROOT)
