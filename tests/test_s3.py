"""Runs and benchmarks on S3, against a real S3 wire server on loopback (moto's server mode, as s3fs's
own tests do): a whole bench, a kill and a resume, and nothing written to local disk but the cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
fsspec = pytest.importorskip("fsspec")
pytest.importorskip("s3fs", reason="s3fs is in the dev extra")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3():
    """One S3 server on 127.0.0.1 for the module; the environment points the AWS SDKs at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("runs")
    try:
        yield fs, env
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _cli(args: list[str], env: dict[str, str], home: Path, **kwargs) -> subprocess.Popen:
    """``collabvr ARGS`` in an empty working directory, with its own home and cache directories."""
    for name in ("cwd", "home", "cache"):
        (home / name).mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env, "HOME": str(home / "home"), "XDG_CACHE_HOME": str(home / "cache"),
            "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "collabvr.cli", *args], cwd=home / "cwd", env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _local_files(home: Path) -> dict[str, list[str]]:
    return {name: sorted(str(p.relative_to(home / name)) for p in (home / name).rglob("*") if p.is_file())
            for name in ("cwd", "home", "cache")}


def test_a_bench_on_s3_is_killed_and_resumed_and_writes_nothing_locally_but_the_cache(s3, tmp_path):
    fs, env = s3
    url = "s3://runs/bench1"
    args = ["bench", "--suite", "sim:maze/easy", "--n", "3", "--methods", "collabvr,single", "--out", url,
            "--concurrency", "1", "--quiet"]
    first = _cli(args, env, tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if fs.exists("runs/bench1/results.jsonl") and fs.cat_file("runs/bench1/results.jsonl").count(b"\n") >= 2:
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    done_before = fs.cat_file("runs/bench1/results.jsonl").count(b"\n")
    assert 2 <= done_before < 6, "the kill came after the bench had finished"

    second = _cli(args, env, tmp_path)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output[-3000:]

    fs.invalidate_cache()
    lines = [json.loads(line) for line in fs.cat_file("runs/bench1/results.jsonl").decode().splitlines()]
    assert len(lines) == 6, lines  # the finished episodes were not run again
    assert len({(r["method"], r["seed"]) for r in lines}) == 6 and all(r["status"] != "error" for r in lines)
    summary = json.loads(fs.cat_file("runs/bench1/summary.json"))
    assert summary["totals"]["episodes"] == 6
    for r in lines:  # every episode's run directory is on S3, its artifacts named by absolute s3:// URIs
        trace = json.loads(fs.cat_file(f"runs/bench1/{r['run_dir']}/trace.json"))
        assert trace["final"]["uri"].startswith(f"{url}/{r['run_dir']}/artifacts/")
        assert fs.exists(f"runs/bench1/{r['run_dir']}/final.mp4")
    local = _local_files(tmp_path)
    assert local["cwd"] == [] and local["home"] == [], local  # no folder named s3:, nothing in the home
    assert local["cache"] and all(p.startswith("collabvr/runs/s3-") for p in local["cache"]), local["cache"]
    assert any(p.endswith("checkpoints.sqlite") for p in local["cache"])


def test_run_out_s3_writes_its_run_directory_to_s3_and_resumes_from_it(s3, tmp_path):
    fs, env = s3
    run = _cli(["run", "--task", "sim:maze/easy", "--out", "s3://runs/r1", "--quiet"], env, tmp_path)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output[-3000:]
    assert {"final.mp4", "trace.json", "episode.html", "contact_sheet.png", "run.json"} <= {
        p.rsplit("/", 1)[-1] for p in fs.ls("runs/r1")}
    assert not (tmp_path / "cwd" / "s3:").exists() and _local_files(tmp_path)["cwd"] == []
    again = _cli(["run", "--resume", "s3://runs/r1", "--quiet"], env, tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output[-3000:]
    assert "s3://runs/r1/final.mp4" in output


def test_report_of_a_bench_on_s3_says_how_to_read_it_locally(s3, tmp_path):
    from typer.testing import CliRunner

    from collabvr.cli import app

    result = CliRunner().invoke(app, ["report", "s3://runs/bench1"])
    assert result.exit_code == 2 and "copy s3://runs/bench1 first" in result.output
