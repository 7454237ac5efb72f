"""``collabvr calibrate``: verify every labelled clip and plan on every plan frame; the measured rates.

Every clip is verified with the same ``VerifyRequest`` the graph's verify node builds, through
:func:`collabvr.nodes.common.call_vlm`, so a typed failure is its own category, never an accept
or a reject. Rates carry Wilson 95% intervals; the good-fraction error a bootstrap 95% interval.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from typing import Any

import numpy as np

from collabvr.backends.sim.families import FAMILIES
from collabvr.bench.stats import bootstrap_ci
from collabvr.calibrate.footage import footage_set
from collabvr.calibrate.labelled import ERROR_KIND, Clip, labelled_set, plan_frames, plan_scores
from collabvr.context import Context
from collabvr.nodes.common import call_vlm, vlm_of
from collabvr.prices import cost, load_prices
from collabvr.records import Plan, PlanRequest, Verdict, VerifyRequest

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """(rate, lo, hi): the Wilson score interval; Nones when n is 0."""
    if n == 0:
        return None, None, None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def _rate(k: int, n: int) -> dict[str, Any]:
    p, lo, hi = wilson(k, n)
    return {"rate": p, "lo": lo, "hi": hi, "k": k, "n": n, "ci": "wilson95"}


def _located(r: dict[str, Any]) -> bool:
    """Whether a rejected bad clip's said good fraction is within the tolerance (one move) of the label."""
    return abs(r["good_fraction_said"] - r["good_fraction"]) <= r["tolerance"] + 1e-9


