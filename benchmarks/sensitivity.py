"""How much of CollabVR's lead is assumed: move one sim knob at a time and watch the gain.

Every knob of the sim error model (docs/simulator.md#knobs) is moved, one at a time, from its
default to the values fixed on that page before any run, towards the setting we expect to be least
favourable to CollabVR. At each setting the same suite is run for CollabVR, pass@4 and the two
critique baselines, at the same clip-seconds budget, and the script reports

* CollabVR's gain over pass@4, and over the best critique baseline (the one of ``posthoc_critique``
  and ``prompt_opt`` with the higher mean score at that setting), as paired differences on the same
  instances with 95% percentile bootstrap CIs (differences sorted before resampling);
* a tornado plot of both gains, one bar per knob from its default to its farthest setting;
* per knob, the break-even point where the gain over the best baseline reaches zero, linearly
  interpolated between the two settings around the sign change, where there is one.

Writes into --out: ``default/`` and ``settings/KNOB=VALUE/`` (bench directories, resumable),
``sensitivity.md``, ``sensitivity.json`` and ``tornado.png``.

    PYTHONPATH=. nice -n 10 python benchmarks/sensitivity.py --suite sim --n 10 --seed 0 --out runs/sensitivity

A setting that only changes what some methods do runs only those methods; the others' episodes
are taken from the default run, where they are the same episodes (``--no-reuse`` runs every method
at every setting). Verifier and planner knobs and drift carry-over change CollabVR only (the
whole-video methods always start from the task's clean first frame); critic knobs change the
critique baselines only; the goal-only violation rule changes the methods that send goal-only
prompts; correction following changes every method that sends a correction (all but pass@4).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.bench.runner import BenchConfig, read_results, run_bench
from collabvr.bench.stats import Paired, method_scores, paired_methods
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


def break_even(points: list[tuple[float, Paired]]) -> float | None:
    """The knob value where the gain crosses zero, interpolated linearly between neighbouring settings."""
    for (x0, p0), (x1, p1) in zip(points, points[1:], strict=False):
        if p0.diff == 0:
            return x0
        if (p0.diff > 0) != (p1.diff > 0) or p1.diff == 0:
            return x0 + (x1 - x0) * p0.diff / (p0.diff - p1.diff)
    return None


def _numeric(knob: Knob) -> bool:
    return all(isinstance(v, float | int) for v in (knob.default, *knob.values))


def _crossing(knob: Knob, at_default: dict[str, Any], settings: list[dict[str, Any]], key: str) -> float | None:
    """Where the gain ``key`` crosses zero along the knob's settings (None for a knob that is a choice)."""
    if not _numeric(knob):
        return None
    return break_even([(float(knob.default), at_default[key]), *[(float(s["value"]), s[key]) for s in settings]])


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
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv] if argv is None else ["benchmarks/sensitivity.py", *argv])
    wanted = [k for k in args.knobs.split(",") if k]
    unknown = sorted(set(wanted) - {k.name for k in KNOBS})
    if unknown:
        sys.exit(f"error: unknown knob(s) {', '.join(unknown)}; known: {', '.join(k.name for k in KNOBS)}")
    knobs = [next(k for k in KNOBS if k.name == name) for name in wanted] if wanted else list(KNOBS)  # in the order asked
    print(f"$ {command}\n(suite {args.suite}, n {args.n}, seed {args.seed}, budget {args.budget}, {args.vgm} + {args.vlm})",
          flush=True)

    def bench(out: Path, methods: tuple[str, ...], vgm_options: dict, vlm_options: dict) -> list[dict[str, Any]]:
        config = BenchConfig(out=out, suite=args.suite, methods=list(methods), n=args.n, seed=args.seed,
                             concurrency=args.concurrency, vgm=args.vgm, vlm=args.vlm, vgm_options=vgm_options,
                             vlm_options=vlm_options, budget=args.budget)
        return _run(config)

    started = time.perf_counter()
    base = bench(args.out / "default", METHODS, {}, {})
    at_default = gains(base, seed=args.seed)
    print(f"defaults: vs pass@4 {at_default['vs_pass'].text()}, vs {at_default['best_critic']} {at_default['vs_best'].text()}",
          flush=True)
    rows = []
    for knob in knobs:
        settings = []
        for value in knob.values:
            methods = METHODS if args.no_reuse else knob.affects
            options = knob.options(value)
            ran = [r for r in bench(args.out / "settings" / _slug(knob, value), methods,
                                    options if knob.role == "vgm" else {}, options if knob.role == "vlm" else {})
                   if r["method"] in methods]
            results = ran + [r for r in base if r["method"] not in methods]
            g = gains(results, seed=args.seed)
            settings.append({"value": value, **g})
            print(f"{knob.name} = {knob.show(value)}: vs pass@4 {g['vs_pass'].text()}, vs {g['best_critic']} "
                  f"{g['vs_best'].text()} (means: {', '.join(f'{m} {v:.3f}' for m, v in g['means'].items())})", flush=True)
        rows.append({"knob": knob, "settings": settings, "default_vs_pass": at_default["vs_pass"],
                     "default_vs_best": at_default["vs_best"], "break_even": _crossing(knob, at_default, settings, "vs_best"),
                     "break_even_pass": _crossing(knob, at_default, settings, "vs_pass"), "numeric": _numeric(knob)})
    minutes = (time.perf_counter() - started) / 60
    title = (f"CollabVR's paired gain, one knob at a time from the defaults ({args.vgm} + {args.vlm}, budget {args.budget} "
             f"clip-s)\n{args.suite}, n = {args.n} per cell, seeds {args.seed}..{args.seed + args.n - 1}; 95% bootstrap CIs")
    png = tornado(rows, args.out / "tornado.png", title) if rows else None
    write_tables(args, command, at_default, rows, minutes)
    print(f"wrote {args.out / 'sensitivity.md'}, {args.out / 'sensitivity.json'}" + (f", {png}" if png else "")
          + f" ({minutes:.1f} min)")
    return rows


