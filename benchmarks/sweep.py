"""The gain of CollabVR over pass@k at a matched clip-second budget, over the sim's two error knobs.

For every cell of a grid over the VGM's drift rate (vgm option ``drift_growth``) and the
verifier's false-accept rate (vlm option ``false_accept``) it runs a benchmark of both methods on
the suite, with a matched clip-seconds budget (default ``match:BASELINE``: CollabVR gets the
baseline's mean clip-seconds per cell). The gain is the mean of the per-episode score differences
(paired by family, difficulty and seed) with a 95% percentile bootstrap CI (differences sorted
before resampling, so the digits do not depend on the order episodes finished in). Writes into --out:

* ``cells/dg=<drift>_fa=<false accept>/``: each cell's benchmark directory (resumable);
* ``gain_heatmap.png``: the mean gain per cell, annotated with its CI;
* ``gain.md`` and ``gain.json``: the same numbers as a table, with the verdict of each gain
  (``collabvr.bench.inference``: the paired permutation test, Holm-adjusted over the grid's cells);
* ``results.jsonl.gz``: every episode, each line with its ``cell``, so that ``--from FILE``
  recomputes the tables and the heatmap from stored results without running an episode.

    PYTHONPATH=. python3 benchmarks/sweep.py --suite sim:maze/medium --n 20 \\
        --drift-growth 0,0.03,0.06,0.1 --false-accept 0,0.05,0.1,0.2 --out runs/sweep
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from collabvr.bench.config import BenchConfig
from collabvr.bench.report import p_text
from collabvr.bench.results import read_results
from collabvr.bench.runner import run_bench
from collabvr.bench.stats import Paired, holm_family, paired_methods
from collabvr.errors import BadInput


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected probabilities in [0, 1], got {text!r}")
    return values


def paired_gain(results: list[dict[str, Any]], method: str, baseline: str, *, seed: int) -> dict[str, Any]:
    """Mean score difference method - baseline over episodes both ran, with its bootstrap CI."""
    p = paired_methods(results, method, baseline, seed=seed)
    return {"gain": p.diff, "ci": list(p.ci), "n": p.n, "method_score": p.mean_a, "baseline_score": p.mean_b,
            "method_clip_seconds": _mean_clip_seconds(results, method), "baseline_clip_seconds": _mean_clip_seconds(results, baseline),
            "paired": p}


def judged(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells with their verdicts, Holm-adjusted over the grid (one family: the table read at once)."""
    adjusted: list[Paired] = holm_family([c.pop("paired") for c in cells])
    for c, p in zip(cells, adjusted, strict=True):
        c |= {"p": p.p_raw, "p_holm": p.p, "verdict": p.verdict, "wins": p.wins, "losses": p.losses}
    return cells


def _store(path: Path, by_cell: dict[str, list[dict[str, Any]]]) -> None:
    keep = ("method", "family", "difficulty", "seed", "status", "score", "solved", "compute", "budget_seconds")
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for cell, rows in by_cell.items():
            for r in sorted(rows, key=lambda r: (r["method"], r["family"], r["difficulty"], r["seed"])):
                f.write(json.dumps({"cell": cell, **{k: r[k] for k in keep if k in r}}, sort_keys=True) + "\n")


def _stored(path: Path) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by.setdefault(r["cell"], []).append(r)
    return by


def _mean_clip_seconds(results: list[dict[str, Any]], method: str) -> float:
    values = [(r.get("compute") or {}).get("clip_seconds", 0.0) for r in results if r["method"] == method]
    return sum(values) / max(1, len(values))


