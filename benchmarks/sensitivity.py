"""How much of CollabVR's lead is assumed: move one sim knob at a time and watch the gain.

Every knob of the sim error model (docs/simulator.md#knobs) is moved, one at a time, from its
default to the values fixed on that page before any run, towards the setting we expect to be least
favourable to CollabVR. At each setting the same suite is run for CollabVR, pass@4 and the two
critique baselines, at the same clip-seconds budget, and the script reports

* CollabVR's gain over pass@4, and over the best critique baseline (the one of ``posthoc_critique``
  and ``prompt_opt`` with the higher mean score at that setting), as paired differences on the same
  instances with 95% percentile bootstrap CIs (differences sorted before resampling);
  with the verdicts of :mod:`collabvr.bench.inference` (an exact permutation test, Holm over the
  whole table, "level" only by an equivalence test at its margin);
* a tornado plot of both gains, one bar per knob from its default to its farthest setting;
* per knob that moves one way from its default, the break-even points where each gain reaches zero,
  linearly interpolated between the two settings around the sign change, with a 95% bootstrap
  interval over instances and the share of resamples in which the gain does not cross at all.

Writes into --out: ``default/`` and ``settings/KNOB=VALUE/`` (bench directories, resumable),
``sensitivity.md``, ``sensitivity.json``, ``tornado.png`` and ``results.jsonl.gz``: every episode the
tables use, each line with its ``setting`` ("default" or ``KNOB=VALUE``), so that

    python benchmarks/sensitivity.py --from docs/results/runs/sensitivity-n10.jsonl.gz --out runs/sensitivity-again

recomputes the tables and the plot from stored results in seconds, without running an episode.

    PYTHONPATH=. nice -n 10 python benchmarks/sensitivity.py --suite sim --n 10 --seed 0 --out runs/sensitivity

A setting that only changes what some methods do runs only those methods; the others' episodes
are taken from the default run, where they are the same episodes (``--no-reuse`` runs every method
at every setting). Verifier and planner knobs and drift carry-over change CollabVR only (the
whole-video methods always start from the task's clean first frame); critic knobs change the
critique baselines only; the goal-only violation rule and the greedy prior's look-ahead change the
methods that send goal-only prompts; correction following changes every method that sends a
correction (all but pass@4).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.bench.inference import Crossing, break_even_bootstrap
from collabvr.bench.report import p_text
from collabvr.bench.runner import BenchConfig, read_results, run_bench
from collabvr.bench.stats import Paired, differences, holm_family, instance, method_scores, paired_methods
from collabvr.errors import BadInput

OURS = "collabvr"
PASS = "pass@4"
CRITICS = ("posthoc_critique", "prompt_opt")
METHODS = (OURS, PASS, *CRITICS)
CRITIC_AS_ACCURATE_VERIFIER = {"critic_false_solved": 0.03, "critic_false_unsolved": 0.03, "critic_rewrite_noise": 0.05}


@dataclass(frozen=True)
class Knob:
    """One assumption, its default and the settings the sweep moves it to (docs/simulator.md#knobs)."""

    name: str
    role: str  # "vgm" or "vlm": which backend's options it is
    default: Any
    values: tuple[Any, ...]
    affects: tuple[str, ...] = METHODS  # the methods whose episodes it can change
    direction: str = "stress"  # "stress": towards the least favourable to CollabVR; "either"; "parity"
    label: str = ""

    def options(self, value: Any) -> dict[str, Any]:
        return dict(value) if isinstance(value, dict) else {self.name: value}

    def show(self, value: Any) -> str:
        if isinstance(value, dict):
            return "off" if not any(value.values()) else "on (" + ", ".join(f"{v:g}" for v in value.values()) + ")"
        return f"{value:g}" if isinstance(value, float | int) else str(value)


# fixed in docs/simulator.md#knobs (commit e7f9f3f) before any run
KNOBS: tuple[Knob, ...] = (
    # the whole-video methods always start from the task's clean first frame: only chained clips carry drift
    Knob("drift_carry", "vgm", 0.0, (0.5, 1.0), affects=(OURS,), label="drift carried across clips"),
    Knob("cond_misread", "vgm", 0.0, (0.1, 0.2), label="conditioning frame misread"),
    Knob("correction_follow", "vgm", 1.0, (0.5, 0.0), affects=(OURS, *CRITICS), label="corrections taken in"),
    Knob("drift_growth", "vgm", 0.03, (0.015, 0.0), label="drift growth per move"),
    Knob("verify_correlation", "vlm", 0.0, (0.5, 1.0), affects=(OURS,), label="verifier errors repeat per clip"),
    Knob("false_accept", "vlm", 0.03, (0.15, 0.3), affects=(OURS,), label="verifier false accepts"),
    Knob("plan_noise", "vlm", 0.05, (0.15, 0.3), affects=(OURS,), label="planner noise"),
    Knob("plan_horizon", "vlm", "share", ("clip",), affects=(OURS,), direction="either", label="planner horizon"),
    Knob("goal_only_violation", "vgm", "capacity", ("moves",), affects=(PASS, *CRITICS), direction="either",
         label="goal-only violation rule"),
    Knob("critic", "vlm", {k: 0.0 for k in CRITIC_AS_ACCURATE_VERIFIER}, (CRITIC_AS_ACCURATE_VERIFIER,), affects=CRITICS,
         direction="parity", label="critic as fallible as the verifier"),
    # the last constants, fixed in docs/simulator.md#knobs (commit 0c1db42) before any run with them
    Knob("locate_error", "vlm", 0.0, (0.25, 0.5), affects=(OURS,), label="verifier misplaces the first bad frame"),
    Knob("false_accept_off_plan", "vlm", 0.03, (0.15, 0.3), affects=(OURS,), label="verifier misses off-plan moves"),
    Knob("plan_illegal", "vlm", 0.0, (0.5, 1.0), affects=(OURS,), label="planner errors are illegal moves"),
    Knob("plan_multi", "vlm", 0.0, (0.5, 1.0), affects=(OURS,), label="planner errors are whole actions wrong part-way"),
    Knob("prior_lookahead", "vgm", 4, (2, 6), affects=(PASS, *CRITICS), direction="either",
         label="greedy prior's look-ahead (moves)"),
)


def _slug(knob: Knob, value: Any) -> str:
    return f"{knob.name}={knob.show(value).replace(' ', '').replace('(', '').replace(')', '').replace(',', '_')}"


def gains(results: list[dict[str, Any]], *, seed: int) -> dict[str, Any]:
    """CollabVR minus pass@4 and minus the best critique baseline, paired, at one setting."""
    means = {m: float(np.mean(list(method_scores(results, m).values()))) for m in METHODS}
    best = max(CRITICS, key=lambda m: (means[m], m))
    vs_pass = paired_methods(results, OURS, PASS, seed=seed)
    vs_best = paired_methods(results, OURS, best, seed=seed)
    return {"means": means, "best_critic": best, "vs_pass": vs_pass, "vs_best": vs_best}


def _numeric(knob: Knob) -> bool:
    """Whether the knob is a number that moves one way from its default (where a crossing means something)."""
    values = (knob.default, *knob.values)
    if not all(isinstance(v, float | int) for v in values):
        return False
    steps = np.diff(np.asarray(values, dtype=float))
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _crossing(knob: Knob, at_default: list[dict[str, Any]], settings: list[list[dict[str, Any]]], baselines: tuple[str, ...],
              *, seed: int) -> Crossing | None:
    """Where CollabVR's gain over the best of ``baselines`` crosses zero along the knob's settings, with its
    bootstrap over the instances every setting ran (None for a knob that is a choice)."""
    if not _numeric(knob):
        return None
    runs = [at_default, *settings]
    keys = set.intersection(*[set(method_scores(r, m)) for r in runs for m in (OURS, *baselines)])
    per = [[differences(method_scores(r, OURS), method_scores(r, b), keys)[1] for b in baselines] for r in runs]
    return break_even_bootstrap([float(knob.default), *[float(v) for v in knob.values]], per, seed=seed)


def tornado(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Two panels (vs pass@4, vs best critique baseline): per knob, the gain at each setting, CIs as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * len(rows) + 2.2), sharey=True)
    order = sorted(rows, key=lambda r: max(abs(s["vs_best"].diff - r["default_vs_best"].diff) for s in r["settings"]))
    for ax, key, name in ((axes[0], "vs_pass", "CollabVR - pass@4"), (axes[1], "vs_best", "CollabVR - best critique baseline")):
        default = order[0][f"default_{key}"] if order else None
        for y, row in enumerate(order):
            xs = [row[f"default_{key}"].diff, *[s[key].diff for s in row["settings"]]]
            ax.plot([min(xs), max(xs)], [y, y], lw=9, color="#9ecae1" if row["knob"].direction == "stress" else "#c7e9c0",
                    solid_capstyle="butt")
            for s in row["settings"]:
                p = s[key]
                ax.errorbar([p.diff], [y], xerr=[[p.diff - p.ci[0]], [p.ci[1] - p.diff]], fmt="o", color="#08519c", ms=4,
                            capsize=3, lw=1)
                ax.annotate(row["knob"].show(s["value"]), (p.diff, y), textcoords="offset points", xytext=(0, 7), ha="center",
                            fontsize=7)
        if default is not None:
            ax.axvline(default.diff, color="#444", lw=1, ls="--", label=f"all defaults: {default.text(2)}")
        ax.axvline(0, color="#a50f15", lw=1)
        ax.set_yticks(range(len(order)), [f"{r['knob'].label}\n({r['knob'].name}, default {r['knob'].show(r['knob'].default)})"
                                          for r in order], fontsize=7)
        ax.set_xlabel(f"{name}: mean paired score difference")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


