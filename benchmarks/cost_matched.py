"""Every baseline at CollabVR's dollars, instance by instance: pass@k with k chosen by dollars, and
as many critique or optimisation rounds as the dollars buy.

    python benchmarks/cost_matched.py docs/results/runs/weak-accurate.jsonl.gz --suite sim --n 50 --out runs/cost-matched
    python benchmarks/cost_matched.py docs/results/runs/weak-accurate.jsonl.gz --suite sim --n 50 \
        --from 'docs/results/runs/cost-matched-{prices}.jsonl.gz'

The tables of docs/results-sim.md give every method the same budget of VGM clip-seconds (48), which
never binds CollabVR, and leave VLM calls out of it. Here the budget is dollars, per instance: on
each instance (family, difficulty, seed) of the reference run, CollabVR's episode is priced
(``benchmarks/cost.py``: list prices, its token estimate, the VLM's thinking tokens), and each
baseline gets exactly that many dollars on the same instance. A baseline spends its dollars in whole
videos of the 12 s horizon: it gets the most videos N whose worst case (every video made, every
selection and critique call that N videos can bring, each priced as benchmarks/cost.py prices a
call) costs at most CollabVR's dollars, i.e. a clip-seconds budget of 12 N for that episode (a
budget too small for any video when N = 0). So

* ``pass@k``: k = N candidates and one selection (run as ``pass@8`` under the budget; a single
  inference is pass@1, so this row is what ``single`` and ``pass@4`` reach at CollabVR's dollars);
* ``posthoc_critique``: up to N videos, each but the last critiqued (``rounds`` raised to 8 so only
  the dollars stop it);
* ``prompt_opt``: up to N videos, two a round, a selection per round and a critique per round but
  the last (8 rounds at most).

``upfront_plan`` has no way to spend more (one plan, one pass) and is not rerun.

Each price set runs as its own bench (``OUT/PRICES/``, resumable). An episode whose budget is the
same at both price sets is the same episode (the sim is deterministic under method, instance and
budget), so the second set takes those lines from the first instead of running them again.

Prints, per price set, what the dollars assumed, each baseline's score, videos and dollars against
CollabVR's, how many instances it spent more on (0 by construction), and CollabVR minus each on the
same instances by difficulty, with the verdicts of ``collabvr.bench.inference`` (Holm over the table).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: benchmarks.cost

from benchmarks.cost import HORIZON_S, assumed, dollars  # noqa: E402
from collabvr.bench.config import BenchConfig  # noqa: E402
from collabvr.bench.report import paired_markdown  # noqa: E402
from collabvr.bench.results import RESULTS, ResultsFile, read_results, read_run  # noqa: E402
from collabvr.bench.runner import jobs_of, run_bench  # noqa: E402
from collabvr.bench.stats import bootstrap_ci, episode_score, instance, paired_against  # noqa: E402
from collabvr.bench.suites.sim import sim_cells  # noqa: E402
from collabvr.errors import BadInput  # noqa: E402
from collabvr.prices import thinking_tokens  # noqa: E402

REFERENCE = "collabvr"
PRICE_SETS = {  # the two price sets of docs/results-sim.md#cost-in-dollars
    "pro": ("veo-3.1-generate-001", "gemini-2.5-pro"),
    "flash": ("veo-3.1-fast-generate-001", "gemini-2.5-flash"),
}
K_MAX = 8  # pass@k is run as pass@K_MAX under the budget: it makes as many candidates as fit
ROUNDS_MAX = 8  # the critique baselines' rounds, raised so that only the dollars stop them
NO_VIDEO = 1e-6  # a budget that affords no video (0 would mean no limit)


def _pass_at_k(n: int) -> dict[str, float]:
    return {"clip_seconds": HORIZON_S * n, "vlm_select_calls": 1 if n else 0}


def _posthoc(n: int) -> dict[str, float]:
    return {"clip_seconds": HORIZON_S * n, "vlm_critique_calls": max(0, n - 1)}


def _prompt_opt(n: int) -> dict[str, float]:
    rounds = math.ceil(n / 2)
    return {"clip_seconds": HORIZON_S * n, "vlm_select_calls": rounds, "vlm_critique_calls": max(0, rounds - 1)}


# method as run -> (its row on the page, the worst-case compute of N videos, the most videos it can make)
BASELINES: dict[str, tuple[str, Callable[[int], dict[str, float]], int]] = {
    f"pass@{K_MAX}": ("pass@k", _pass_at_k, K_MAX),
    "posthoc_critique": ("posthoc_critique", _posthoc, ROUNDS_MAX),
    "prompt_opt": ("prompt_opt", _prompt_opt, 2 * ROUNDS_MAX),
}


def key(r: dict[str, Any]) -> str:
    family, difficulty, seed = instance(r)
    return f"{family}/{difficulty}/{seed}"


def spend(r: dict[str, Any], vgm: str, vlm: str, thinking: float) -> float:
    """An episode's dollars at the price set (video and VLM)."""
    return float(sum(dollars(r, vgm, vlm, thinking)))


