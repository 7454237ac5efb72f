"""``collabvr calibrate --predict``: what a calibrated VLM would be worth as CollabVR's verifier, in the simulator.

The measured rates become a sim VLM preset (``DIR/sim-preset.json``, loadable as
``--vlm sim:DIR/sim-preset.json``), and a small sim benchmark with that preset runs CollabVR
against single inference, pass@4 and the two critique baselines at a matched budget of
clip-seconds. The measured rates are estimates: each is drawn ``draws`` times from its posterior
(Jeffreys: Beta(k + 1/2, n - k + 1/2); the planner's error forms jointly from a Dirichlet), and
the benchmark is run again with every drawn preset, so the reported interval covers the
uncertainty of the rates as well as the episodes' sampling (:func:`collabvr.bench.inference.predictive_interval`).

It is a prediction under the simulator's assumptions, not a measurement of the VLM with a real
VGM; :data:`ASSUMPTIONS` states what it takes for granted and :data:`UNMEASURED` the knobs it could
not measure and which way each cuts. The report repeats both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.backends import registry
from collabvr.backends.sim.config import VLMConfig, save_preset
from collabvr.bench.config import BenchConfig
from collabvr.bench.inference import predictive_interval
from collabvr.bench.results import RESULTS, read_results, result_key
from collabvr.bench.runner import jobs_of, run_bench
from collabvr.bench.stats import differences, method_scores, paired_methods
from collabvr.bench.suites.sim import sim_cells
from collabvr.errors import BadInput

REFERENCE = "collabvr"
BASELINES = ("single", "pass@4", "posthoc_critique", "prompt_opt")
# the methods whose episodes depend on the calibrated rates: CollabVR's planner and verifier, the critique
# baselines' critic. single makes no VLM call and pass@4's selector keeps select_noise (not calibrated), so
# their episodes are the same with every draw and are run once, with the point estimates.
DRAWN = (REFERENCE, "posthoc_critique", "prompt_opt")
BUDGET = 48.0  # clip-seconds per episode, as in docs/results-sim.md
PRESET = "sim-preset.json"
DRAWS = 8  # posterior draws of the rates, by default

# measured rate -> the VLMConfig fields it sets; the critic of the critique baselines gets the same rates
MAPPING = {
    "verify.false_accept": ("false_accept", "critic_false_solved"),
    "verify.false_accept_by_kind.off_plan": ("false_accept_off_plan",),
    "verify.false_accept_by_kind.illegal": ("false_accept_illegal",),
    "verify.false_accept_by_kind.unfinished": ("false_accept_unfinished",),
    "verify.false_reject": ("false_reject", "critic_false_unsolved"),
    "verify.mislocated": ("locate_error",),
    "1 - plan.optimal": ("plan_noise", "critic_rewrite_noise"),
    "plan.errors.illegal": ("plan_illegal",),
    "plan.errors.multi": ("plan_multi",),
}
# what calibrate measures that the sim VLM has no field for, and what it does not measure: which way each cuts
UNMEASURED = {
    "verify_correlation": "not measured (every clip is verified once); 0 assumed: errors independent per call. "
                          "Cuts for CollabVR: a verifier that repeats its errors on redone clips costs it 0.06 to 0.17 "
                          "in the sim (docs/results-sim.md)",
    "plan.wrong_completion": "measured, but the sim planner has no field for it (it claims completion only when its "
                             "plan reaches the goal). Cuts for CollabVR: a false claim ends its episode early",
    "typed_failures": "counted, but the sim VLM has no failure rate. Cuts for CollabVR: a failed call costs it an "
                      "attempt, and it makes several times the baselines' VLM calls",
    "select_noise": "not measured (calibrate does not test the selector); the sim default 0.05 is kept. Cuts either "
                    "way: a worse selector lowers pass@4 and prompt optimisation, a better one raises them",
    "the VGM": "the sim VGM preset (drift restarting at every clip, a conditioning frame read exactly) stands in for "
               "yours. Cuts for CollabVR: drift carried across clips and misread conditioning frames lower its "
               "gain in the sim (docs/results-sim.md#sensitivity-one-knob-at-a-time)",
}
ASSUMPTIONS = (
    "the sim's world and video-model error model (the VGM preset named) stand in for the real tasks and VGM",
    "the VLM's verifier errors depend on the kind of error only through the three measured miss rates (off-plan, "
    "illegal, unfinished), are drawn afresh per call, and the first bad frame is misplaced at the measured rate",
    "the critic of posthoc_critique and prompt_opt errs at the same rates as the verifier and planner",
    "the selector of pass@4 keeps the sim default select_noise (not measured)",
)


def measured(result: dict[str, Any]) -> dict[str, tuple[int, int] | None]:
    """(k, n) behind every rate of :data:`MAPPING`; None where nothing was measured (n = 0)."""
    v, p = result["verify"], result["plan"]
    rates = {"verify.false_accept": v["false_accept"], "verify.false_reject": v["false_reject"],
             "verify.mislocated": v.get("mislocated"),
             **{f"verify.false_accept_by_kind.{k}": r for k, r in v.get("false_accept_by_kind", {}).items()},
             "plan.errors.illegal": p.get("errors", {}).get("illegal"), "plan.errors.multi": p.get("errors", {}).get("multi")}
    out: dict[str, tuple[int, int] | None] = {key: None for key in MAPPING}
    for key, r in rates.items():
        if key in MAPPING and r and r.get("n"):
            out[key] = (int(r["k"]), int(r["n"]))
    optimal = p["optimal"]
    if optimal.get("n"):
        out["1 - plan.optimal"] = (int(optimal["n"] - optimal["k"]), int(optimal["n"]))
    return out


def _config(values: dict[str, float]) -> VLMConfig:
    fields: dict[str, float] = {}
    for rate, value in values.items():
        fields |= {f: round(float(value), 4) for f in MAPPING[rate]}
    if fields.get("plan_illegal", 0.0) + fields.get("plan_multi", 0.0) > 1.0:  # shares rounded up past 1
        fields["plan_multi"] = round(1.0 - fields["plan_illegal"], 4)
    return replace(VLMConfig(), **fields)


def preset_of(result: dict[str, Any]) -> tuple[VLMConfig, dict[str, Any]]:
    """The sim VLM config the measured rates (point estimates) map to, and the mapping as applied.

    A rate that was not measured (no answered clip or plan) keeps the sim default."""
    counts = measured(result)
    values = {rate: k / n for rate, kn in counts.items() if kn is not None for k, n in [kn]}
    return _config(values), {"measured": {rate: values.get(rate) for rate in MAPPING},
                             "counts": {rate: kn for rate, kn in counts.items()}, "fields": MAPPING,
                             "unmeasured": UNMEASURED}


def posterior_presets(result: dict[str, Any], draws: int, *, seed: int = 0) -> list[VLMConfig]:
    """``draws`` sim VLM configs with every measured rate drawn from its posterior: Beta(k + 1/2, n - k + 1/2)
    (Jeffreys), and the planner's error forms (illegal, multi-move, the rest) jointly from Dirichlet(counts + 1/2).
    Deterministic under ``seed``; the fewer clips measured, the wider the drawn rates spread."""
    counts = measured(result)
    rng = np.random.default_rng([seed, 0x706F7374])
    out = []
    for _ in range(draws):
        values: dict[str, float] = {}
        for rate, kn in counts.items():
            if kn is None or rate.startswith("plan.errors."):
                continue
            k, n = kn
            values[rate] = float(rng.beta(k + 0.5, n - k + 0.5))
        illegal, multi = counts["plan.errors.illegal"], counts["plan.errors.multi"]
        if illegal is not None and multi is not None:
            n = illegal[1]
            shares = rng.dirichlet([illegal[0] + 0.5, multi[0] + 0.5, n - illegal[0] - multi[0] + 0.5])
            values |= {"plan.errors.illegal": float(shares[0]), "plan.errors.multi": float(shares[1])}
        out.append(_config(values))
    return out


def bench_config(suite: str, out_dir: Path, *, vlm: str = "sim", vgm: str = "sim:weak", n: int = 4, seed: int = 0,
                 concurrency: int = 2, methods: tuple[str, ...] = (REFERENCE, *BASELINES), out: Path | None = None
                 ) -> BenchConfig:
    """The prediction's benchmark: the methods on the suite's sim cells at the matched budget."""
    return BenchConfig(out=out or Path(out_dir) / "predict", suite=suite, methods=list(methods), n=n, seed=seed,
                       concurrency=concurrency, vgm=vgm, vlm=vlm, budget=f"{BUDGET:g}")


def check_predict(suite: str, *, vgm: str, n: int, concurrency: int, draws: int = DRAWS) -> None:
    """Fail on a bad --predict argument before any VLM call."""
    if registry.parse_spec(vgm)[0] != "sim":
        raise BadInput(f"--predict-vgm must be a sim VGM (sim:weak, sim:strong or sim:PATH.json), got {vgm!r}")
    if not isinstance(draws, int) or isinstance(draws, bool) or draws < 0:
        raise BadInput(f"--predict-draws must be a whole number >= 0 (0: the point estimates only), got {draws!r}")
    bench_config(suite, Path("."), vgm=vgm, n=n, concurrency=concurrency).check()
    registry.resolve_vgm(vgm)


def predict(result: dict[str, Any], out_dir: Path, *, vgm: str = "sim:weak", n: int = 4, seed: int = 0,
            concurrency: int = 2, draws: int = DRAWS, on_start: Callable[[int, int], None] | None = None,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Write the preset, run (or resume) the benchmark in ``out_dir/predict`` with the point estimates and
    in ``out_dir/predict/draws/dNN`` with each posterior draw, and return the prediction."""
    config, mapping = preset_of(result)
    preset = Path(out_dir) / PRESET
    point = _run(bench_config(result["suite"], out_dir, vlm=f"sim:{preset}", vgm=vgm, n=n, seed=seed, concurrency=concurrency),
                 config, preset, on_start, on_result)
    drawn = []
    for i, draw in enumerate(posterior_presets(result, draws, seed=seed), 1):
        where = Path(out_dir) / "predict" / "draws" / f"d{i:02d}"
        bench = bench_config(result["suite"], out_dir, vlm=f"sim:{where / PRESET}", vgm=vgm, n=n, seed=seed,
                             concurrency=concurrency, methods=DRAWN, out=where)
        drawn.append((draw, _run(bench, draw, where / PRESET, on_start, on_result)))
    return prediction(point, config, mapping, drawn)


