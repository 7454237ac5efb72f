"""Compare two bench runs episode by episode: how many results agree, and the mean score change.

    python benchmarks/compare.py runs/bench-weak-accurate runs/recheck-weak-accurate

Only episodes present in both (same method, family, difficulty, seed) are compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from collabvr.bench.results import read_results
from collabvr.bench.stats import bootstrap_ci, episode_score


def main() -> None:
    old_dir, new_dir = (Path(a) for a in sys.argv[1:3])
    key = lambda r: (r["method"], r["family"], r["difficulty"], r["seed"])  # noqa: E731
    old = {key(r): r for r in read_results(old_dir / "results.jsonl")}
    new = [r for r in read_results(new_dir / "results.jsonl") if key(r) in old]
    print("| method | n | identical score | mean score before | after | change [95% CI] |")
    print("|---|---|---|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in new):
        pairs = [(episode_score(old[key(r)]), episode_score(r)) for r in new if r["method"] == method]
        diffs = [b - a for a, b in pairs]
        lo, hi = bootstrap_ci(diffs, seed=0)
        same = sum(a == b for a, b in pairs)
        print(f"| {method} | {len(pairs)} | {same} ({same / len(pairs):.0%}) | {np.mean([a for a, _ in pairs]):.3f} | "
              f"{np.mean([b for _, b in pairs]):.3f} | {np.mean(diffs):+.3f} [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main()