def videos(usd: float, worst: Callable[[int], dict[str, float]], most: int, vgm: str, vlm: str, thinking: float) -> int:
    """The most whole videos whose worst case costs at most ``usd``."""
    n = 0
    while n < most and spend({"compute": worst(n + 1)}, vgm, vlm, thinking) <= usd + 1e-9:
        n += 1
    return n


def budgets(reference: list[dict[str, Any]], method: str, vgm: str, vlm: str, thinking: float) -> dict[str, float]:
    """Per instance: the clip-seconds budget that CollabVR's dollars buy ``method``."""
    _, worst, most = BASELINES[method]
    out = {}
    for r in reference:
        n = videos(spend(r, vgm, vlm, thinking), worst, most, vgm, vlm, thinking)
        out[key(r)] = HORIZON_S * n if n else NO_VIDEO
    return out


def run(reference: list[dict[str, Any]], out: Path, *, suite: str, vgm_spec: str, vlm_spec: str, n: int, seed: int,
        concurrency: int, sets: list[str], thinking: float | None) -> dict[str, list[dict[str, Any]]]:
    """Run (or resume) every baseline at CollabVR's dollars, one bench per price set; their results."""
    done: dict[str, list[dict[str, Any]]] = {}
    for name in sets:
        vgm, vlm = PRICE_SETS[name]
        think = thinking_tokens(vlm) if thinking is None else thinking
        results = []
        for method in BASELINES:
            per = budgets(reference, method, vgm, vlm, think)
            config = BenchConfig(out=out / name / method, suite=suite, methods=[method], n=n, seed=seed,
                                 concurrency=concurrency, vgm=vgm_spec, vlm=vlm_spec, instance_budgets=per,
                                 context={"rounds": ROUNDS_MAX})
            missing = [j for j in jobs_of(config) if key(j.record()) not in per]
            if missing:  # an instance without a budget would run unlimited
                sys.exit(f"error: the reference run has no {REFERENCE} episode for {key(missing[0].record())} "
                         f"({len(missing)} instances)")
            _reuse(config, done, method)
            try:
                run_bench(config)
            except BadInput as exc:
                sys.exit(f"error: {exc}")
            results += read_results(config.out / RESULTS)
        done[name] = results
    return done


def _reuse(config: BenchConfig, done: dict[str, list[dict[str, Any]]], method: str) -> None:
    """Take the lines of an earlier price set whose episode had the same budget: the same episode."""
    have = {key(r) for r in read_results(config.out / RESULTS)}
    same = [r for rows in done.values() for r in rows if r["method"] == method and r.get("status") != "error"
            and key(r) not in have and r.get("budget_seconds") == config.instance_budgets.get(key(r))]
    if same:
        config.out.mkdir(parents=True, exist_ok=True)
        lines = ResultsFile(config.out / RESULTS)
        for r in {key(r): r for r in same}.values():
            lines.append({**r, "reused_from": "an earlier price set with the same budget"})