def _run(bench: BenchConfig, config: VLMConfig, preset: Path, on_start: Callable[[int, int], None] | None,
         on_result: Callable[[dict[str, Any]], None] | None) -> BenchConfig:
    """Write ``config`` as the preset file and run (or resume) ``bench`` with it."""
    # the rates as options too (the same values as the file): bench.json pins them, so a rerun with other
    # rates cannot resume into episodes run with the old ones, nor overwrite the preset they were run with
    bench.vlm_options = asdict(config)
    pinned = bench.out / "bench.json"
    if pinned.is_file() and json.loads(pinned.read_text()).get("pinned", {}).get("vlm_options") != bench.pinned()["vlm_options"]:
        raise BadInput(f"{bench.out} holds a prediction made from other rates (other settings (vlm_options) than "
                       f"{preset} would get now); use a new --out, or remove {bench.out} and {preset}")
    save_preset(config, preset)
    run_bench(bench, on_start=on_start, on_result=on_result)
    return bench


def _results(bench: BenchConfig) -> list[dict[str, Any]]:
    wanted = {job.key for job in jobs_of(bench)}
    return [r for r in read_results(bench.out / RESULTS) if result_key(r) in wanted]


def prediction(bench: BenchConfig, config: VLMConfig, mapping: dict[str, Any],
               drawn: list[tuple[VLMConfig, BenchConfig]] | None = None) -> dict[str, Any]:
    """The paired gains of CollabVR over each baseline: with the point estimates, and over the posterior draws
    of the rates (the predictive interval), with their sentences."""
    results = _results(bench)
    runs = [_results(b) + [r for r in results if r["method"] not in DRAWN] for _, b in drawn or []]
    where = _families(bench.suite)
    gains = []
    for baseline in BASELINES:
        p = paired_methods(results, REFERENCE, baseline, seed=bench.seed)
        per_draw = [differences(method_scores(rs, REFERENCE), method_scores(rs, baseline))[1] for rs in runs]
        entry: dict[str, Any] = {"baseline": baseline, **p.public()}
        if per_draw:
            lo, hi = predictive_interval(per_draw, seed=bench.seed)
            means = [float(d.mean()) for d in per_draw if d.size]
            entry |= {"draws": len(per_draw), "predictive_ci": [lo, hi], "draw_means": means}
            entry["sentence"] = (
                f"Under the simulator's assumptions, a sim VLM with these measured rates gains {p.diff:+.3f} over {baseline} "
                f"on {where} (point estimates, n = {p.n} paired instances); over {len(per_draw)} posterior draws of the "
                f"rates and the episodes' sampling the gain lies in [{lo:+.3f}, {hi:+.3f}] (95%), "
                f"{'which excludes 0' if lo > 0 or hi < 0 else 'which includes 0'}. A prediction of the simulator with "
                f"this VLM's rates, not a measurement of the VLM with your VGM.")
        else:
            entry["sentence"] = (
                f"Under the simulator's assumptions, a sim VLM with these measured rates (point estimates only: no "
                f"posterior draws, so the interval leaves out the rates' uncertainty) gains {p.text()} over {baseline} on "
                f"{where} (n = {p.n} paired instances; {p.verdict}). A prediction of the simulator, not a measurement.")
        gains.append(entry)
    draws = [{"config": asdict(c), "bench": str(b.out)} for c, b in drawn or []]
    return {"preset": str(bench.out.parent / PRESET), "vlm": bench.vlm, "config": asdict(config), "mapping": mapping,
            "bench": {"out": str(bench.out), "suite": bench.suite, "vgm": bench.vgm, "n": bench.n,
                      "seeds": [bench.seed, bench.seed + bench.n - 1], "budget_seconds": BUDGET,
                      "methods": [REFERENCE, *BASELINES], "episodes": len(results),
                      "errors": sum(r.get("status") == "error" for r in results),
                      "draws": len(draws), "drawn_methods": list(DRAWN)},
            "draws": draws, "gains": gains,
            "assumptions": [*ASSUMPTIONS, f"n = {bench.n} seeds per cell ({bench.seed}..{bench.seed + bench.n - 1}), "
                                          f"VGM {bench.vgm}, {BUDGET:g} clip-seconds per episode"]}