DEFAULT = "default"
KEEP = ("method", "family", "difficulty", "seed", "status", "score", "solved", "compute", "budget_seconds")


ARGS = "_args"  # the first line of a stored sweep: the arguments it ran with
RUN_ARGS = ("suite", "n", "seed", "budget", "vgm", "vlm")


def stored(path: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The arguments and the results of a stored sweep (``results.jsonl.gz``) by setting, each setting
    completed with the default run's episodes of the methods it did not run (the same episodes: the
    knob cannot change them)."""
    by: dict[str, list[dict[str, Any]]] = {}
    args: dict[str, Any] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["setting"] == ARGS:
                args = r["args"]
            else:
                by.setdefault(r["setting"], []).append(r)
    base = by.get(DEFAULT, [])
    return args, {k: v if k == DEFAULT else v + [r for r in base if r["method"] not in {x["method"] for x in v}]
                  for k, v in by.items()}


def _store(path: Path, args: argparse.Namespace, ran: dict[str, list[dict[str, Any]]]) -> Path:
    """Every episode each setting ran, slimmed to what the tables use, with its setting; the arguments first."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"setting": ARGS, "args": {k: getattr(args, k) for k in RUN_ARGS}}, sort_keys=True) + "\n")
        for setting, rows in ran.items():
            for r in sorted(rows, key=lambda r: (r["method"], instance(r))):
                f.write(json.dumps({"setting": setting, **{k: r[k] for k in KEEP if k in r}}, sort_keys=True) + "\n")
    return path


