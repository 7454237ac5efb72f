"""The calibration report: ``calibration.md`` (a Markdown table), ``calibration.json`` and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collabvr.calibrate.predict import markdown

_LOWER, _HIGHER = "error rate: lower is better", "rate right: higher is better"
_COLOURS = {_LOWER: "#c44e52", _HIGHER: "#4c72b0"}


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
        from matplotlib.patches import Patch
    except ImportError:
        return paths
    v, p = result["verify"], result["plan"]
    # error rates (lower is better) and rates of getting it right (higher is better), told apart by colour
    bars = [("false accept", v["false_accept"], _LOWER), ("false reject", v["false_reject"], _LOWER),
            *[(f"correct: {k}", e["correct"], _HIGHER) for k, e in v["by_kind"].items()],
            ("plan legal", p["legal"], _HIGHER), ("plan optimal", p["optimal"], _HIGHER),
            ("wrong completion", p["wrong_completion"], _LOWER)]
    bars = [(name, r, kind) for name, r, kind in bars if r["rate"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(bars) + 1.4), layout="constrained")
    ys = range(len(bars))
    rates = [r["rate"] for _, r, _ in bars]
    err = [[max(0.0, r["rate"] - r["lo"]) for _, r, _ in bars], [max(0.0, r["hi"] - r["rate"]) for _, r, _ in bars]]
    ax.barh(list(ys), rates, xerr=err, color=[_COLOURS[kind] for _, _, kind in bars], capsize=3)
    ax.set_yticks(list(ys), [name for name, _, _ in bars])
    for label, (_, _, kind) in zip(ax.get_yticklabels(), bars, strict=True):  # a rate of 0 shows no bar colour
        label.set_color(_COLOURS[kind])
    ax.set_xlim(0, 1)
    ax.set_xlabel("rate")
    ax.invert_yaxis()
    shown = dict.fromkeys(kind for _, _, kind in bars)
    fig.legend(handles=[Patch(color=_COLOURS[kind], label=kind) for kind in shown], fontsize=8,
               loc="outside lower center", ncol=2, frameon=False)
    ax.set_title(f"calibrate {result['vlm']} on {result['suite']} (Wilson 95% CI)")
    fig.savefig(out_dir / "calibration.png", dpi=100)
    plt.close(fig)
    return [*paths, out_dir / "calibration.png"]
