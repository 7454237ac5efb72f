"""Compare two bench runs episode by episode: how many results agree, and the paired score change.

    python benchmarks/compare.py runs/bench-weak-accurate runs/recheck-weak-accurate

Each argument is a bench directory or a results file (``.jsonl``, or ``.jsonl.gz`` as the published
runs in docs/results/runs/ are stored).

Only episodes present in both (same method, family, difficulty, seed) are compared. The change is
the mean of the per-episode differences (after - before) with its 95% percentile bootstrap CI
(2000 resamples, seed 0, differences sorted first, so the digits do not depend on the order of
either results.jsonl).
"""

from __future__ import annotations

import sys
from pathlib import Path

from collabvr.bench.results import read_run
from collabvr.bench.stats import instance, method_scores, paired


def main() -> None:
    old_dir, new_dir = (Path(a) for a in sys.argv[1:3])
    old = read_run(old_dir)
    new = read_run(new_dir)
    print("| method | n | identical score | mean score before | after | change [95% CI] | up / down |")
    print("|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in sorted(new, key=lambda r: (r["method"], instance(r)))):
        p = paired(method_scores(new, method), method_scores(old, method), a="after", b="before", seed=0)
        if not p.n:
            continue
        print(f"| {method} | {p.n} | {p.ties} ({p.ties / p.n:.0%}) | {p.mean_b:.3f} | {p.mean_a:.3f} | {p.text()} | "
              f"{p.wins} / {p.losses} |")


if __name__ == "__main__":
    main()