def heatmap(cells: list[dict[str, Any]], drifts: list[float], accepts: list[float], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(drifts), len(accepts)), np.nan)
    for c in cells:
        grid[drifts.index(c["drift_growth"]), accepts.index(c["false_accept"])] = c["gain"]
    span = max(0.05, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.05)
    fig, ax = plt.subplots(figsize=(1.6 * len(accepts) + 2.5, 1.1 * len(drifts) + 2))
    image = ax.imshow(grid, cmap="RdBu", vmin=-span, vmax=span, origin="lower", aspect="auto")
    for c in cells:
        i, j = drifts.index(c["drift_growth"]), accepts.index(c["false_accept"])
        ax.text(j, i, f"{c['gain']:+.2f}\n[{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(accepts)), [f"{v:g}" for v in accepts])
    ax.set_yticks(range(len(drifts)), [f"{v:g}" for v in drifts])
    ax.set_xlabel("verifier false-accept rate (vlm false_accept)")
    ax.set_ylabel("VGM drift growth per move (vgm drift_growth)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="mean score gain")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drift-growth", type=_floats, default=_floats("0,0.03,0.06"), help="grid of vgm drift_growth values")
    parser.add_argument("--false-accept", type=_floats, default=_floats("0,0.1,0.2"), help="grid of vlm false_accept values")
    parser.add_argument("--suite", default="sim:maze/medium")
    parser.add_argument("--n", type=int, default=20, help="episodes per method and suite cell, seeds SEED..SEED+N-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="collabvr")
    parser.add_argument("--baseline", default="pass@4")
    parser.add_argument("--budget", default=None, help="clip-seconds, or match:METHOD (default: match:BASELINE)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--vgm", default="sim:weak")
    parser.add_argument("--vlm", default="sim:accurate")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="recompute from a stored sweep (results.jsonl.gz) instead of running it")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv] if argv is None else ["benchmarks/sweep.py", *argv])
    budget = args.budget or f"match:{args.baseline}"
    print(f"$ {command}\n(seed {args.seed}, n {args.n}, budget {budget}, suite {args.suite})", flush=True)

    cells = []
    source = _stored(args.source) if args.source else None
    by_cell: dict[str, list[dict[str, Any]]] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for drift in args.drift_growth:
        for accept in args.false_accept:
            name = f"dg={drift:g}_fa={accept:g}"
            out = args.out / "cells" / name
            if source is not None:
                by_cell[name] = source[name]
            else:
                config = BenchConfig(out=out, suite=args.suite, methods=[args.method, args.baseline], n=args.n, seed=args.seed,
                                     concurrency=args.concurrency, vgm=args.vgm, vlm=args.vlm,
                                     vgm_options={"drift_growth": drift}, vlm_options={"false_accept": accept}, budget=budget,
                                     cache=not args.no_cache, size=args.size)
                try:
                    run_bench(config)
                except BadInput as exc:
                    sys.exit(f"error: {exc}")
                by_cell[name] = read_results(out / "results.jsonl")
            gain = paired_gain(by_cell[name], args.method, args.baseline, seed=args.seed)
            cells.append({"drift_growth": drift, "false_accept": accept, **gain, "dir": str(out.relative_to(args.out))})
            print(f"drift_growth {drift:g}, false_accept {accept:g}: gain {gain['gain']:+.3f} "
                  f"[{gain['ci'][0]:+.3f}, {gain['ci'][1]:+.3f}] (n {gain['n']}; clip-s {gain['method_clip_seconds']:.1f} "
                  f"vs {gain['baseline_clip_seconds']:.1f})", flush=True)

    cells = judged(cells)
    if source is None:
        _store(args.out / "results.jsonl.gz", by_cell)
    title = f"{args.method} - {args.baseline} at a matched clip-second budget ({budget})\n{args.suite}, n={args.n}, seed={args.seed}"
    png = heatmap(cells, args.drift_growth, args.false_accept, args.out / "gain_heatmap.png", title)
    lines = [f"# {title.replace(chr(10), ', ')}\n", f"Command: `{command}`\n",
             f"| drift_growth | false_accept | gain | 95% CI | p (raw / Holm over {len(cells)}) | verdict | n | {args.method} score "
             f"| {args.baseline} score | {args.method} clip-s | {args.baseline} clip-s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['drift_growth']:g} | {c['false_accept']:g} | {c['gain']:+.3f} | [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | "
              f"{p_text(c['p'])} / {p_text(c['p_holm'])} | {c['verdict']} | {c['n']} "
              f"| {c['method_score']:.3f} | {c['baseline_score']:.3f} | {c['method_clip_seconds']:.1f} | {c['baseline_clip_seconds']:.1f} |"
              for c in cells]
    (args.out / "gain.md").write_text("\n".join(lines) + "\n")
    (args.out / "gain.json").write_text(json.dumps({"command": command, "seed": args.seed, "n": args.n, "budget": budget,
                                                    "cells": cells}, indent=2))
    print(f"wrote {png}, {args.out / 'gain.md'}, {args.out / 'gain.json'}")
    return cells


if __name__ == "__main__":
    main()
