"""Exports of a benchmark directory in the benchmarks' official layouts, and their tables.

* ``vbvr``: ``OUT/<method>/<split>/<task folder>/<5-digit id>.mp4`` (a method's run k > 0 goes to
  ``OUT/<method>-run<k>``), what VBVR-EvalKit's ``run_evaluation.py --model_path OUT/<method>`` reads.
* ``genvire``: ``OUT/0_generated_videos/<method>/<method>_<k>/<main_category>/<subtask>/<id>.mp4`` with the
  judge's ``<id>_score.json`` beside it, what Gen-ViRe's code/step4_generate_summary.py reads. Folder
  k is run r's judge repeat j at ``k = r * repeats + j``: with ``--runs 5`` the official five runs;
  with ``--judge-repeats J`` one video judged J times (the paper's protocol, not the official one).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collabvr.bench.results import RESULTS, read_results
from collabvr.bench.suites import Suite, parse_suite
from collabvr.bench.suites.genvire import (
    Scores,
    aggregate,
    read_scores,
    summary_markdown,
    video_path,
    write_summary_csv,
)
from collabvr.bench.suites.vbvr import floor_and_ceiling, vbvr_table
from collabvr.errors import BadInput, unmasked
from collabvr.rundir import FINAL, TRACE

FORMATS = ("vbvr", "genvire")


def _sid(r: dict[str, Any]) -> str:
    return str(r["sample"]).rsplit("/", 1)[-1]


def _score(bench_dir: Path, r: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads((bench_dir / r["run_dir"] / TRACE).read_text()).get("score") or {}
    except (OSError, json.JSONDecodeError):
        return {}


def genvire_items(bench_dir: Path, results: list[dict[str, Any]], repeats: int) -> Iterator[tuple]:
    """Per judged video: (method, run folder, dimension, subtask, id, video, official score file or None)."""
    for r in sorted((r for r in results if r.get("sample")), key=lambda r: (r["method"], r["sample"], r.get("run", 0))):
        reps = _score(bench_dir, r).get("repeats") or [None] * repeats
        for j, rep in enumerate(reps):
            score_file = rep.get("score_file") if rep and rep.get("status") == "ok" else None
            yield (r["method"], r.get("run", 0) * repeats + j, r["family"], r["difficulty"], _sid(r),
                   bench_dir / r["run_dir"] / FINAL, score_file)


def protocol(runs: int, repeats: int) -> str:
    if repeats > 1:
        return f"{runs} run(s) x {repeats} judge repeats: one video judged {repeats} times, NOT the official protocol"
    return f"{runs} run(s), one judge call per video" + (" (the official protocol)" if runs == 5 else "")


def benchmark_tables(bench_dir: Path, suite: Suite, results: list[dict[str, Any]], *, runs: int, repeats: int,
                     strict: bool) -> tuple[dict[str, Any], str]:
    """The suite's own tables from a benchmark directory's results: (JSON, Markdown)."""
    if suite.kind == "vbvr":
        keys = {r.get("sample") for r in results}
        rows = [row for row in suite.rows if row.key in keys]  # type: ignore[attr-defined]
        bounds = {row.key: dict(zip(("floor", "ceiling"), floor_and_ceiling(row), strict=True)) for row in rows}
        return {"scorer": "vbvr-first-order (not official)", "bounds": bounds}, vbvr_table(results, bounds)
    scores: dict[str, Scores] = {}
    for method, _k, dim, sub, _s, _video, score_file in genvire_items(bench_dir, results, repeats):
        scores.setdefault(method, Scores(method, strict)).add(dim, sub, score_file)
    aggs = [aggregate(s) for s in scores.values()]
    return ({"protocol": protocol(runs, repeats), "strict": strict, "aggregates": aggs},
            summary_markdown(aggs, protocol=protocol(runs, repeats), strict=strict))


def tables_of_summary(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The suite's Markdown tables again, from summary.json's ``benchmark`` entry (no data needed):
    what results.md shows, for the HTML report."""
    extra = summary.get("benchmark") or {}
    if "bounds" in extra:
        return vbvr_table(results, extra["bounds"])
    if "aggregates" in extra:
        return summary_markdown(extra["aggregates"], protocol=extra.get("protocol", ""), strict=bool(extra.get("strict")))
    return ""


def export_run(bench_dir: str | Path, fmt: str, out: str | Path) -> list[Path]:
    """Export a benchmark directory's final videos (and Gen-ViRe score files) in ``fmt``'s official layout."""
    bench_dir, out = Path(bench_dir), Path(out)
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        config = json.loads((bench_dir / "summary.json").read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError):
        raise BadInput(f"{bench_dir} has no summary.json; run collabvr bench --out {bench_dir} first") from None
    kind = str(config.get("suite", "")).partition(":")[0]
    if kind != fmt:
        raise BadInput(f"{bench_dir} ran suite {config.get('suite')!r}; --format {fmt} exports a {fmt} suite's run")
    results = [r for r in read_results(bench_dir / RESULTS) if r.get("sample")]
    written: list[Path] = []
    if fmt == "vbvr":
        for r in results:
            video = bench_dir / r["run_dir"] / FINAL
            if not video.is_file():
                continue
            method = r["method"] if not r.get("run") else f"{r['method']}-run{r['run']}"
            dest = out / method / r["family"] / r["difficulty"] / f"{_sid(r)}.mp4"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(video, dest)
            written.append(dest)
        return written
    repeats = int(config.get("judge_repeats", 1))
    gen = out / "0_generated_videos"
    for method, k, dim, sub, sid, video, score_file in genvire_items(bench_dir, results, repeats):
        if not video.is_file():
            continue
        dest = video_path(gen, method, k, dim, sub, sid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, dest)
        written.append(dest)
        if score_file is not None:
            (dest.parent / f"{sid}_score.json").write_text(json.dumps(score_file, indent=2, ensure_ascii=False), encoding="utf-8")
    suite = parse_suite(unmasked(config["suite"], f"the suite in {bench_dir / 'summary.json'}"))
    _, tables = benchmark_tables(bench_dir, suite, results, runs=int(config.get("runs", 1)), repeats=repeats,
                                 strict=bool(config.get("strict", False)))
    (out / "genvire_summary.md").write_text(tables)
    return written


def score_genvire(gen_dir: str | Path, *, strict: bool = False, runs: int | None = None) -> tuple[list[dict[str, Any]], str]:
    """Aggregate ``0_generated_videos/<model>`` (or every model under ``0_generated_videos``) officially;
    write ``<model>_summary.csv`` (step4's batch CSV) into each model folder and ``genvire_scores.json`` beside."""
    gen_dir = Path(gen_dir)
    if not gen_dir.is_dir():
        raise BadInput(f"{gen_dir}: no such directory; expected 0_generated_videos/<model>")
    models = [gen_dir] if any(p.name.startswith(f"{gen_dir.name}_") for p in gen_dir.iterdir() if p.is_dir()) else \
        sorted(p for p in gen_dir.iterdir() if p.is_dir())
    aggs = []
    for model_dir in models:
        agg = aggregate(read_scores(model_dir, strict=strict, runs=runs))
        write_summary_csv(agg, model_dir / f"{model_dir.name}_summary.csv")
        aggs.append(agg)
    if not aggs:
        raise BadInput(f"{gen_dir}: no model folders with run folders <model>_0 ..")
    (gen_dir / "genvire_scores.json").write_text(json.dumps(aggs, indent=2))
    runs_seen = "runs as found" if runs is None else f"first {runs} run(s)"
    return aggs, summary_markdown(aggs, protocol=runs_seen, strict=strict)
