"""The Ray executor: the same lines as the local runner, resume after kill -9, models loaded once per actor.

One local Ray cluster for the module (2 CPUs and 2 logical GPUs: Ray hands out GPU ids without any
hardware). A fake "GPU" provider, installed through the ``collabvr.backends`` entry-point group from a
temporary directory on every worker's path, wraps the sim VGM and writes one line per construction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collabvr.bench.config import BenchConfig
from collabvr.bench.results import read_results, result_key
from collabvr.bench.runner import run_bench
from collabvr.cli import app
from collabvr.errors import BadInput

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
FAST = {"first_clip_seconds": 2.0, "clip_seconds": 1.0}

FAKEGPU = '''
import os

from collabvr.backends.sim import make as make_sim


def make(role, model, options):
    return FakeGPU(make_sim("vgm", model, options)) if role == "vgm" else None


make.needs_gpu = True


class FakeGPU:
    """The sim VGM, standing in for a pipeline that takes minutes to load: it logs each construction."""

    def __init__(self, inner):
        self.inner, self.name, self.model = inner, "fakegpu", "weak"
        with open(os.environ["FAKEGPU_LOG"], "a") as log:
            log.write(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES', '')}\\n")

    def generate(self, frame, prompt, *, seconds, fps, seed):
        return self.inner.generate(frame, prompt, seconds=seconds, fps=fps, seed=seed)
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray (2 CPUs, 2 logical GPUs) whose workers find the fakegpu provider; its construction log."""
    site = tmp_path_factory.mktemp("site")
    (site / "fakegpu_backend.py").write_text(FAKEGPU)
    info = site / "fakegpu-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakegpu\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[collabvr.backends]\nfakegpu = fakegpu_backend:make\n")
    log = site / "constructions.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))  # the workers inherit it
        mp.setenv("FAKEGPU_LOG", str(log))
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False)
        try:
            yield log
        finally:
            ray.shutdown()


def _lines(path: Path) -> dict[tuple, tuple]:
    """key -> what must not depend on where the episode ran (timings left out)."""
    return {result_key(r): (r["status"], r["score"], r["solved"], r["resumed"],
                            {k: v for k, v in r["compute"].items() if not k.endswith("_ms")})
            for r in read_results(path / "results.jsonl")}


def _config(out: Path, executor: str, **kw) -> BenchConfig:
    return BenchConfig(**{"out": out, "suite": "sim:maze", "methods": ["single", "collabvr"], "n": 4, "concurrency": 2,
                          "executor": executor, "context": FAST, **kw})


def test_executor_ray_without_ray_says_how_to_install_and_exits_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    monkeypatch.delitem(sys.modules, "collabvr.bench.ray_executor", raising=False)
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path / "b"), "--suite", "sim:maze/easy", "--n", "1",
                                      "--executor", "ray"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --executor ray needs Ray: pip install 'collabvr[ray]'"
    assert not (tmp_path / "b" / "results.jsonl").exists()


@pytest.mark.parametrize("args, words", [
    (["--executor", "spark"], "--executor must be one of local, ray"),
    (["--address", "auto"], "--address needs --executor ray"),
    (["--executor", "ray", "--gpus-per-model", "0"], "--gpus-per-model"),
    (["--executor", "ray", "--address", "auto", "--ray-workers", "2"], "--ray-workers sizes a local Ray cluster"),
])
def test_bad_executor_settings_exit_2_before_ray_starts(args, words, tmp_path):
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path / "b"), "--n", "1", *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output


