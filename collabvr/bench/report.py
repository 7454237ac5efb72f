"""Static HTML: a per-episode timeline page, and a benchmark report folder.

Both are plain files that open from disk. Every link is relative, and every text that came from a
trace (prompts, plans, verdicts, a backend's error message) goes through ``html.escape``.

* :func:`write_timeline` turns a run directory's ``trace.json`` into ``episode.html`` beside it:
  the plan, the attempts with their verdicts and clips, and the repairs of every step.
  ``collabvr run`` and ``collabvr bench`` both write it (``runner.write_outputs`` calls it).
* :func:`write_report` turns a benchmark directory into ``DIR/report/``: two plots, the results
  table and one row per episode. The episodes' videos, contact sheets and timelines are linked
  (hard links, or copies across file systems) into ``report/episodes/``, so the folder is whole
  on its own: zip it, move it, open ``index.html``.
"""

from __future__ import annotations

import json
import os
import shutil
from html import escape
from pathlib import Path
from typing import Any

from collabvr.bench.export import tables_of_summary
from collabvr.bench.inference import MARGIN, MIN_DIFFERING
from collabvr.bench.results import read_results
from collabvr.bench.stats import Cell, Paired, paired_against, summarize, summarize_group
from collabvr.rundir import FINAL, SHEET, TIMELINE, href, page, write_timeline

# -- the benchmark report ---------------------------------------------------------------------


def write_report(bench_dir: str | Path) -> Path:
    """Write ``bench_dir/report/`` (index.html, two PNG plots, episodes/) and return index.html."""
    bench_dir = Path(bench_dir)
    results = read_results(bench_dir / "results.jsonl")
    report = bench_dir / "report"
    report.mkdir(parents=True, exist_ok=True)
    cells = summarize(results)
    plots = [plot_score_vs_compute(cells, report / "score_vs_compute.png"),
             plot_score_by_difficulty(cells, report / "score_by_difficulty.png")]
    rows = []
    for r in sorted(results, key=lambda r: (r["method"], r["family"], r["difficulty"], r["seed"])):
        links = _link_episode(bench_dir, report, r)
        score = "" if r.get("score") is None else f"{r['score']:.3f}"
        cells_html = [escape(str(r[k])) for k in ("method", "family", "difficulty", "seed", "status")]
        cells_html += [score, "yes" if r.get("solved") else "no", f"{(r.get('compute') or {}).get('clip_seconds', 0):g}",
                       escape(_money(r.get("cost")))]
        cells_html.append(" ".join(f'<a href="{href(path)}">{label}</a>' for label, path in links))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells_html) + "</tr>")
    summary = _summary(bench_dir)
    body = [
        f"<h1>Benchmark report: {escape(bench_dir.resolve().name)}</h1>",
        f"<p>{len(results)} episode(s). Scores are means with 95% bootstrap confidence intervals.</p>",
        _partial_html(partial_text(summary.get("totals") or {})),
        results_html(cells),
        paired_section(results, summary),
        markdown_html(tables_of_summary(summary, results)),
        "".join(f'<p><img alt="{escape(p.stem)}" src="{href(p.name)}"></p>' for p in plots),
        "<h2>Episodes</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in (
            "method", "family", "difficulty", "seed", "status", "score", "solved", "clip-s", "cost", "files")) + "</tr>",
        *rows, "</table>",
    ]
    index = report / "index.html"
    index.write_text(page(f"collabvr benchmark {bench_dir.name}", "\n".join(body)))
    return index


def _partial_html(sentence: str) -> str:
    return f"<p><strong>Partial bench:</strong> {escape(sentence)}</p>" if sentence else ""