def table(reference: list[dict[str, Any]], matched: list[dict[str, Any]], name: str, thinking: float | None) -> str:
    """The price set's tables: each baseline at CollabVR's dollars, and CollabVR minus each, paired."""
    vgm, vlm = PRICE_SETS[name]
    think = thinking_tokens(vlm) if thinking is None else thinking
    ours = {key(r): spend(r, vgm, vlm, think) for r in reference}
    rows = [{**r, "method": BASELINES[r["method"]][0]} for r in matched if r["method"] in BASELINES and key(r) in ours]
    lines = [f"### At CollabVR's dollars: `{vgm}` + `{vlm}`", "", assumed(vgm, vlm, think), "",
             f"CollabVR: {np.mean(list(ours.values())):.2f} $ per episode on average ({len(ours)} instances).", "",
             "| method at CollabVR's dollars | n | score [95% CI] | videos | clip-s | VLM calls | $ | CollabVR $ | instances "
             "over CollabVR's $ |", "|---|---|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == label]
        scores = [episode_score(r) for r in mine]
        lo, hi = bootstrap_ci(scores)
        usd = np.array([spend(r, vgm, vlm, think) for r in mine])
        theirs = np.array([ours[key(r)] for r in mine])
        compute = [r.get("compute") or {} for r in mine]
        lines.append(f"| {label} | {len(mine)} | {np.mean(scores):.3f} [{lo:.3f}, {hi:.3f}] | "
                     f"{np.mean([c.get('vgm_calls', 0) for c in compute]):.2f} | {np.mean([c.get('clip_seconds', 0) for c in compute]):.1f} "
                     f"| {np.mean([c.get('vlm_calls', 0) for c in compute]):.1f} | {usd.mean():.2f} | {theirs.mean():.2f} | "
                     f"{int(np.sum(usd > theirs + 1e-9))} |")
    pairs = paired_against([r for r in reference if r["method"] == REFERENCE] + rows, REFERENCE)
    lines += ["", f"CollabVR minus each at CollabVR's dollars, on the same instances (Holm over the {len(pairs)} comparisons "
              "of this table):", "", paired_markdown(pairs, REFERENCE)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="the reference run (bench directory or results file) with CollabVR's episodes")
    parser.add_argument("--out", type=Path, default=None, help="run (or resume) the matched benches here: OUT/PRICES/METHOD")
    parser.add_argument("--from", dest="source", default="",
                        help="read stored matched results instead of running: a path with {prices} for the price set")
    parser.add_argument("--prices", default=",".join(PRICE_SETS), help=f"price sets, of {', '.join(PRICE_SETS)}")
    parser.add_argument("--thinking-tokens", type=float, default=None, help="thinking tokens per VLM call (default: the VLM's)")
    parser.add_argument("--suite", default="sim", help="the sim suite (cells) of the reference run to match")
    parser.add_argument("--vgm", default="sim:weak", help="the reference run's VGM")
    parser.add_argument("--vlm", default="sim:accurate", help="the reference run's VLM")
    parser.add_argument("--n", type=int, default=50, help="seeds per suite cell, as in the reference run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    sets = [s for s in args.prices.split(",") if s]
    if unknown := sorted(set(sets) - set(PRICE_SETS)):
        parser.error(f"unknown price set(s) {', '.join(unknown)}; known: {', '.join(PRICE_SETS)}")
    cells = set(sim_cells(args.suite))
    reference = [r for r in read_run(args.reference) if r["method"] == REFERENCE and (r["family"], r["difficulty"]) in cells
                 and args.seed <= r["seed"] < args.seed + args.n]
    if not reference:
        parser.error(f"no {REFERENCE} episodes in {args.reference}")
    if args.source:
        matched = {name: read_run(Path(args.source.format(prices=name))) for name in sets}
    elif args.out:
        matched = run(reference, args.out, suite=args.suite, vgm_spec=args.vgm, vlm_spec=args.vlm, n=args.n, seed=args.seed,
                      concurrency=args.concurrency, sets=sets, thinking=args.thinking_tokens)
    else:
        parser.error("give --out DIR to run the matched benches, or --from PATH to read stored ones")
    text = "\n\n".join(table(reference, matched[name], name, args.thinking_tokens) for name in sets)
    if args.out:
        (args.out / "cost-matched.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
