"""``collabvr calibrate --predict``: what a calibrated VLM is expected to be worth as CollabVR's verifier.

The measured rates become a sim VLM preset (``DIR/sim-preset.json``, loadable as
``--vlm sim:DIR/sim-preset.json``), and a small sim benchmark with that preset runs CollabVR
against single inference, pass@4 and the two critique baselines at a matched budget of
clip-seconds. The report is the paired gain of CollabVR over each, with its bootstrap CI.

The prediction is only as good as the sim's model of the world; :data:`ASSUMPTIONS` states what
it takes for granted, and the report repeats it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from collabvr.backends import registry
from collabvr.backends.sim.config import VLMConfig, save_preset
from collabvr.bench.config import BenchConfig
from collabvr.bench.results import RESULTS, read_results, result_key
from collabvr.bench.runner import jobs_of, run_bench
from collabvr.bench.stats import paired_methods
from collabvr.bench.suites.sim import sim_cells
from collabvr.errors import BadInput

REFERENCE = "collabvr"
BASELINES = ("single", "pass@4", "posthoc_critique", "prompt_opt")
BUDGET = 48.0  # clip-seconds per episode, as in docs/results-sim.md
PRESET = "sim-preset.json"

# measured rate -> the VLMConfig fields it sets; the critic of the critique baselines gets the same rates
MAPPING = {
    "verify.false_accept": ("false_accept", "critic_false_solved"),
    "verify.false_reject": ("false_reject", "critic_false_unsolved"),
    "1 - plan.optimal": ("plan_noise", "critic_rewrite_noise"),
}
# what calibrate measures that the sim VLM has no field for, and what it does not measure
LEFT_OUT = {
    "verify.good_fraction_error": "the sim verifier reports the first bad frame exactly",
    "plan.legal, plan.wrong_completion": "the sim planner's only error is one legal off-path move "
                                         "(plan_noise = 1 - optimal covers illegal plans as off-path ones)",
    "typed_failures": "the sim VLM has no failure-rate field; a typed failure costs CollabVR a retry, "
                      "so leaving them out flatters it when they are frequent",
    "select_noise": "not measured (calibrate does not test the selector); kept at the sim default",
    "verify_correlation": "not measured (every clip is verified once); 0: errors independent per call",
}
ASSUMPTIONS = (
    "the sim's world and video-model error model (the VGM preset named) stand in for the real tasks and VGM",
    "the VLM's errors are independent of clip content beyond the measured rates: one false-accept rate for "
    "every kind of bad clip, one false-reject rate, drawn afresh per call",
    "the critic of posthoc_critique and prompt_opt errs at the same rates as the verifier and planner",
    "the selector of pass@4 keeps the sim default select_noise (not measured)",
)


def preset_of(result: dict[str, Any]) -> tuple[VLMConfig, dict[str, Any]]:
    """The sim VLM config the measured rates (point estimates) map to, and the mapping as applied.

    A rate that was not measured (no answered clip or plan) keeps the sim default."""
    v, p = result["verify"], result["plan"]
    optimal = p["optimal"]["rate"]
    measured = {"verify.false_accept": v["false_accept"]["rate"], "verify.false_reject": v["false_reject"]["rate"],
                "1 - plan.optimal": None if optimal is None else 1.0 - optimal}
    values: dict[str, float] = {}
    for rate, targets in MAPPING.items():
        if measured[rate] is not None:
            values |= {field: round(measured[rate], 4) for field in targets}
    config = replace(VLMConfig(), **values)
    return config, {"measured": measured, "fields": MAPPING, "left_out": LEFT_OUT}


def bench_config(suite: str, out_dir: Path, *, vlm: str = "sim", vgm: str = "sim:weak", n: int = 4, seed: int = 0,
                 concurrency: int = 2) -> BenchConfig:
    """The prediction's benchmark: every method on the suite's sim cells at the matched budget."""
    return BenchConfig(out=Path(out_dir) / "predict", suite=suite, methods=[REFERENCE, *BASELINES], n=n, seed=seed,
                       concurrency=concurrency, vgm=vgm, vlm=vlm, budget=f"{BUDGET:g}")


def check_predict(suite: str, *, vgm: str, n: int, concurrency: int) -> None:
    """Fail on a bad --predict argument before any VLM call."""
    if registry.parse_spec(vgm)[0] != "sim":
        raise BadInput(f"--predict-vgm must be a sim VGM (sim:weak, sim:strong or sim:PATH.json), got {vgm!r}")
    bench_config(suite, Path("."), vgm=vgm, n=n, concurrency=concurrency).check()
    registry.resolve_vgm(vgm)


def predict(result: dict[str, Any], out_dir: Path, *, vgm: str = "sim:weak", n: int = 4, seed: int = 0,
            concurrency: int = 2, on_start: Callable[[int, int], None] | None = None,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Write the preset, run (or resume) the benchmark in ``out_dir/predict`` and return the prediction."""
    config, mapping = preset_of(result)
    preset = Path(out_dir) / PRESET
    bench = bench_config(result["suite"], out_dir, vlm=f"sim:{preset}", vgm=vgm, n=n, seed=seed, concurrency=concurrency)
    # the rates as options too (the same values as the file): bench.json pins them, so a rerun with other
    # rates cannot resume into episodes run with the old ones, nor overwrite the preset they were run with
    bench.vlm_options = asdict(config)
    pinned = bench.out / "bench.json"
    if pinned.is_file() and json.loads(pinned.read_text()).get("pinned", {}).get("vlm_options") != bench.pinned()["vlm_options"]:
        raise BadInput(f"{bench.out} holds a prediction made from other rates (other settings (vlm_options) than "
                       f"{preset} would get now); use a new --out, or remove {bench.out} and {preset}")
    save_preset(config, preset)
    run_bench(bench, on_start=on_start, on_result=on_result)
    return prediction(bench, config, mapping)


