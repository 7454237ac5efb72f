"""VBVR-Bench's floor and ceiling per task, by both official entry points and by the first-order scorer.

    python benchmarks/vbvr_bounds.py ~/data/VBVR-Bench --evalkit ~/VBVR-EvalKit [--task In-Domain_50/O-47_sliding_puzzle_data-generator]
        [--python PATH] [--out runs/vbvr-bounds]

For every sample: the floor video (the first frame held for as many frames, at the rate, as the ground
truth) and the ceiling video (``ground_truth.mp4``), scored by VBVR-EvalKit's ``run_evaluation.py``
(task-specific score) and ``evaluate.py`` (weighted score), run unchanged from your clone, and by
collabvr's first-order scorer (not official). Prints per task: n, each scorer's mean floor and ceiling,
and on how many samples the floor scores >= 0.99 (a do-nothing video given full marks). No model is
called; the kit's time is the only cost. Writes OUT/bounds.json and OUT/bounds.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from collabvr.bench.stats import bootstrap_ci
from collabvr.bench.suites import parse_suite
from collabvr.bench.suites.evalkit import ENTRIES, WHAT, open_evalkit
from collabvr.bench.suites.vbvr import floor_and_ceiling
from collabvr.bench.suites.vbvr_official import CEILING, FLOOR, score_models, write_bounds
from collabvr.errors import BadInput

FULL = 0.99


def _mean_ci(values: list[float]) -> str:
    """The mean with its 95% percentile bootstrap CI (2000 resamples, seed 0)."""
    if not values:
        return ""
    lo, hi = bootstrap_ci(values, seed=0)
    return f"{np.mean(values):.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the VBVR-Bench download")
    parser.add_argument("--evalkit", type=Path, required=True, help="your clone of VBVR-EvalKit")
    parser.add_argument("--task", default="", help="SPLIT or SPLIT/TASK folder (default: every task)")
    parser.add_argument("--python", default=None, help="the interpreter with VBVR-EvalKit's requirements (default: this one)")
    parser.add_argument("--out", type=Path, default=Path("runs/vbvr-bounds"))
    args = parser.parse_args()
    try:
        suite = parse_suite(f"vbvr:{args.data}" + (f":{args.task}" if args.task else ""))
        rows = list(suite.rows)  # type: ignore[attr-defined]
        write_bounds(rows, args.out / "videos")
        scores = {"first-order": {CEILING: {}, FLOOR: {}}}
        for row in rows:
            scores["first-order"][FLOOR][row.key], scores["first-order"][CEILING][row.key] = floor_and_ceiling(row)
        commits = {}
        for entry in ENTRIES:
            kit = open_evalkit(args.evalkit, python=args.python, entry=entry)
            official = score_models(args.out / "videos", kit, entry, args.data, args.out / entry)
            scores[entry] = {m: official["models"][m]["samples"] for m in (FLOOR, CEILING)}
            commits[entry] = kit.commit
    except BadInput as exc:
        raise SystemExit(f"error: {exc}") from None
    tasks = sorted({row.key.rsplit("/", 1)[0] for row in rows})
    labels = {"first-order": "first-order (not official)", **{e: f"{e}.py ({WHAT[e]})" for e in ENTRIES}}
    lines = [f"VBVR-EvalKit commit {', '.join(sorted(set(commits.values())))}; floor: first frame held; ceiling: ground truth; "
             f"'full': samples whose floor scores >= {FULL}. Means [95% bootstrap CI, 2000 resamples, seed 0].", "",
             "| split/task | n | " + " | ".join(f"{labels[s]} floor | ceiling | full" for s in scores) + " |",
             "|---|---|" + "---|---|---|" * len(scores)]
    table = {}
    for task in tasks:
        keys = [row.key for row in rows if row.key.startswith(task + "/")]
        cells, table[task] = [], {}
        for scorer, by_model in scores.items():
            floor = [by_model[FLOOR][k] for k in keys if k in by_model[FLOOR]]
            ceiling = [by_model[CEILING][k] for k in keys if k in by_model[CEILING]]
            table[task][scorer] = {"n": len(floor), "floor": float(np.mean(floor)) if floor else None,
                                   "ceiling": float(np.mean(ceiling)) if ceiling else None, "full": sum(f >= FULL for f in floor),
                                   "floors": floor, "ceilings": ceiling}
            cells += [_mean_ci(floor), _mean_ci(ceiling), f"{table[task][scorer]['full']} of {len(floor)}"]
        lines.append(f"| {task} | {len(keys)} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bounds.json").write_text(json.dumps({"commits": commits, "tasks": table}, indent=1))
    (args.out / "bounds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