def calibrate(ctx: Context, *, suite: str = "sim", n: int = 60, n_plan: int | None = None, size: int = 128,
              source: str | None = None) -> dict[str, Any]:
    """Verify every clip of the labelled set and plan on frames with a known optimal move; the report.

    With ``source`` (``vbvr:DIR``) the clips are a benchmark's ground-truth videos and corruptions of
    them (:mod:`collabvr.calibrate.footage`), and plans are not measured."""
    vlm_of(ctx)  # an unknown backend or a bad option is bad input now, not a typed failure per call
    compute: Counter = Counter()
    if source:
        clips = footage_set(source, n, seed=ctx.seed)
    else:
        clips = labelled_set(suite, n, seed=ctx.seed, seconds=ctx.clip_seconds, fps=ctx.fps, size=size)
    rows = verify_all(ctx, clips, compute)
    plans = [] if source else plan_all(ctx, suite, n_plan if n_plan is not None else max(1, n // 2), size, compute)
    return report(ctx, source or suite, rows, plans, dict(compute), plan_measured=not source)


def verify_all(ctx: Context, clips: list[Clip], compute: Counter) -> list[dict[str, Any]]:
    """One row per clip: its label, the VLM's outcome (accept, reject or failed) and good fraction."""
    rows = []
    for i, clip in enumerate(clips):
        request = VerifyRequest(task=clip.task.prompt, clip=clip.video, start_frame=clip.start,
                                instruction=clip.instruction, target_state=clip.target_state,
                                family=clip.task.family, step=i, attempt=0)
        verdict, fail, used = call_vlm(ctx, "verify", request, Verdict)
        compute.update(used)
        outcome = "failed" if fail is not None else ("accept" if verdict.accept is True else "reject")
        rows.append({"task": clip.task.id, **asdict(clip.label), "outcome": outcome,
                     "good_fraction_said": None if verdict is None else verdict.good_fraction,
                     "failure": None if fail is None else fail.get("kind", fail.get("type", "failure"))})
    return rows


def plan_all(ctx: Context, suite: str, n: int, size: int, compute: Counter) -> list[dict[str, Any]]:
    """One row per plan frame: answered (legal, optimal, wrong completion) or failed."""
    plans: list[dict[str, Any]] = []
    for task, image, state in plan_frames(suite, n, ctx.seed, size):
        request = PlanRequest(task=task.prompt, frame=image, step=1, max_steps=ctx.max_steps,
                              seconds=ctx.first_clip_seconds, family=task.family)
        plan, fail, used = call_vlm(ctx, "plan", request, Plan)
        compute.update(used)
        if fail is not None:
            plans.append({"task": task.id, "outcome": "failed"})
            continue
        legal, optimal, first, wrong_claim = plan_scores(FAMILIES[task.family], state, plan)
        plans.append({"task": task.id, "outcome": "answered", "legal": legal, "optimal": optimal, "first_move_optimal": first,
                      "moves": len(FAMILIES[task.family].parse(plan.instruction)), "wrong_completion": wrong_claim})
    return plans


def report(ctx: Context, suite: str, rows: list[dict], plans: list[dict], compute: dict[str, Any], *,
           plan_measured: bool = True) -> dict[str, Any]:
    answered = [r for r in rows if r["outcome"] != "failed"]
    bad = [r for r in answered if not r["good"]]
    good = [r for r in answered if r["good"]]
    errors = [abs(r["good_fraction_said"] - r["good_fraction"]) for r in bad if r["outcome"] == "reject"]
    gf = {"mean_abs_error": None, "lo": None, "hi": None, "n": len(errors), "ci": "bootstrap95",
          "over": "rejected bad clips"}
    if errors:
        lo, hi = bootstrap_ci(errors, seed=ctx.seed)
        gf |= {"mean_abs_error": round(float(np.mean(errors)), 6), "lo": lo, "hi": hi}
    by_kind = {}
    for kind in dict.fromkeys(r["kind"] for r in sorted(rows, key=lambda r: not r["good"])):
        mine = [r for r in answered if r["kind"] == kind]
        right = sum((r["outcome"] == "accept") == (kind == "good") for r in mine)
        # located: rejected, and the good fraction said is within the tolerance (one move) of the labelled one
        tol = [r for r in mine if not r["good"]]
        located = sum(r["outcome"] == "reject" and _located(r) for r in tol)
        by_kind[kind] = {"correct": _rate(right, len(mine)), "located": _rate(located, len(tol)),
                         "failed": sum(r["outcome"] == "failed" for r in rows if r["kind"] == kind)}
    rejected = [r for r in bad if r["outcome"] == "reject"]
    mislocated = sum(not _located(r) for r in rejected)
    answered_plans = [p for p in plans if p["outcome"] == "answered"]
    wrong_plans = [p for p in answered_plans if not p["optimal"]]
    failures = Counter(r["failure"] for r in rows if r["outcome"] == "failed")
    failures.update("plan" for p in plans if p["outcome"] == "failed")
    try:
        usd = cost(compute, vgm="sim", vlm=ctx.vlm, prices=load_prices())
    except Exception:  # noqa: BLE001 - an unpriced or unknown backend: the cost is unknown, not a crash
        usd = None
    return {
        "vlm": ctx.vlm,
        "vlm_options": {k: v for k, v in ctx.vlm_options.items() if "key" not in k.lower()},
        "suite": suite,
        "seed": ctx.seed,
        "clips": len(rows),
        "mix": dict(Counter(r["kind"] for r in rows)),
        "verify": {
            "false_accept": _rate(sum(r["outcome"] == "accept" for r in bad), len(bad)),
            "false_reject": _rate(sum(r["outcome"] == "reject" for r in good), len(good)),
            "good_fraction_error": gf,
            # a rejected bad clip whose good fraction is off by more than the tolerance: sim knob locate_error
            "mislocated": _rate(mislocated, len(rejected)),
            # false accepts by the kind of error the sim verifier tells apart (sim set only: footage has other kinds)
            "false_accept_by_kind": {kind: _rate(sum(r["outcome"] == "accept" for r in mine), len(mine))
                                     for kind in dict.fromkeys(ERROR_KIND.values())
                                     if (mine := [r for r in bad if ERROR_KIND.get(r["kind"]) == kind])},
            "by_kind": by_kind,
            "failed": sum(r["outcome"] == "failed" for r in rows),
        },
        "plan": {
            "measured": plan_measured,
            "frames": len(plans),
            "legal": _rate(sum(p["legal"] for p in answered_plans), len(answered_plans)),
            "optimal": _rate(sum(p["optimal"] for p in answered_plans), len(answered_plans)),  # the whole plan
            "first_move_optimal": _rate(sum(p.get("first_move_optimal", False) for p in answered_plans), len(answered_plans)),
            # the forms of the plans that are not optimal: sim knobs plan_illegal and plan_multi
            "errors": {"illegal": _rate(sum(not p["legal"] for p in wrong_plans), len(wrong_plans)),
                       "multi": _rate(sum(p["legal"] and p.get("moves", 1) > 1 for p in wrong_plans), len(wrong_plans))},
            "wrong_completion": _rate(sum(p["wrong_completion"] for p in answered_plans), len(answered_plans)),
            "failed": len(plans) - len(answered_plans),
        },
        "typed_failures": dict(failures),
        "compute": {"vlm_calls": compute.get("vlm_calls", 0), "input_tokens": compute.get("input_tokens", 0),
                    "output_tokens": compute.get("output_tokens", 0), "usd": usd},
        "clips_detail": rows,
        "plans_detail": plans,
    }
