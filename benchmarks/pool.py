"""Pool a bench's results over families: one row per method x difficulty, as markdown.

    python benchmarks/pool.py runs/bench-weak-accurate [--by difficulty|family] [--against collabvr] [--page]

Reads DIR/results.jsonl, or a results file given directly (``.jsonl``, or ``.jsonl.gz`` as the
published runs in docs/results/runs/ are stored), the last line per episode counting as in the
bench itself, and prints the
mean score with its 95% bootstrap CI (2000 resamples, seed 0), the solved rate, n, and the mean
compute actually used per episode; then, for the claims, the paired difference between the
``--against`` method (default: collabvr when present) and every other method on the same
instances, with its 95% bootstrap CI, the raw and Holm-adjusted p-values of the paired permutation
test and of the equivalence test at ±0.03, and the verdict (collabvr.bench.inference). ``--page``
prints the paired differences as docs/results-sim.md lays them out: one row per method, one column
per difficulty, bold where the Holm-adjusted verdict is above or below. Every bootstrap sorts its
data first, so the digits do not depend on the order of results.jsonl.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.backends.sim.families import DIFFICULTIES, FAMILIES
from collabvr.bench.report import p_text, paired_markdown
from collabvr.bench.results import read_run
from collabvr.bench.stats import bootstrap_ci, episode_score, paired_against


def _mean(computes: list[dict], key: str) -> float:
    return float(np.mean([c.get(key, 0.0) for c in computes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a bench directory, or a results file (.jsonl or .jsonl.gz)")
    parser.add_argument("--by", choices=["difficulty", "family"], default="difficulty")
    parser.add_argument("--against", default="", help="the method every other is paired with (default: collabvr if present)")
    parser.add_argument("--page", action="store_true", help="the paired differences only, laid out as on docs/results-sim.md")
    args = parser.parse_args()
    results = read_run(args.dir) or parser.error(f"no results in {args.dir}")
    methods = list(dict.fromkeys(r["method"] for r in results))
    groups = list(DIFFICULTIES) if args.by == "difficulty" else list(FAMILIES)
    reference = args.against or ("collabvr" if "collabvr" in methods else methods[0])
    if args.page:
        print(page_table(paired_against(results, reference, seed=0), reference), end="")
        return
    print(f"| method | {args.by} | n | score [95% CI] | solved | clip-s | VGM calls | VLM calls |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        for group in [*groups, "all"]:
            rows = [r for r in results if r["method"] == method and (group == "all" or r[args.by] == group)]
            if not rows:
                continue
            scores = [episode_score(r) for r in rows]
            lo, hi = bootstrap_ci(scores, seed=0)
            compute = [r.get("compute") or {} for r in rows]
            solved = float(np.mean([bool(r.get("solved")) for r in rows]))
            label = f"**{group}**" if group == "all" else group
            print(f"| {method} | {label} | {len(rows)} | {np.mean(scores):.3f} [{lo:.3f}, {hi:.3f}] | {solved:.0%} | "
                  f"{_mean(compute, 'clip_seconds'):.1f} | {_mean(compute, 'vgm_calls'):.1f} | {_mean(compute, 'vlm_calls'):.1f} |")
    print(f"\nPaired differences ({reference} minus each method, same family, difficulty and seed):\n")
    print(paired_markdown(paired_against(results, reference, seed=0), reference), end="")


def page_table(pairs: list[tuple[str, str, Any]], reference: str) -> str:
    """The paired differences as the results page shows them: a row per method, a column per difficulty
    (n pairs in the header); each cell the difference [95% CI], p raw / Holm, bold when the Holm-adjusted
    verdict is above or below; "level" marked; wins / losses / ties over all instances."""
    levels = list(dict.fromkeys(level for _, level, _ in pairs))
    ns = {level: p.n for _, level, p in pairs}
    family = pairs[0][2].family if pairs else 0
    lines = [f"| {reference} minus | " + " | ".join(f"{lv} ({ns[lv]})" for lv in levels) + " | wins / losses / ties (all) |",
             "|---|" + "---|" * (len(levels) + 1)]
    for other in dict.fromkeys(o for o, _, _ in pairs):
        cells, total = [], None
        for level in levels:
            p = next(p for o, lv, p in pairs if o == other and lv == level)
            text = p.text().replace("-", "−")
            text = f"**{text}**" if p.verdict in ("above", "below") else text
            text += " level" if p.verdict == "level" else ""
            cells.append(f"{text} ({p_text(p.p_raw)} / {p_text(p.p)})")
            total = p if level == "all" else total
        wlt = f"{total.wins} / {total.losses} / {total.ties}" if total else ""
        lines.append(f"| {other} | " + " | ".join(cells) + f" | {wlt} |")
    return "\n".join(lines) + f"\n\n(p raw / p Holm-adjusted over the {family} comparisons of the table)\n"


if __name__ == "__main__":
    main()
