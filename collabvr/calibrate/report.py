"""The calibration report: ``calibration.md`` (a Markdown table), ``calibration.json`` and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collabvr.calibrate.predict import markdown


def _fmt(r: dict[str, Any]) -> str:
    if r.get("rate") is None:
        return "n/a"
    return f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (n={r['n']})"


def table(result: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    v, p = result["verify"], result["plan"]
    gf = v["good_fraction_error"]
    lines = ["| measure | value [95% CI] |", "|---|---|",
             f"| false accept (bad clips accepted) | {_fmt(v['false_accept'])} |",
             f"| false reject (good clips rejected) | {_fmt(v['false_reject'])} |"]
    if gf["mean_abs_error"] is not None:
        lines.append(f"| good_fraction abs. error (bootstrap) | {gf['mean_abs_error']:.3f} [{gf['lo']:.3f}, {gf['hi']:.3f}] (n={gf['n']}) |")
    if v.get("mislocated"):
        lines.append(f"| rejected bad clips mislocated (off by more than one move) | {_fmt(v['mislocated'])} |")
    for kind, rate in v.get("false_accept_by_kind", {}).items():
        lines.append(f"| false accept of {kind.replace('_', '-')} errors | {_fmt(rate)} |")
    for kind, entry in v["by_kind"].items():
        lines.append(f"| verdict correct on {kind} clips | {_fmt(entry['correct'])} |")
        if kind != "good":
            lines.append(f"| {kind}: rejected and located (good fraction within tolerance) | {_fmt(entry['located'])} |")
    if p.get("measured", True):
        lines += [f"| plan legal | {_fmt(p['legal'])} |", f"| plan optimal (every move on a shortest path) | {_fmt(p['optimal'])} |"]
        if p.get("first_move_optimal"):
            lines.append(f"| plan's first move optimal | {_fmt(p['first_move_optimal'])} |")
        for form, rate in p.get("errors", {}).items():
            lines.append(f"| {form} among the plans that are not optimal | {_fmt(rate)} |")
        lines.append(f"| plan claims completion wrongly | {_fmt(p['wrong_completion'])} |")
    else:
        lines.append("| plan | not measured (footage has no known optimal move) |")
    lines += [f"| typed failures | {result['typed_failures'] or 0} |",
              f"| VLM calls / tokens in / out | {result['compute']['vlm_calls']} / {result['compute']['input_tokens']} / "
              f"{result['compute']['output_tokens']} |",
              f"| cost (USD) | {result['compute']['usd'] if result['compute']['usd'] is not None else 'unknown'} |"]
    text = "\n".join(lines) + "\n"
    if result.get("prediction"):
        text += markdown(result["prediction"])
    return text


def write(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``calibration.json``, ``calibration.md`` and (with matplotlib) ``calibration.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "calibration.json", out_dir / "calibration.md"]
    paths[0].write_text(json.dumps(result, indent=2, default=str))
    paths[1].write_text(table(result))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    v, p = result["verify"], result["plan"]
    bars = [("false accept", v["false_accept"]), ("false reject", v["false_reject"]),
            *[(f"correct: {k}", e["correct"]) for k, e in v["by_kind"].items()],
            ("plan legal", p["legal"]), ("plan optimal", p["optimal"]), ("wrong completion", p["wrong_completion"])]
    bars = [(name, r) for name, r in bars if r["rate"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(bars) + 1))
    ys = range(len(bars))
    rates = [r["rate"] for _, r in bars]
    err = [[max(0.0, r["rate"] - r["lo"]) for _, r in bars], [max(0.0, r["hi"] - r["rate"]) for _, r in bars]]
    ax.barh(list(ys), rates, xerr=err, color="#4c72b0", capsize=3)
    ax.set_yticks(list(ys), [name for name, _ in bars])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title(f"calibrate {result['vlm']} on {result['suite']} (Wilson 95% CI)")
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=100)
    plt.close(fig)
    return [*paths, out_dir / "calibration.png"]
