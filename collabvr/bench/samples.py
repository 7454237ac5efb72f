"""What a bench ran, in words a reader can check: the sim's seeds, or a benchmark's real sample ids
and runs (a 5-sample suite must not read "seeds 0..49")."""

from __future__ import annotations

from typing import Any

from collabvr.bench.config import BenchConfig
from collabvr.bench.suites import Suite


def run_of(config: BenchConfig, suite: Suite) -> dict[str, Any]:
    """summary.json's record of the instances: ``seeds`` for the sim; for a benchmark the seeds of its
    runs, the sample ids, and the ids the suite left out or skipped."""
    if suite.kind == "sim":
        return {"seeds": [config.seed, config.seed + config.n - 1]}
    return {"seeds": [config.seed, config.seed + config.runs - 1], "runs": config.runs,
            "samples": [s.id for s in suite.samples(config.n, config.seed)],
            "left_out": list(getattr(suite, "left_out", ())), "skipped": list(getattr(suite, "skipped", ()))}


def instances_text(cfg: dict[str, Any]) -> str:
    """One phrase for the header: ``seeds 0..49``, or ``5 samples (listed under Samples), 2 runs per
    sample (seeds 0..1)``."""
    lo, hi = cfg["seeds"]
    if "samples" not in cfg:
        return f"seeds {lo}..{hi}"
    runs = cfg.get("runs", 1)
    text = f"{len(cfg['samples'])} sample(s) (listed under Samples), {runs} run(s) per sample (seeds {lo}..{hi})"
    if cfg.get("left_out"):
        text += f"; {len(cfg['left_out'])} id(s) beyond the official three per subtask left out (--all-samples keeps them)"
    return text


def samples_markdown(cfg: dict[str, Any]) -> str:
    """The sample ids per task, and those left out or skipped, as a Markdown section."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key in cfg.get("samples", []):
        family, difficulty, sid = str(key).split("/", 2)
        groups.setdefault((family, difficulty), []).append(sid)
    lines = ["## Samples", "", f"Each sample ran {cfg.get('runs', 1)} time(s); run r used seed {cfg['seeds'][0]} + r.", "",
             "| split or category | task or subtask | n | ids |", "|---|---|---|---|"]
    lines += [f"| {f} | {d} | {len(ids)} | {', '.join(ids)} |" for (f, d), ids in groups.items()]
    for label, key in (("Left out (not in the official sample set)", "left_out"), ("Skipped (no image in the data)", "skipped")):
        if cfg.get(key):
            lines += ["", f"{label}: " + ", ".join(cfg[key])]
    return "\n".join(lines) + "\n"
