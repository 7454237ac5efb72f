"""A benchmark directory in its benchmark's official terms: the exports its official tools read, the
suite's own tables, and the official scores. Each suite's module does the work; this one only
dispatches on the suite.

* ``vbvr`` (:mod:`.suites.vbvr_official`): ``OUT/<method>/<split>/<task folder>/<5-digit id>.mp4`` (run k > 0
  in ``OUT/<method>-run<k>``), what VBVR-EvalKit reads; ``score vbvr`` runs the kit on it.
* ``genvire`` (:mod:`.suites.genvire_official`): ``OUT/0_generated_videos/<method>/<method>_<run>/<main_category>/
  <subtask>/<id>.mp4`` with the judge's ``<id>_score.json`` beside it, what Gen-ViRe's
  code/step4_generate_summary.py reads: one run folder per generated video, the first five only unless
  ``runs`` asks for more; ``score genvire`` aggregates such a tree as step4 does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collabvr.bench.results import RESULTS, read_results
from collabvr.bench.suites import Suite, parse_suite
from collabvr.bench.suites.evalkit import OnLine, check_entry, open_evalkit
from collabvr.bench.suites.genvire import RUNS_OFFICIAL
from collabvr.bench.suites.genvire_official import (
    aggregate,
    bench_aggregates,
    export_genvire,
    model_dirs,
    protocol,
    read_scores,
    summary_markdown,
    write_summary_csvs,
)
from collabvr.bench.suites.vbvr import floor_and_ceiling, vbvr_table
from collabvr.bench.suites.vbvr_official import (
    export_vbvr,
    gt_base_of,
    official_bench_table,
    official_markdown,
    official_of_bench,
    score_models,
)
from collabvr.errors import BadInput, unmasked
from collabvr.rundir import write_json

FORMATS = ("vbvr", "genvire")


def official_runs(runs: int, asked: int | None = None) -> int:
    """The run folders a Gen-ViRe table or export holds: the official five at most, unless asked by name."""
    return asked if asked is not None else min(runs, RUNS_OFFICIAL)


def benchmark_tables(bench_dir: Path, suite: Suite, results: list[dict[str, Any]], *, runs: int, repeats: int,
                     strict: bool, official: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """The suite's own tables from a benchmark directory's results: (JSON, Markdown). ``official``: the
    VBVR-EvalKit scores of this bench (:func:`official_for_bench`), shown beside the first-order ones."""
    if suite.kind == "vbvr":
        keys = {r.get("sample") for r in results}
        rows = [row for row in suite.rows if row.key in keys]  # type: ignore[attr-defined]
        bounds = {row.key: dict(zip(("floor", "ceiling"), floor_and_ceiling(row), strict=True)) for row in rows}
        extra = {"scorer": "vbvr-first-order (not official)", "bounds": bounds} | ({"official": official} if official else {})
        return extra, _vbvr_tables(results, extra)
    read = official_runs(runs)
    text = protocol(read, repeats) + (f"; runs {read}..{runs - 1} beyond the official five left out" if runs > read else "")
    aggs = bench_aggregates(bench_dir, results, runs=read, strict=strict)
    return {"protocol": text, "strict": strict, "aggregates": aggs}, summary_markdown(aggs, protocol=text, strict=strict)


def _vbvr_tables(results: list[dict[str, Any]], extra: dict[str, Any]) -> str:
    tables = vbvr_table(results, extra["bounds"])
    return tables + ("\n" + official_bench_table(results, extra["official"]) if extra.get("official") else "")


def tables_of_summary(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The suite's Markdown tables again, from summary.json's ``benchmark`` entry (no data needed):
    what results.md shows, for the HTML report."""
    extra = summary.get("benchmark") or {}
    if "bounds" in extra:
        return _vbvr_tables(results, extra)
    if "aggregates" in extra:
        return summary_markdown(extra["aggregates"], protocol=extra.get("protocol", ""), strict=bool(extra.get("strict")))
    return ""


