"""VBVR-Bench's official side of a bench: the export VBVR-EvalKit reads, and the kit's own scores of
an export or of a bench, with the floor and ceiling computed by the same entry point.

The export (``run_evaluation.py`` ``collect_videos``: ``\\d{5}\\.mp4`` under the split and task folders) is
``OUT/<method>/<split>/<task folder>/<5-digit id>.mp4``, run k > 0 of a method in ``OUT/<method>-run<k>``;
``OUT/collabvr_export.json`` records the benchmark directory (the kit's ``--gt_base``) and the videos.

The floor and ceiling of a bench's samples are two more model folders scored with the methods:
``floor-still`` (each sample's first frame held for as many frames, at the rate, as its ground truth)
and ``ceiling-groundtruth`` (``ground_truth.mp4`` itself). Rule-based scorers credit a video that does
nothing, so a method's official score means little without them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from collabvr.bench.suites.evalkit import (
    SPLIT_FOLDERS,
    WHAT,
    EvalKit,
    OnLine,
    read_results,
    run_entry,
    write_still,
)
from collabvr.bench.suites.vbvr import VBVRSample, normalized
from collabvr.errors import BadInput
from collabvr.rundir import FINAL

EXPORT_MANIFEST = "collabvr_export.json"
FLOOR, CEILING = "floor-still", "ceiling-groundtruth"
_VIDEO = re.compile(r"\d{5}\.mp4")


def model_name(r: dict[str, Any]) -> str:
    """The export folder of a results line: the method, or ``<method>-run<k>`` for its run k > 0."""
    return r["method"] if not r.get("run") else f"{r['method']}-run{r['run']}"


def export_vbvr(bench_dir: Path, results: list[dict[str, Any]], out: Path, gt_base: Path) -> list[Path]:
    """Copy each episode's final video to ``out/<model>/<split>/<task>/<id>.mp4``; record the benchmark
    directory and the videos in ``out/collabvr_export.json`` for ``collabvr score vbvr``."""
    written, videos = [], {}
    for r in results:
        video = bench_dir / r["run_dir"] / FINAL
        if not r.get("sample") or not video.is_file():
            continue
        dest = out / model_name(r) / r["family"] / r["difficulty"] / f"{str(r['sample']).rsplit('/', 1)[-1]}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, dest)
        written.append(dest)
        videos.setdefault(model_name(r), []).append(str(r["sample"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MANIFEST).write_text(json.dumps({"gt_base": str(gt_base), "videos": videos}, indent=1))
    return written


def write_bounds(rows: list[VBVRSample], out: Path) -> None:
    """The floor and ceiling model folders of these samples under ``out``."""
    for row in rows:
        write_still(row.first_frame, row.ground_truth, out / FLOOR / row.split / row.task / f"{row.id}.mp4")
        dest = out / CEILING / row.split / row.task / f"{row.id}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.ground_truth, dest)


def model_dirs(export_dir: Path) -> list[Path]:
    """``EXPORT/<model>`` itself (it holds the split folders), or every model folder under ``EXPORT``."""
    if not export_dir.is_dir():
        raise BadInput(f"{export_dir}: no such directory; expected an export (collabvr export BENCH --format vbvr --out DIR)")
    if any((export_dir / split).is_dir() for split in SPLIT_FOLDERS):
        return [export_dir]
    models = sorted(p for p in export_dir.iterdir() if p.is_dir() and any((p / s).is_dir() for s in SPLIT_FOLDERS))
    if not models:
        raise BadInput(f"{export_dir}: no model folders holding {' or '.join(SPLIT_FOLDERS)}; "
                       f"make them with collabvr export BENCH --format vbvr --out {export_dir}")
    return models


def exported(model_dir: Path) -> list[str]:
    """The videos of a model folder the kit should score, as split/task/id."""
    return sorted(f"{v.parent.parent.name}/{v.parent.name}/{v.stem}" for split in SPLIT_FOLDERS
                  for v in (model_dir / split).glob("*/*.mp4") if _VIDEO.fullmatch(v.name))


def gt_base_of(export_dir: Path, given: Path | None) -> Path:
    """The benchmark directory: ``--gt-base``, else the one the export recorded."""
    if given is not None:
        return given.expanduser()
    for folder in (export_dir, export_dir.parent):
        manifest = folder / EXPORT_MANIFEST
        if manifest.is_file():
            try:
                return Path(json.loads(manifest.read_text())["gt_base"])
            except (OSError, ValueError, KeyError) as exc:
                raise BadInput(f"{manifest}: unreadable ({exc}); pass --gt-base") from None
    raise BadInput(f"{export_dir}: no {EXPORT_MANIFEST} says where the benchmark is; pass --gt-base DATA_DIR")


def score_models(export_dir: Path, kit: EvalKit, entry: str, gt_base: Path, out: Path, *,
                 on_line: OnLine | None = None) -> dict[str, Any]:
    """Run the kit's ``entry`` on every model folder of an export, each into ``out/<model>/``; what it scored
    (:func:`~collabvr.bench.suites.evalkit.read_results`) beside what was exported, per model."""
    if not any((gt_base / split).is_dir() for split in SPLIT_FOLDERS):
        raise BadInput(f"--gt-base {gt_base}: not a VBVR-Bench download (no {' or '.join(SPLIT_FOLDERS)}); "
                       "give the directory of huggingface-cli download Video-Reason/VBVR-Bench-Data")
    models = {}
    for model_dir in model_dirs(export_dir):
        scored = read_results(entry, run_entry(kit, entry, model_dir, gt_base, out / model_dir.name, on_line=on_line))
        videos = exported(model_dir)
        models[model_dir.name] = {**scored, "exported": len(videos), "not_scored": sorted(set(videos) - set(scored["samples"]))}
    return {"entry": entry, "what": WHAT[entry], "commit": kit.commit, "label": kit.label(entry), "gt_base": str(gt_base),
            "models": models}


def official_of_bench(bench_dir: Path, gt_base: Path, rows: list[VBVRSample], results: list[dict[str, Any]], kit: EvalKit,
                      entry: str, *, on_line: OnLine | None = None) -> dict[str, Any]:
    """The kit's scores of a bench's videos and of its samples' floor and ceiling, all by one entry point,
    exported to and scored in ``bench_dir/official/``."""
    videos = bench_dir / "official" / "videos"
    shutil.rmtree(videos, ignore_errors=True)  # only this bench's current videos
    export_vbvr(bench_dir, results, videos, gt_base)
    write_bounds(rows, videos)
    return score_models(videos, kit, entry, gt_base, bench_dir / "official" / entry, on_line=on_line)


# -- tables ---------------------------------------------------------------------------------------------------


def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def official_markdown(official: dict[str, Any]) -> str:
    """Per model: the kit's own mean per task, per split and overall, with the videos it scored, scored 0
    on an exception, or left unscored."""
    lines = [f"## VBVR-Bench, official score: {official['label']}", "",
             "Means as the kit computed them (its results files under the output folder). `errors`: videos the kit "
             "scored 0 on an exception; `not scored`: exported videos it skipped (no evaluator for the task folder, "
             "or no ground truth).", "",
             "| model | split | task | n | score |", "|---|---|---|---|---|"]
    for model, m in official["models"].items():
        by_task: dict[str, list[float]] = {}
        for key, score in m["samples"].items():
            by_task.setdefault(key.rsplit("/", 1)[0], []).append(score)
        for task, scores in sorted(by_task.items()):
            split, name = task.split("/", 1)
            lines.append(f"| {model} | {split} | {name} | {len(scores)} | {_f(m['by_task'].get(name))} |")
        for split, (mean, n) in m["splits"].items():
            if n:
                lines.append(f"| {model} | {split} | (all) | {n} | {_f(mean)} |")
        lines.append(f"| {model} | overall | | {m['overall'][1]} | {_f(m['overall'][0])} |")
    lines += ["", "| model | exported | scored | errors | not scored |", "|---|---|---|---|---|"]
    for model, m in official["models"].items():
        missing = ", ".join(m["not_scored"][:5]) + (f" and {len(m['not_scored']) - 5} more" if len(m["not_scored"]) > 5 else "")
        lines.append(f"| {model} | {m['exported']} | {len(m['samples'])} | {len(m['errors'])} | {missing or 0} |")
    return "\n".join(lines) + "\n"


def official_bench_table(results: list[dict[str, Any]], official: dict[str, Any]) -> str:
    """Markdown: per task of a bench, the official floor, ceiling, each method's official score and its
    normalized score, all from one entry point."""
    models = official["models"]
    floor, ceiling = models.get(FLOOR, {}).get("samples", {}), models.get(CEILING, {}).get("samples", {})
    methods = list(dict.fromkeys(r["method"] for r in results))
    tasks = sorted({str(r["sample"]).rsplit("/", 1)[0] for r in results if r.get("sample")})
    lines = [f"## VBVR-Bench, official score: {official['label']}", "",
             "floor: each sample's first frame held as long as its ground truth; ceiling: ground_truth.mp4; both scored by "
             "the same entry point. norm = (score - floor) / (ceiling - floor).", "",
             "| split | task | floor | ceiling | " + " | ".join(f"{m} | {m} norm" for m in methods) + " |",
             "|---|---|---|---|" + "---|---|" * len(methods)]
    errors = sum(len(m["errors"]) for m in models.values())
    unscored = sum(len(m["not_scored"]) for m in models.values())
    for task in tasks:
        keys = sorted({str(r["sample"]) for r in results if str(r.get("sample", "")).startswith(task + "/")})
        lo = _mean([floor[k] for k in keys if k in floor])
        hi = _mean([ceiling[k] for k in keys if k in ceiling])
        cells = []
        for m in methods:
            scores = [models.get(model_name(r), {}).get("samples", {}).get(str(r["sample"])) for r in results
                      if r["method"] == m and str(r.get("sample", "")).startswith(task + "/")]
            mean = _mean([s for s in scores if s is not None])
            norm = None if mean is None or lo is None or hi is None else normalized(mean, lo, hi)
            cells += [_f(mean), _f(norm)]
        split, name = task.split("/", 1)
        lines.append(f"| {split} | {name} | {_f(lo)} | {_f(hi)} | " + " | ".join(cells) + " |")
    if errors or unscored:
        lines += ["", f"**{errors} video(s) the kit scored 0 on an exception, {unscored} it did not score** "
                      f"(see the results files under official/{official['entry']}/)."]
    return "\n".join(lines) + "\n"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