def write_tables(args: argparse.Namespace, command: str, at_default: dict[str, Any], rows: list[dict[str, Any]],
                 minutes: float) -> None:
    n_pairs = at_default["vs_pass"].n
    lines = ["# Sensitivity of CollabVR's gain to the sim's assumptions\n",
             f"Command: `{command}`\n", f"Suite `{args.suite}`, n = {args.n} per cell ({n_pairs} paired instances per "
             f"setting), seeds {args.seed}..{args.seed + args.n - 1}, VGM `{args.vgm}`, VLM `{args.vlm}`, budget "
             f"{args.budget} clip-seconds; 95% percentile bootstrap CIs of the mean paired difference (2000 resamples, "
             f"seed {args.seed}). {minutes:.1f} minutes.\n",
             "| knob | setting | direction | CollabVR | pass@4 | best critique baseline | CollabVR - pass@4 | "
             "CollabVR - best critique baseline |", "|---|---|---|---|---|---|---|---|"]

    def line(knob: str, setting: str, direction: str, g: dict[str, Any]) -> str:
        m = g["means"]
        return (f"| {knob} | {setting} | {direction} | {m[OURS]:.3f} | {m[PASS]:.3f} | {g['best_critic']} {m[g['best_critic']]:.3f} "
                f"| {g['vs_pass'].text()} | {g['vs_best'].text()} |")

    lines.append(line("(all defaults)", "", "", at_default))
    for row in rows:
        k = row["knob"]
        for s in row["settings"]:
            lines.append(line(f"`{k.name}`", f"{k.show(k.default)} → {k.show(s['value'])}", k.direction, s))
    lines += ["", "Break-even: the knob value where the gain reaches zero, interpolated linearly between the two "
              "settings around the sign change. It means something only where the gain at the defaults is "
              "established (its CI excludes 0); otherwise it only says where the point estimate crosses zero.\n",
              "| knob | gain over pass@4 reaches 0 | gain over the best critique baseline reaches 0 |", "|---|---|---|"]

    def where(row: dict[str, Any], key: str, default: Paired) -> str:
        k = row["knob"]
        if not row["numeric"]:
            return "n/a (a choice, not a number)"
        if row[key] is None:
            return f"none between {k.show(k.default)} and {k.show(k.values[-1])}"
        caveat = "" if default.verdict == "above" else ", but no lead is established at the defaults"
        return f"≈ {row[key]:.2g} (interpolated{caveat})"

    for row in rows:
        lines.append(f"| `{row['knob'].name}` | {where(row, 'break_even_pass', at_default['vs_pass'])} | "
                     f"{where(row, 'break_even', at_default['vs_best'])} |")
    (args.out / "sensitivity.md").write_text("\n".join(lines) + "\n")

    def dump(g: dict[str, Any]) -> dict[str, Any]:
        return {"means": g["means"], "best_critic": g["best_critic"], "vs_pass": g["vs_pass"].public(),
                "vs_best": g["vs_best"].public()}

    data = {"command": command, "suite": args.suite, "n": args.n, "seed": args.seed, "vgm": args.vgm, "vlm": args.vlm,
            "budget": args.budget, "minutes": round(minutes, 2), "default": dump(at_default),
            "knobs": [{"knob": row["knob"].name, "default": row["knob"].default, "direction": row["knob"].direction,
                       "break_even": row["break_even"], "break_even_vs_pass": row["break_even_pass"],
                       "settings": [{"value": s["value"], **dump(s)} for s in row["settings"]]} for row in rows]}
    (args.out / "sensitivity.json").write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