def test_ray_gives_the_local_runners_lines_seed_for_seed_and_each_resumes_the_other(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_bench(_config(local, "local"))
    seen = []
    run_bench(_config(remote, "ray", backend_limit=1), on_result=seen.append)  # through the cluster-wide limiters too
    expected = _lines(local)
    assert len(expected) == 24 and {k[0] for k in expected} == {"single", "collabvr"}
    assert sum(v[0] == "error" for v in expected.values()) == 0
    assert _lines(remote) == expected
    assert len(seen) == 24  # progress: one on_result per episode, from the driver
    assert all((remote / r["run_dir"] / "checkpoints.sqlite").is_file() for r in seen)  # one checkpoint file per episode
    # executor and address are not pinned: a run started on one resumes on the other
    for first, then in ((local, "ray"), (remote, "local")):
        lines = (first / "results.jsonl").read_text().splitlines(keepends=True)
        (first / "results.jsonl").write_text("".join(lines[:-3]))  # three episodes "never finished"
        run_bench(_config(first, then))
        rerun = [json.loads(line) for line in (first / "results.jsonl").read_text().splitlines()[21:]]
        assert len(rerun) == 3 and all(r["cache_hits"]["vgm"] == r["compute"]["vgm_calls"] for r in rerun)
        assert {k: v[:3] for k, v in _lines(first).items()} == {k: v[:3] for k, v in expected.items()}


def test_a_gpu_backend_is_built_once_per_actor_however_many_episodes(cluster, tmp_path):
    def constructions() -> list[list[str]]:
        return [line.split(" ") for line in cluster.read_text().splitlines()] if cluster.exists() else []

    for gpus_per_model, visible in ((1, [["0"], ["1"]]), (2, [["0,1"]])):
        before = len(constructions())
        run_bench(_config(tmp_path / f"g{gpus_per_model}", "ray", suite="sim:maze/easy", vgm="fakegpu:weak",
                          gpus_per_model=gpus_per_model))
        results = read_results(tmp_path / f"g{gpus_per_model}" / "results.jsonl")
        assert len(results) == 8 and all(r["status"] != "error" for r in results)
        assert sum(r["compute"]["vgm_calls"] for r in results) > 8
        built = constructions()[before:]
        assert sorted(b[1:] for b in built) == visible  # one per actor, each on its own GPU(s)
        assert len({b[0] for b in built}) == len(visible) and str(os.getpid()) not in {b[0] for b in built}
    with pytest.raises(BadInput, match="--gpus-per-model 3: the Ray cluster has only 2 GPU"):
        run_bench(_config(tmp_path / "g3", "ray", vgm="fakegpu:weak", gpus_per_model=3))


def test_kill_9_of_the_ray_driver_then_rerun_finishes_every_episode_once(cluster, tmp_path):
    """The driver joins the module's cluster (--address), so killing it kills its job's tasks, not the cluster."""
    bench = tmp_path / "b"
    cmd = [sys.executable, "-m", "collabvr.cli", "bench", "--suite", "sim:maze/medium", "--methods", "collabvr,single",
           "--n", "3", "--concurrency", "2", "--out", str(bench), "--quiet", "--executor", "ray",
           "--address", ray.get_runtime_context().gcs_address]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if read_results(bench / "results.jsonl"):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the bench finished before it could be killed mid-run"
    assert 1 <= len(read_results(bench / "results.jsonl")) < 6

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in (bench / "results.jsonl").read_text().splitlines()]
    keys = [result_key(r) for r in lines]
    assert len(keys) == len(set(keys)), "no episode ran to the end twice"
    assert sorted(keys) == sorted((m, "maze", "medium", s, None) for m in ("collabvr", "single") for s in range(3))
    assert all(r["status"] != "error" for r in lines)
    run_bench(BenchConfig(out=tmp_path / "local", suite="sim:maze/medium", methods=["collabvr", "single"], n=3,
                          concurrency=2))
    assert {k: v[:3] for k, v in _lines(bench).items()} == {k: v[:3] for k, v in _lines(tmp_path / "local").items()}


def test_the_local_diffusers_and_transformers_backends_run_in_the_model_hosts(cluster, tmp_path):
    """The real heavy backends (tiny random-weight checkpoints, on the CPU) behind the hosts: their
    clips, records and errors travel back, and each episode finishes as with the local runner."""
    pytest.importorskip("diffusers")
    pytest.importorskip("xgrammar")
    from tests.tiny_models import checkpoint

    config = _config(tmp_path / "b", "ray", suite="sim:maze/easy", methods=["collabvr", "pass@2"], n=1, cache=False,
                     vgm=f"diffusers:{checkpoint('wan22_a14b')}", vlm=f"transformers:{checkpoint('llava')}",
                     vgm_options={"max_area": 1024, "num_inference_steps": 2, "max_sequence_length": 16},
                     vlm_options={"max_string_chars": 8, "max_new_tokens": 96, "frames_per_clip": 2, "constrained": True},
                     context={"max_steps": 1, "max_attempts": 1, "first_clip_seconds": 0.5})
    run_bench(config)
    results = read_results(tmp_path / "b" / "results.jsonl")
    assert len(results) == 2 and all(r["status"] != "error" for r in results), [r["reason"] for r in results]
    assert sum(r["compute"]["vgm_calls"] for r in results) >= 3
    assert all(r["compute"].get("vgm_failures", 0) == 0 for r in results)