def _bench(bench_dir: Path, fmt: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A benchmark directory's config (summary.json) and benchmark results lines; BadInput if it is not one."""
    try:
        config = json.loads((bench_dir / "summary.json").read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError):
        raise BadInput(f"{bench_dir} has no summary.json; run collabvr bench --out {bench_dir} first") from None
    config["suite"] = unmasked(str(config.get("suite", "")), f"the suite in {bench_dir / 'summary.json'}")  # read again
    kind = config["suite"].partition(":")[0]
    if fmt is not None and kind != fmt:
        raise BadInput(f"{bench_dir} ran suite {config.get('suite')!r}; --format {fmt} exports a {fmt} suite's run")
    return config, [r for r in read_results(bench_dir / RESULTS) if r.get("sample")]


def export_run(bench_dir: str | Path, fmt: str, out: str | Path, *, runs: int | None = None) -> tuple[list[Path], str]:
    """Export a benchmark directory's final videos (and Gen-ViRe score files) in ``fmt``'s official
    layout: (the videos written, a note on what was left out). ``runs`` (Gen-ViRe): export runs
    0 .. runs-1 instead of the official five at most."""
    bench_dir, out = Path(bench_dir), Path(out)
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if runs is not None and (fmt != "genvire" or runs < 1):
        raise BadInput("--runs names how many Gen-ViRe run folders to export (a whole number >= 1); VBVR exports every run")
    config, results = _bench(bench_dir, fmt)
    if fmt == "vbvr":
        suite = parse_suite(config["suite"])
        return export_vbvr(bench_dir, results, out, suite.root), ""  # type: ignore[attr-defined]
    ran = int(config.get("runs", 1))
    read = official_runs(ran, runs)
    written = export_genvire(bench_dir, results, out, runs=read)
    extra, tables = benchmark_tables(bench_dir, parse_suite(config["suite"]), results, runs=ran, repeats=int(config.get("judge_repeats", 1)),
                                     strict=bool(config.get("strict", False)))
    (out / "genvire_summary.md").write_text(tables)
    note = f"runs {read}..{ran - 1} not exported (step4 reads the official five); pass --runs {ran} to export them" if ran > read else ""
    return written, note


def _beside(tree: Path, out: Path | None, suffix: str) -> Path:
    """Where a scorer writes: ``out``, by default a new folder beside the tree; never inside the tree."""
    out = (out or tree.parent / f"{tree.resolve().name}-{suffix}").expanduser()
    if out.resolve() == tree.resolve() or tree.resolve() in out.resolve().parents:
        raise BadInput(f"--out {out} is inside {tree}, the tree being scored; give a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def score_genvire(gen_dir: str | Path, *, strict: bool = False, runs: int = RUNS_OFFICIAL,
                  out: str | Path | None = None) -> tuple[list[dict[str, Any]], str, Path]:
    """Aggregate ``0_generated_videos/<model>`` (or every model under ``0_generated_videos``) as step4 does,
    reading run folders ``<model>_0 .. <model>_{runs-1}``; write step4's CSVs, ``genvire_scores.json``
    and ``genvire_summary.md`` to ``out`` (default: a folder beside the tree). (aggregates, tables, out)."""
    gen_dir = Path(gen_dir)
    if runs < 1:
        raise BadInput(f"--runs must be a whole number >= 1, got {runs}")
    models = model_dirs(gen_dir)
    aggs = [aggregate(read_scores(model_dir, strict=strict, runs=runs)) for model_dir in models]
    where = _beside(gen_dir, Path(out) if out else None, "step4")
    for agg in aggs:
        write_summary_csvs(agg, where)
    text = f"run folders _0 .. _{runs - 1}" + (" (step4's five)" if runs == RUNS_OFFICIAL else " (NOT step4's five)")
    table = summary_markdown(aggs, protocol=text, strict=strict)
    write_json(where / "genvire_scores.json", {"tree": str(gen_dir.resolve()), "runs": runs, "strict": strict, "aggregates": aggs})
    (where / "genvire_summary.md").write_text(table)
    return aggs, table, where


def score_vbvr(export_dir: str | Path, *, evalkit: str | Path, entry: str = "run_evaluation", gt_base: str | Path | None = None,
               python: str | None = None, out: str | Path | None = None,
               on_line: OnLine | None = None) -> tuple[dict[str, Any], str, Path]:
    """Run the user's VBVR-EvalKit clone's ``entry`` on every model folder of an export; write the kit's
    files, ``vbvr_official.json`` and ``vbvr_official.md`` to ``out`` (default: a folder beside the export).
    (scores, table, out)."""
    export_dir = Path(export_dir)
    check_entry(entry)
    base = gt_base_of(export_dir, Path(gt_base) if gt_base else None)
    kit = open_evalkit(evalkit, python=python, entry=entry)
    where = _beside(export_dir, Path(out) if out else None, entry)
    official = score_models(export_dir, kit, entry, base, where, on_line=on_line)
    table = official_markdown(official)
    write_json(where / "vbvr_official.json", official)
    (where / "vbvr_official.md").write_text(table)
    return official, table, where


def official_for_bench(bench_dir: Path, suite: Suite, results: list[dict[str, Any]], *, evalkit: str | Path,
                       entry: str = "run_evaluation", python: str | None = None,
                       on_line: OnLine | None = None) -> dict[str, Any]:
    """VBVR-EvalKit's scores of a VBVR bench's videos, and of its samples' floors and ceilings, by one entry
    point (written under ``bench_dir/official/``)."""
    if suite.kind != "vbvr":
        raise BadInput(f"--evalkit scores a VBVR-Bench run; {bench_dir} ran suite {suite.spec!r}")
    kit = open_evalkit(evalkit, python=python, entry=entry)
    keys = {r.get("sample") for r in results}
    rows = [row for row in suite.rows if row.key in keys]  # type: ignore[attr-defined]
    if not rows:
        raise BadInput(f"{bench_dir}: no finished VBVR episodes to score")
    return official_of_bench(Path(bench_dir), suite.root, rows, results, kit, entry, on_line=on_line)  # type: ignore[attr-defined]


def add_official(bench_dir: str | Path, *, evalkit: str | Path, entry: str = "run_evaluation", python: str | None = None,
                 on_line: OnLine | None = None) -> dict[str, Any]:
    """Score a finished VBVR bench with VBVR-EvalKit and keep the scores in its summary.json (what
    ``collabvr report --evalkit`` shows)."""
    bench_dir = Path(bench_dir)
    config, results = _bench(bench_dir)
    official = official_for_bench(bench_dir, parse_suite(config["suite"]), results, evalkit=evalkit, entry=entry,
                                  python=python, on_line=on_line)
    summary = json.loads((bench_dir / "summary.json").read_text())
    summary.setdefault("benchmark", {})["official"] = official
    write_json(bench_dir / "summary.json", summary)
    return official
