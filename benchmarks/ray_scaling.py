"""Episodes per minute on the local runner and on Ray with 1 and 2 workers, against the ideal.

The sim backends get an injected latency per call (the sim's ``latency_s`` option: a sleep, not CPU
work, standing in for a GPU or an API that keeps the episode waiting), so a 2-core machine can show
how episodes overlap. One local Ray cluster is started once (``--workers`` CPUs) and warmed up (its
worker processes import collabvr) before any timing; then every repeat runs, in turn, the local
runner and Ray at each worker count (Ray's in-flight episodes are ``--concurrency``, one per worker
here), each into a fresh directory without the call cache.

Ideal: ``workers x`` the episodes per minute of the local runner at concurrency 1 (perfect linear
scaling); the ratio is measured / ideal. Medians over ``--repeats``.

    PYTHONPATH=. python benchmarks/ray_scaling.py
    PYTHONPATH=. python benchmarks/ray_scaling.py --n 16 --vgm-latency 1.0 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from collabvr.bench.config import BenchConfig
from collabvr.bench.runner import run_bench


def timed(config: BenchConfig) -> float:
    """Episodes per minute of one bench run."""
    started = time.perf_counter()
    cells = run_bench(config)
    wall = time.perf_counter() - started
    return sum(c.n for c in cells) / wall * 60


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="sim:maze/medium")
    parser.add_argument("--methods", default="collabvr")
    parser.add_argument("--n", type=int, default=8, help="episodes per method and cell, per timed run")
    parser.add_argument("--workers", default="1,2", help="worker counts (local concurrency, Ray workers)")
    parser.add_argument("--vgm-latency", type=float, default=0.3, help="seconds slept per VGM call")
    parser.add_argument("--vlm-latency", type=float, default=0.05, help="seconds slept per VLM call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args(argv)
    print("$", shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["ray_scaling.py", *argv]), flush=True)
    import ray  # the optional dependency: pip install 'collabvr[ray]'

    workers = [int(w) for w in args.workers.split(",")]
    work = args.out or Path(tempfile.mkdtemp(prefix="collabvr-ray-scaling-"))
    common = {"suite": args.suite, "methods": [m.strip() for m in args.methods.split(",")], "n": args.n,
              "cache": False, "vgm_options": {"latency_s": args.vgm_latency}, "vlm_options": {"latency_s": args.vlm_latency}}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Ray {ray.__version__}; "
          f"{args.suite} {args.methods}, {args.n} episodes per run, latency VGM {args.vgm_latency} s, VLM {args.vlm_latency} s",
          flush=True)
    started = time.perf_counter()
    ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
    try:
        print(f"Ray started in {time.perf_counter() - started:.1f} s", flush=True)
        warm = max(workers)
        run_bench(BenchConfig(out=work / "warmup", **{**common, "n": warm}, concurrency=warm, executor="ray"))
        rates: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            for w in workers:
                for executor in ("local", "ray"):
                    config = BenchConfig(out=work / f"{executor}{w}-{repeat}", **common, concurrency=w, executor=executor)
                    rates.setdefault(f"{executor} {w}", []).append(timed(config))
                    print(f"  repeat {repeat + 1}: {executor} x{w}: {rates[f'{executor} {w}'][-1]:.1f} episodes/min", flush=True)
    finally:
        ray.shutdown()
    base = statistics.median(rates[f"local {workers[0]}"]) / workers[0]
    print("\n| executor | workers | episodes/min (median) | runs | ideal | ratio to ideal |")
    print("|---|---|---|---|---|---|")
    for w in workers:
        for executor in ("local", "ray"):
            runs = rates[f"{executor} {w}"]
            median = statistics.median(runs)
            print(f"| {executor} | {w} | {median:.1f} | {', '.join(f'{r:.1f}' for r in runs)} | {base * w:.1f} | "
                  f"{median / (base * w):.2f} |")
    return rates


if __name__ == "__main__":
    main()