def _families(suite: str) -> str:
    """The task families of a sim suite spec, in words."""
    cells = sim_cells(suite)
    families = list(dict.fromkeys(f for f, _ in cells))
    levels = list(dict.fromkeys(d for _, d in cells))
    return f"{', '.join(families)} ({', '.join(levels)}; the sim suite {suite})"


def markdown(pred: dict[str, Any]) -> str:
    """The "Prediction" section of calibration.md."""
    b = pred["bench"]
    draws = b.get("draws", 0)
    lines = ["", "## Prediction (under the simulator's assumptions)", "",
             f"The measured rates as a sim VLM preset (`{pred['preset']}`; {_preset_text(pred['config'])}), "
             f"on the sim suite `{b['suite']}` with VGM `{b['vgm']}`, {b['budget_seconds']:g} clip-seconds per episode, "
             f"seeds {b['seeds'][0]}..{b['seeds'][1]} per cell ({b['episodes']} episodes, {b['errors']} errors; "
             f"`{b['out']}`)"
             + (f", and again with each of {draws} draws of the rates from their posteriors (the methods whose episodes "
                f"depend on them: {', '.join(b['drawn_methods'])})" if draws else "")
             + ". CollabVR minus each baseline on the same instances:", "",
             "| baseline | CollabVR | baseline | gain, point estimates [95% bootstrap CI] | over the rates' posterior "
             "[95% predictive interval] | per-draw means (min to max) | n | wins / losses / ties |",
             "|---|---|---|---|---|---|---|---|"]
    for g in pred["gains"]:
        over = ("n/a (no draws)" if "predictive_ci" not in g else
                f"[{g['predictive_ci'][0]:+.3f}, {g['predictive_ci'][1]:+.3f}]")
        spread = "n/a" if not g.get("draw_means") else f"{min(g['draw_means']):+.3f} to {max(g['draw_means']):+.3f}"
        lines.append(f"| {g['baseline']} | {g['mean_a']:.3f} | {g['mean_b']:.3f} | {g['diff']:+.3f} [{g['ci'][0]:+.3f}, "
                     f"{g['ci'][1]:+.3f}] | {over} | {spread} | {g['n']} | {g['wins']} / {g['losses']} / {g['ties']} |")
    lines += ["", *[g["sentence"] for g in pred["gains"]], "", "The prediction assumes:", "",
              *[f"- {a};" for a in pred["assumptions"]], "",
              "Not in the preset, and which way each cuts:", "",
              *[f"- {k}: {why}." for k, why in pred["mapping"]["unmeasured"].items()]]
    return "\n".join(lines) + "\n"


def _preset_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k} {config[k]:g}" for f in MAPPING.values() for k in f if config.get(k) is not None)