def _run(config: BenchConfig) -> list[dict[str, Any]]:
    try:
        run_bench(config)
    except BadInput as exc:
        sys.exit(f"error: {exc}")
    return read_results(config.out / "results.jsonl")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="sim")
    parser.add_argument("--n", type=int, default=10, help="episodes per method and suite cell, seeds SEED..SEED+N-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="48", help="clip-seconds per episode for every method (as in the tables)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--vgm", default="sim:weak")
    parser.add_argument("--vlm", default="sim:accurate")
    parser.add_argument("--knobs", default="", help="comma-separated knobs to run, in this order (default: all): "
                        + ", ".join(k.name for k in KNOBS))
    parser.add_argument("--no-reuse", action="store_true", help="run every method at every setting")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="recompute the tables from a stored sweep (results.jsonl.gz) instead of running it")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv] if argv is None else ["benchmarks/sensitivity.py", *argv])
    wanted = [k for k in args.knobs.split(",") if k]
    unknown = sorted(set(wanted) - {k.name for k in KNOBS})
    if unknown:
        sys.exit(f"error: unknown knob(s) {', '.join(unknown)}; known: {', '.join(k.name for k in KNOBS)}")
    knobs = [next(k for k in KNOBS if k.name == name) for name in wanted] if wanted else list(KNOBS)  # in the order asked
    args.out.mkdir(parents=True, exist_ok=True)
    source = None
    if args.source:
        ran_with, source = stored(args.source)
        vars(args).update(ran_with)  # the stored sweep's suite, n, seed, budget and backends
        knobs = [k for k in knobs if all(_slug(k, v) in source for v in k.values)]  # the knobs the stored sweep ran
    print(f"$ {command}\n(suite {args.suite}, n {args.n}, seed {args.seed}, budget {args.budget}, {args.vgm} + {args.vlm})",
          flush=True)

    def bench(out: Path, methods: tuple[str, ...], vgm_options: dict, vlm_options: dict) -> list[dict[str, Any]]:
        config = BenchConfig(out=out, suite=args.suite, methods=list(methods), n=args.n, seed=args.seed,
                             concurrency=args.concurrency, vgm=args.vgm, vlm=args.vlm, vgm_options=vgm_options,
                             vlm_options=vlm_options, budget=args.budget)
        return [r for r in _run(config) if r["method"] in methods]

    started = time.perf_counter()
    base = source[DEFAULT] if source is not None else bench(args.out / DEFAULT, METHODS, {}, {})
    ran = {DEFAULT: base}
    at_default = gains(base, seed=args.seed)
    rows = []
    for knob in knobs:
        settings, results_at = [], []
        for value in knob.values:
            slug = _slug(knob, value)
            methods = METHODS if args.no_reuse else knob.affects
            options = knob.options(value)
            if source is not None:
                results = source[slug]
            else:
                ran[slug] = bench(args.out / "settings" / slug, methods, options if knob.role == "vgm" else {},
                                  options if knob.role == "vlm" else {})
                results = ran[slug] + [r for r in base if r["method"] not in methods]
            g = gains(results, seed=args.seed)
            settings.append({"value": value, **g})
            results_at.append(results)
            print(f"{knob.name} = {knob.show(value)}: vs pass@4 {g['vs_pass'].text()}, vs {g['best_critic']} "
                  f"{g['vs_best'].text()} (means: {', '.join(f'{m} {v:.3f}' for m, v in g['means'].items())})", flush=True)
        rows.append({"knob": knob, "settings": settings, "default_vs_pass": at_default["vs_pass"],
                     "default_vs_best": at_default["vs_best"],
                     "break_even": _crossing(knob, base, results_at, CRITICS, seed=args.seed),
                     "break_even_pass": _crossing(knob, base, results_at, (PASS,), seed=args.seed), "numeric": _numeric(knob)})
    at_default, rows = adjusted(at_default, rows)
    minutes = (time.perf_counter() - started) / 60
    if source is None:
        _store(args.out / "results.jsonl.gz", args, ran)
    title = (f"CollabVR's paired gain, one knob at a time from the defaults ({args.vgm} + {args.vlm}, budget {args.budget} "
             f"clip-s)\n{args.suite}, n = {args.n} per cell, seeds {args.seed}..{args.seed + args.n - 1}; 95% bootstrap CIs")
    png = tornado(rows, args.out / "tornado.png", title) if rows else None
    write_tables(args, command, at_default, rows, minutes)
    print(f"wrote {args.out / 'sensitivity.md'}, {args.out / 'sensitivity.json'}" + (f", {png}" if png else "")
          + f" ({minutes:.1f} min)")
    return rows