def _summary(bench_dir: Path) -> dict[str, Any]:
    """summary.json (what results.md was made from), or {} when there is none."""
    try:
        summary = json.loads((bench_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def markdown_html(text: str) -> str:
    """The small Markdown our tables use (headings, paragraphs, pipe tables) as HTML, every text escaped."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body)
                       + "</table>")
            table.clear()

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 0, 4)
            out.append(f"<h{level}>{escape(line.lstrip('#').strip())}</h{level}>")
        elif line:
            out.append(f"<p>{escape(line)}</p>")
    flush()
    return "\n".join(out)


def _link_episode(bench_dir: Path, report: Path, result: dict[str, Any]) -> list[tuple[str, str]]:
    """Link one episode's files into report/episodes/ and write its timeline there.

    Returns (label, path relative to report/) for each file that exists.
    """
    rel = result.get("run_dir")
    if not rel or not (bench_dir / rel / "trace.json").is_file():
        return []
    src, dst = bench_dir / rel, report / rel
    trace = json.loads((src / "trace.json").read_text())
    files = [*(trace.get("files") or {}).get("clips", []), "final.mp4", "contact_sheet.png"]
    for name in files:
        if (src / name).is_file():
            _link(src / name, dst / name)
    write_timeline(dst, trace)
    links = [("timeline", f"{rel}/{TIMELINE}")]
    links += [(label, f"{rel}/{name}") for label, name in (("video", FINAL), ("sheet", SHEET))
              if (dst / name).is_file()]
    return links


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(src, dst)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def _ci(cell: Cell) -> str:
    return f"{cell.mean_score:.3f} [{cell.ci[0]:.3f}, {cell.ci[1]:.3f}]"


HEADERS = ("method", "family", "difficulty", "n", "score [95% CI]", "solved", "clip-s", "VLM calls", "cost/episode")


def _row(cell: Cell) -> list[str]:
    return [cell.method, cell.family, cell.difficulty, str(cell.n), _ci(cell), f"{cell.solved_rate:.0%}",
            f"{cell.mean_clip_seconds:.1f}", f"{cell.mean_vlm_calls:.1f}", _money(cell.mean_cost)]


def results_html(cells: list[Cell]) -> str:
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in _row(cell)) + "</tr>" for cell in cells)
    return f"<h2>Results</h2><table><tr>{head}</tr>{rows}</table>"


def results_markdown(cells: list[Cell]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_row(cell)) + " |" for cell in cells]
    return "\n".join(lines) + "\n"


def _verdict(p: Paired, reference: str, other: str) -> str:
    return {"above": f"{reference} above {other}", "below": f"{reference} below {other}",
            "level": f"level (within ±{MARGIN:g})"}.get(p.verdict, p.verdict)


def paired_markdown(pairs: list[tuple[str, str, Paired]], reference: str) -> str:
    """The paired differences ``reference - other`` as a markdown table (see stats.paired_against), with
    the raw and the Holm-adjusted p-values of the permutation and equivalence tests and the verdict."""
    if not pairs:
        return ""
    m = pairs[0][2].family
    lines = [f"| {reference} minus | difficulty | n pairs | {reference} | other | difference [95% CI] | wins / losses / ties | "
             f"p (raw / Holm over {m}) | level within ±{MARGIN:g}: p (raw / Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {other} | {level} | {p.n} | {p.mean_a:.3f} | {p.mean_b:.3f} | {p.text()} | {p.wins} / {p.losses} / {p.ties} | "
              f"{p_text(p.p_raw)} / {p_text(p.p)} | {p_text(p.p_equiv_raw)} / {p_text(p.p_equiv)} | {_verdict(p, reference, other)} |"
              for other, level, p in pairs]
    return "\n".join(lines) + "\n"


def p_text(p: float) -> str:
    """A p-value to two significant digits, small ones as an upper bound."""
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def paired_intro(reference: str, kind: str, seed: int) -> str:
    """What the paired table pairs, and how its CI is made: one sentence before it."""
    identity = "family, difficulty, seed" if kind == "sim" else "suite, split or category, task, sample, run"
    return (f"{reference} minus each other method on the same instances ({identity}), pooled over families; 95% "
            f"percentile bootstrap CI of the mean difference (2000 resamples, seed {seed}, differences sorted before resampling). "
            f"Verdicts: a paired permutation test with at least {MIN_DIFFERING} differing pairs, Holm-adjusted over the table "
            f"(raw / adjusted p); \"level\" only by an equivalence test at ±{MARGIN:g} (collabvr.bench.inference).")


def partial_text(totals: dict[str, Any]) -> str:
    """When fewer episodes finished than the bench planned, a sentence saying so; empty otherwise."""
    done, planned = totals.get("episodes", 0), totals.get("planned")
    if planned is None or done >= planned:
        return ""
    return f"{done:,} of {planned:,} planned episodes finished; every table covers those only. Rerun the same command to continue."


def paired_section(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The paired-differences section results.md has, recomputed from the results lines, as HTML."""
    config = summary.get("config") or {}
    methods = config.get("methods") or list(dict.fromkeys(r["method"] for r in results))
    reference = "collabvr" if "collabvr" in methods else methods[0] if methods else ""
    seed = int(config.get("seed", 0))
    pairs = paired_against(results, reference, seed=seed) if reference else []
    if not pairs:
        return ""
    kind = "sim" if all(r.get("sample") is None for r in results) else "benchmark"
    return markdown_html("## Paired differences\n\n" + paired_intro(reference, kind, seed) + "\n\n" + paired_markdown(pairs, reference))


def results_table(cells: list[Cell], title: str = "Results") -> Any:
    """The table as a rich Table, for the terminal."""
    from rich.table import Table

    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="right" if h not in ("method", "family", "difficulty") else "left")
    for cell in cells:
        table.add_row(*_row(cell))
    return table


# -- plots ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_method(cells: list[Cell]) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {}
    for cell in cells:
        out.setdefault(cell.method, []).append(cell)
    return out


def _pooled(cells: list[Cell]) -> dict[str, Cell]:
    """One cell per method over every family and difficulty."""
    return {m: summarize_group(m, "all", "all", [r for c in group for r in c.results]) for m, group in _by_method(cells).items()}


def plot_score_vs_compute(cells: list[Cell], path: Path) -> Path:
    """Mean score against mean clip-seconds per method (pooled over cells), 95% CI error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, cell in _pooled(cells).items():
        err = [[cell.mean_score - cell.ci[0]], [cell.ci[1] - cell.mean_score]]
        ax.errorbar([cell.mean_clip_seconds], [cell.mean_score], yerr=err, fmt="o", capsize=4, label=f"{method} (n={cell.n})")
    ax.set_xlabel("mean VGM clip-seconds per episode")
    ax.set_ylabel("mean score")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Score against compute")
    ax.grid(alpha=0.3)
    if cells:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


def plot_score_by_difficulty(cells: list[Cell], path: Path) -> Path:
    """Mean score per difficulty (pooled over families), one bar group per difficulty, CI error bars."""
    plt = _pyplot()
    difficulties = list(dict.fromkeys(c.difficulty for c in cells))
    methods = _by_method(cells)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / max(1, len(methods))
    for i, (method, group) in enumerate(methods.items()):
        xs, ys, errs = [], [], [[], []]
        for j, difficulty in enumerate(difficulties):
            results = [r for c in group if c.difficulty == difficulty for r in c.results]
            if not results:
                continue
            cell = summarize_group(method, "all", difficulty, results)
            xs.append(j + (i - (len(methods) - 1) / 2) * width)
            ys.append(cell.mean_score)
            errs[0].append(cell.mean_score - cell.ci[0])
            errs[1].append(cell.ci[1] - cell.mean_score)
        ax.bar(xs, ys, width=width, yerr=errs, capsize=3, label=method)
    ax.set_xticks(range(len(difficulties)), difficulties)
    ax.set_ylabel("mean score")
    ax.set_ylim(0, 1.05)
    ax.set_title("Score by difficulty")
    if methods:  # beside the axes, where no bar can be under it
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