def prediction(bench: BenchConfig, config: VLMConfig, mapping: dict[str, Any]) -> dict[str, Any]:
    """The paired gains of CollabVR over each baseline on the benchmark's episodes, with their sentences."""
    wanted = {job.key for job in jobs_of(bench)}
    results = [r for r in read_results(bench.out / RESULTS) if result_key(r) in wanted]
    where = _families(bench.suite)
    gains = []
    for baseline in BASELINES:
        p = paired_methods(results, REFERENCE, baseline, seed=bench.seed)
        gains.append({"baseline": baseline, **p.public(),
                      "sentence": f"With this VLM as verifier, step-level collaboration is expected to gain {p.text()} "
                                  f"over {baseline} on {where} (n = {p.n} paired instances; {p.verdict})."})
    return {"preset": str(bench.out.parent / PRESET), "vlm": bench.vlm, "config": asdict(config), "mapping": mapping,
            "bench": {"out": str(bench.out), "suite": bench.suite, "vgm": bench.vgm, "n": bench.n,
                      "seeds": [bench.seed, bench.seed + bench.n - 1], "budget_seconds": BUDGET,
                      "methods": [REFERENCE, *BASELINES], "episodes": len(results),
                      "errors": sum(r.get("status") == "error" for r in results)},
            "gains": gains, "assumptions": [*ASSUMPTIONS, f"n = {bench.n} seeds per cell ({bench.seed}..{bench.seed + bench.n - 1}), "
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
    lines = ["", "## Prediction", "",
             f"The measured rates as a sim VLM preset (`{pred['preset']}`; {_preset_text(pred['config'])}), "
             f"on the sim suite `{b['suite']}` with VGM `{b['vgm']}`, {b['budget_seconds']:g} clip-seconds per episode, "
             f"seeds {b['seeds'][0]}..{b['seeds'][1]} per cell ({b['episodes']} episodes, {b['errors']} errors; "
             f"`{b['out']}`). CollabVR minus each baseline on the same instances, mean [95% percentile bootstrap CI]:", "",
             "| baseline | CollabVR | baseline | gain [95% CI] | n | wins / losses / ties |", "|---|---|---|---|---|---|"]
    for g in pred["gains"]:
        lines.append(f"| {g['baseline']} | {g['mean_a']:.3f} | {g['mean_b']:.3f} | {g['diff']:+.3f} [{g['ci'][0]:+.3f}, "
                     f"{g['ci'][1]:+.3f}] | {g['n']} | {g['wins']} / {g['losses']} / {g['ties']} |")
    lines += ["", *[g["sentence"] for g in pred["gains"]], "", "The prediction assumes:", "",
              *[f"- {a};" for a in pred["assumptions"]], "",
              "Left out of the preset: " + "; ".join(f"{k} ({why})" for k, why in pred["mapping"]["left_out"].items()) + "."]
    return "\n".join(lines) + "\n"


def _preset_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k} {config[k]:g}" for f in MAPPING.values() for k in f)