def adjusted(at_default: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The table's comparisons, Holm-adjusted as one family: both gains at the defaults and at every setting."""
    cells = [at_default, *[s for row in rows for s in row["settings"]]]
    flat = holm_family([g[key] for g in cells for key in ("vs_pass", "vs_best")])
    for i, g in enumerate(cells):
        g["vs_pass"], g["vs_best"] = flat[2 * i], flat[2 * i + 1]
    for row in rows:
        row["default_vs_pass"], row["default_vs_best"] = at_default["vs_pass"], at_default["vs_best"]
    return at_default, rows


def _claim(p: Paired) -> str:
    """A paired gain with its verdict: bold when the Holm-adjusted test calls it above or below."""
    text = p.text()
    if p.verdict in ("above", "below"):
        text = f"**{text}**"
    return f"{text} {p.verdict} (p {p_text(p.p_raw)}; Holm {p_text(p.p)})"


def write_tables(args: argparse.Namespace, command: str, at_default: dict[str, Any], rows: list[dict[str, Any]],
                 minutes: float) -> None:
    n_pairs = at_default["vs_pass"].n
    family = at_default["vs_pass"].family
    lines = ["# Sensitivity of CollabVR's gain to the sim's assumptions\n",
             f"Command: `{command}`\n", f"Suite `{args.suite}`, n = {args.n} per cell ({n_pairs} paired instances per "
             f"setting), seeds {args.seed}..{args.seed + args.n - 1}, VGM `{args.vgm}`, VLM `{args.vlm}`, budget "
             f"{args.budget} clip-seconds; 95% percentile bootstrap CIs of the mean paired difference (2000 resamples, "
             f"seed {args.seed}). Verdicts: the paired permutation test (raw p) with Holm's adjustment over the "
             f"{family} comparisons of this table; bold: above or below after the adjustment; \"level\": the "
             f"equivalence test at the margin passes after the adjustment. "
             + (f"Recomputed from the stored sweep `{args.source}`.\n" if getattr(args, "source", None) else
                f"{minutes:.1f} minutes.\n"),
             "| knob | setting | direction | CollabVR | pass@4 | best critique baseline | CollabVR - pass@4 | "
             "CollabVR - best critique baseline |", "|---|---|---|---|---|---|---|---|"]

    def line(knob: str, setting: str, direction: str, g: dict[str, Any]) -> str:
        m = g["means"]
        return (f"| {knob} | {setting} | {direction} | {m[OURS]:.3f} | {m[PASS]:.3f} | {g['best_critic']} {m[g['best_critic']]:.3f} "
                f"| {_claim(g['vs_pass'])} | {_claim(g['vs_best'])} |")

    lines.append(line("(all defaults)", "", "", at_default))
    for row in rows:
        k = row["knob"]
        for s in row["settings"]:
            lines.append(line(f"`{k.name}`", f"{k.show(k.default)} → {k.show(s['value'])}", k.direction, s))
    lines += ["", "Break-even: the knob value where the gain reaches zero, interpolated linearly between the two "
              "settings around the sign change, with a 95% percentile bootstrap interval over instances (the same "
              "resample at every setting, the best critique baseline re-picked per resample) and the share of resamples "
              "in which the gain does not reach zero within the settings. It means something only where the gain at "
              "the defaults is established; otherwise it only says where the point estimate crosses zero.\n",
              "| knob | gain over pass@4 reaches 0 | gain over the best critique baseline reaches 0 |", "|---|---|---|"]

    def where(row: dict[str, Any], key: str, default: Paired) -> str:
        k = row["knob"]
        if not row["numeric"]:
            return "n/a (a choice, or settings on both sides of the default)"
        crossing: Crossing = row[key]
        if crossing.point is None:
            return crossing.text().replace("none", f"none between {k.show(k.default)} and {k.show(k.values[-1])}", 1)
        caveat = "" if default.verdict == "above" else "; no lead is established at the defaults"
        return f"{crossing.text()}{caveat}"

    for row in rows:
        lines.append(f"| `{row['knob'].name}` | {where(row, 'break_even_pass', at_default['vs_pass'])} | "
                     f"{where(row, 'break_even', at_default['vs_best'])} |")
    (args.out / "sensitivity.md").write_text("\n".join(lines) + "\n")

    def dump(g: dict[str, Any]) -> dict[str, Any]:
        return {"means": g["means"], "best_critic": g["best_critic"], "vs_pass": g["vs_pass"].public(),
                "vs_best": g["vs_best"].public()}

    def crossing(c: Crossing | None) -> dict[str, Any] | None:
        return None if c is None else {"point": c.point, "ci": c.ci, "no_cross": c.no_cross, "resamples": c.resamples}

    data = {"command": command, "suite": args.suite, "n": args.n, "seed": args.seed, "vgm": args.vgm, "vlm": args.vlm,
            "budget": args.budget, "minutes": round(minutes, 2), "default": dump(at_default),
            "knobs": [{"knob": row["knob"].name, "default": row["knob"].default, "direction": row["knob"].direction,
                       "break_even": crossing(row["break_even"]), "break_even_vs_pass": crossing(row["break_even_pass"]),
                       "settings": [{"value": s["value"], **dump(s)} for s in row["settings"]]} for row in rows]}
    (args.out / "sensitivity.json").write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
