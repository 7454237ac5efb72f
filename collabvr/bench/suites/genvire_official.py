"""Gen-ViRe's official side of a bench: the generation tree its scripts read, and their aggregation as
code/step4_generate_summary.py does it.

Read from github.com/L-CodingSpace/GVR (commit dd532d1), paths in that repository:

* tree (README.md, code/step3_batch_eval.py): ``0_generated_videos/<model>/<model>_<run>/<main_category>/
  <subtask>/<id>.mp4`` and the judge's ``<id>_score.json`` beside each video; a run folder is one
  generated video per sample, and step3 and step4 read ``<model>_0`` .. ``<model>_4`` only;
* a score file (e.g. c1_abstract_reasoning/symmetry/symmetry_eval.py) is the judge's answer plus
  ``normalized_score, total_score, criterion_count`` and ``task_id``, the bare sample id the script was
  given (``--task_id 01``);
* batch mode (the leaderboard): per dimension, the mean ``normalized_score`` (0 if absent) of every
  score file of its subtasks and runs; ``Avg.`` the mean over the dimensions present; a dimension
  with no score file prints 0.000; ``#Videos`` counts score files;
* dimension mode: per dimension, the mean of its subtask means, with one column per subtask.

A video whose judge failed has no score file and silently leaves every mean. We count these
``dropped`` against the videos expected, and ``strict`` scores them 0 (and reads a criterion's score
key in any case, fixing maze_eval.py's quirk).

Judge repeats (the paper's protocol, not the official one: one video judged J times) stay in the
video's one score file: ``repeats`` holds each call's answer, ``normalized_score`` is the mean over the
calls that answered (strict: over all calls, a failed one scoring 0).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collabvr.bench.suites.genvire import RUNS_OFFICIAL, official_ids
from collabvr.errors import BadInput
from collabvr.rundir import FINAL, TRACE
from collabvr.scoring import gvr_video_score

# code/step4_generate_summary.py, batch CSV columns
COLUMNS = [("abstract_reasoning", "Abstract"), ("algorithmic_logical_reasoning", "Algorithmic & Logical"),
           ("analogy_reasoning", "Analogy"), ("perceptual_reasoning", "Perceptual"),
           ("planning_reasoning", "Planning"), ("spatial_reasoning", "Spatial")]
EXPECTED = "collabvr_expected.json"  # beside a model's run folders: the videos our export expects
COMBINED = "mean normalized_score of the judge calls that answered (the paper's protocol: one video judged J times)"


def video_path(gen_dir: Path, model: str, run: int, main_category: str, subtask: str, sid: str) -> Path:
    """``<gen_dir>/<model>/<model>_<run>/<main_category>/<subtask>/<id>.mp4`` (gen_dir: ``0_generated_videos``)."""
    return gen_dir / model / f"{model}_{run}" / main_category / subtask / f"{sid}.mp4"


def video_score_file(repeats: list[dict[str, Any] | None], sid: str) -> dict[str, Any] | None:
    """The ``<id>_score.json`` of one judged video from its judge calls (``judge_video``'s ``repeats``):
    the official file itself for one call; for several, their mean with every call's answer inside.
    None when no call answered: the official scripts then leave no file."""
    answered = [r["score_file"] for r in repeats if r and r.get("status") == "ok" and r.get("score_file")]
    if not answered:
        return None
    if len(repeats) == 1:
        return {**answered[0], "task_id": sid}
    mean = lambda key: sum(float(a.get(key, 0)) for a in answered) / len(answered)  # noqa: E731
    out: dict[str, Any] = {"normalized_score": round(mean("normalized_score"), 4), "total_score": mean("total_score"),
                           "criterion_count": answered[0].get("criterion_count", 0), "task_id": sid,
                           "judge_calls": len(repeats), "judge_answered": len(answered), "combined": COMBINED,
                           "repeats": [(r or {}).get("score_file") or {"status": "failed", "error": (r or {}).get("error")}
                                       for r in repeats]}
    if "max_score" in answered[0]:
        out["max_score"] = answered[0]["max_score"]
    return out


def file_score(score_file: dict[str, Any], subtask: str, *, strict: bool) -> float:
    """One video's score: step4's ``normalized_score`` (0 if absent); strict, rescored from the criteria
    with the score key read in any case, a failed judge repeat scoring 0."""
    if not strict:
        return float(score_file.get("normalized_score", 0))
    answers = score_file["repeats"] if isinstance(score_file.get("repeats"), list) else [score_file]
    scores = [gvr_video_score(a, subtask, a.get("max_score"), any_case=True)[0] if a.get("status") != "failed" else 0.0
              for a in answers]
    return sum(scores) / len(scores)


@dataclass
class Scores:
    """What a generation tree holds: per (dimension, subtask), the video scores and the dropped count."""

    model: str
    strict: bool = False
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    videos: int = 0  # expected videos
    score_files: int = 0
    run_folders: list[str] = field(default_factory=list)

    def add(self, dim: str, sub: str, score_file: dict[str, Any] | None) -> None:
        """One expected video: its score file, or None when its judge failed (dropped; 0 when strict)."""
        bucket = self.scores.setdefault(dim, {}).setdefault(sub, [])
        drops = self.dropped.setdefault(dim, {})
        drops.setdefault(sub, 0)
        self.videos += 1
        if score_file is None:
            drops[sub] += 1
            if self.strict:
                bucket.append(0.0)
            return
        self.score_files += 1
        bucket.append(file_score(score_file, sub, strict=self.strict))


def _expected(model_dir: Path, run_dirs: list[Path]) -> dict[tuple[str, str, str], set[str]]:
    """Per (run folder, dimension, subtask): the ids expected. Our export's manifest when present, else
    the official ids of every Gen-ViRe subtask found in any run folder, in every run folder found (the
    ids present are added by the caller)."""
    manifest = model_dir / EXPECTED
    names = {p.name for p in run_dirs}
    expected: dict[tuple[str, str, str], set[str]] = {}
    if manifest.is_file():
        try:
            videos = json.loads(manifest.read_text())["videos"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{manifest}: unreadable ({exc}); rewrite it with collabvr export or delete it") from None
        for run, dim, sub, sid in videos:
            if f"{model_dir.name}_{run}" in names:
                expected.setdefault((f"{model_dir.name}_{run}", dim, sub), set()).add(str(sid))
        return expected
    subtasks = {(p.parent.name, p.name) for run_dir in run_dirs for p in run_dir.glob("*/*") if p.is_dir()}
    for run_dir in run_dirs:
        for dim, sub in subtasks:
            expected[(run_dir.name, dim, sub)] = set(official_ids(sub) or ())
    return expected


def read_scores(model_dir: str | Path, *, strict: bool = False, runs: int = RUNS_OFFICIAL) -> Scores:
    """The ``<id>_score.json`` files of ``0_generated_videos/<model>`` in run folders ``<model>_0`` ..
    ``<model>_{runs-1}`` (step4 reads five), each read as step4 does; every expected video without one
    counted as dropped (0 when ``strict``)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise BadInput(f"{model_dir}: no such directory; expected 0_generated_videos/<model>")
    model = model_dir.name
    run_dirs = [model_dir / f"{model}_{i}" for i in range(runs) if (model_dir / f"{model}_{i}").is_dir()]
    if not run_dirs:
        raise BadInput(f"{model_dir}: no run folders {model}_0 .. {model}_{runs - 1}")
    result = Scores(model, strict, run_folders=[p.name for p in run_dirs])
    expected = _expected(model_dir, run_dirs)
    for run_dir in run_dirs:
        for sub_dir in run_dir.glob("*/*"):
            if sub_dir.is_dir():
                present = {p.name[: -len("_score.json")] for p in sub_dir.glob("*_score.json")} | {p.stem for p in sub_dir.glob("*.mp4")}
                expected.setdefault((run_dir.name, sub_dir.parent.name, sub_dir.name), set()).update(present)
    for (run, dim, sub), sids in sorted(expected.items()):
        for sid in sorted(sids):
            path = model_dir / run / dim / sub / f"{sid}_score.json"
            data = None
            if path.is_file():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise BadInput(f"{path}: not valid JSON ({exc}); expected an official <id>_score.json") from None
            result.add(dim, sub, data)
    return result


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(scores: Scores) -> dict[str, Any]:
    """step4's two aggregations: ``pooled`` per dimension (batch mode) with ``avg_pooled`` over the
    dimensions present (its ``Avg.``), and ``subtask_mean`` per dimension (dimension mode's ``Avg.``)
    with the subtask means; the videos expected, the score files and the dropped count beside."""
    dims: dict[str, Any] = {}
    for dim, subs in scores.scores.items():
        sub_means = {s: _mean(vs) for s, vs in sorted(subs.items()) if vs}
        dims[dim] = {"pooled": _mean([v for vs in subs.values() for v in vs]), "subtask_mean": _mean(list(sub_means.values())),
                     "subtasks": sub_means, "n": sum(len(vs) for vs in subs.values()),
                     "expected": sum(len(vs) for vs in subs.values()) + (0 if scores.strict else sum(scores.dropped.get(dim, {}).values())),
                     "dropped": sum(scores.dropped.get(dim, {}).values())}
    present = [d["pooled"] for d in dims.values() if d["pooled"] is not None]
    return {"model": scores.model, "run_folders": scores.run_folders, "videos": scores.videos, "score_files": scores.score_files,
            "dropped": sum(d["dropped"] for d in dims.values()), "strict": scores.strict,
            "avg_pooled": _mean(present) if present else None, "dimensions": dims}


def _f(x: float | None) -> str:
    """step4's number format; a missing value is 0.000, as in its CSV."""
    return f"{x or 0:.3f}"


def batch_row(agg: dict[str, Any]) -> list[str]:
    """One row of step4's batch CSV: Methods, #Videos, Avg., then the six dimensions."""
    count = sum(d["n"] for d in agg["dimensions"].values())
    return [agg["model"], str(count), _f(agg["avg_pooled"]),
            *[_f((agg["dimensions"].get(d) or {}).get("pooled")) for d, _ in COLUMNS]]


def summary_markdown(aggs: list[dict[str, Any]], *, protocol: str, strict: bool) -> str:
    """step4's tables as it prints them (batch, then dimension mode per dimension), then the dropped
    judgements, which step4 does not show."""
    mode = "strict: a failed judge call scores 0, score keys read in any case" if strict else \
        "official: a failed judge call leaves its video out of every mean, as step4 does (counted below)"
    lines = [f"## Gen-ViRe ({protocol}; {mode})", "",
             "### Batch mode (code/step4_generate_summary.py --mode batch, the leaderboard)", "",
             "| Methods | #Videos | Avg. | " + " | ".join(c for _, c in COLUMNS) + " |", "|---|---|---|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(batch_row(a)) + " |" for a in aggs]
    dims = [d for d, _ in COLUMNS if any(d in a["dimensions"] for a in aggs)]
    dims += sorted({d for a in aggs for d in a["dimensions"]} - set(dims))
    lines += ["", "### Dimension mode (step4 --mode dimension: the mean of the subtask means)"]
    for dim in dims:
        subs = sorted({s for a in aggs for s in (a["dimensions"].get(dim) or {}).get("subtasks", {})})
        lines += ["", f"#### {dim}", "", "| Methods | #Videos | Avg. | " + " | ".join(subs) + " |", "|---|---|---|" + "---|" * len(subs)]
        for a in aggs:
            d = a["dimensions"].get(dim)
            if d is not None:
                cells = [_f(d["subtasks"].get(s)) if s in d["subtasks"] else "" for s in subs]
                lines.append(f"| {a['model']} | {d['n']} | {_f(d['subtask_mean'])} | " + " | ".join(cells) + " |")
    lines += ["", "### Judgements dropped (no score file: the judge failed, or the episode did)", "",
              "| Methods | run folders | videos expected | score files | dropped | " + " | ".join(c for _, c in COLUMNS) + " |",
              "|---|---|---|---|---|" + "---|" * len(COLUMNS)]
    for a in aggs:
        cells = ["" if a["dimensions"].get(d) is None else str(a["dimensions"][d]["dropped"]) for d, _ in COLUMNS]
        folders = ", ".join(a.get("run_folders") or []) or "-"
        lines.append(f"| {a['model']} | {folders} | {a['videos']} | {a['score_files']} | {a['dropped']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary_csvs(agg: dict[str, Any], out_dir: Path) -> list[Path]:
    """step4's CSVs of one model: ``<model>_summary.csv`` (batch) and ``<model>_<dimension>_summary.csv``
    (dimension mode, one per dimension present), in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = agg["model"]
    written = [out_dir / f"{model}_summary.csv"]
    with open(written[0], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Methods", "#Videos", "Avg.", *[c for _, c in COLUMNS]])
        writer.writerow(batch_row(agg))
    for dim, d in agg["dimensions"].items():
        path = out_dir / f"{model}_{dim}_summary.csv"
        subs = sorted(d["subtasks"])
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["Methods", "#Videos", "Avg.", *subs])
            writer.writerow([model, d["n"], _f(d["subtask_mean"]), *[_f(d["subtasks"][s]) for s in subs]])
        written.append(path)
    return written



# -- a bench's videos and judgements as the official tree ------------------------------------------------------


def protocol(runs: int, repeats: int) -> str:
    """What a table was made from, in words: the runs read and how each video was judged."""
    videos = f"{runs} run(s), one generated video each" + (" (the official five)" if runs == RUNS_OFFICIAL else "")
    if repeats > 1:
        return f"{videos}; each video judged {repeats} times and averaged (the paper's protocol, NOT the official one)"
    return f"{videos}; one judge call per video"


def _judged(bench_dir: Path, r: dict[str, Any]) -> list[dict[str, Any] | None]:
    """An episode's judge calls (its trace's ``score.repeats``); none when it has no trace."""
    try:
        score = json.loads((bench_dir / r["run_dir"] / TRACE).read_text()).get("score") or {}
    except (OSError, ValueError):
        return []
    return list(score.get("repeats") or [])


def videos(bench_dir: Path, results: list[dict[str, Any]], runs: int) -> list[tuple[str, int, str, str, str, Path, dict[str, Any] | None]]:
    """Per generated video of runs 0 .. runs-1: (method, run, dimension, subtask, id, final video, its score
    file or None when no judge call answered). One video per episode, whatever the judge repeats."""
    out = []
    for r in sorted((r for r in results if r.get("sample")), key=lambda r: (r["method"], r["sample"], r.get("run", 0))):
        run = int(r.get("run") or 0)
        if run >= runs:
            continue
        sid = str(r["sample"]).rsplit("/", 1)[-1]
        out.append((r["method"], run, r["family"], r["difficulty"], sid, bench_dir / r["run_dir"] / FINAL,
                    video_score_file(_judged(bench_dir, r), sid)))
    return out


def bench_aggregates(bench_dir: Path, results: list[dict[str, Any]], *, runs: int, strict: bool) -> list[dict[str, Any]]:
    """step4's aggregation of a bench's episodes, one per method, over runs 0 .. runs-1: every episode is
    an expected video, and one without a score file (a failed judge or episode) is dropped."""
    scores: dict[str, Scores] = {}
    for method, run, dim, sub, _sid, _video, score_file in videos(bench_dir, results, runs):
        entry = scores.setdefault(method, Scores(method, strict))
        if f"{method}_{run}" not in entry.run_folders:
            entry.run_folders.append(f"{method}_{run}")
        entry.add(dim, sub, score_file)
    for entry in scores.values():
        entry.run_folders.sort(key=lambda name: int(name.rsplit("_", 1)[1]))
    return [aggregate(s) for s in scores.values()]


def export_genvire(bench_dir: Path, results: list[dict[str, Any]], out: Path, *, runs: int) -> list[Path]:
    """Write ``out/0_generated_videos/<method>/<method>_<run>/<dim>/<subtask>/<id>.mp4`` with its
    ``<id>_score.json`` for runs 0 .. runs-1, and per method the videos expected (``collabvr_expected.json``),
    so a failed judgement stays visible to ``collabvr score genvire``."""
    gen = out / "0_generated_videos"
    written: list[Path] = []
    expected: dict[str, list[list[Any]]] = {}
    for method, run, dim, sub, sid, video, score_file in videos(bench_dir, results, runs):
        expected.setdefault(method, []).append([run, dim, sub, sid])
        if not video.is_file():
            continue
        dest = video_path(gen, method, run, dim, sub, sid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, dest)
        written.append(dest)
        if score_file is not None:
            (dest.parent / f"{sid}_score.json").write_text(json.dumps(score_file, indent=2, ensure_ascii=False), encoding="utf-8")
    for method, items in expected.items():
        (gen / method).mkdir(parents=True, exist_ok=True)
        (gen / method / EXPECTED).write_text(json.dumps({"runs": runs, "videos": items}, indent=1))
    return written


def model_dirs(gen_dir: Path) -> list[Path]:
    """``0_generated_videos/<model>`` itself, or every model folder under ``0_generated_videos``."""
    if not gen_dir.is_dir():
        raise BadInput(f"{gen_dir}: no such directory; expected 0_generated_videos/<model>")
    if any(p.is_dir() and p.name.startswith(f"{gen_dir.name}_") for p in gen_dir.iterdir()):
        return [gen_dir]
    models = sorted(p for p in gen_dir.iterdir() if p.is_dir() and any(q.is_dir() and q.name.startswith(f"{p.name}_") for q in p.iterdir()))
    if not models:
        raise BadInput(f"{gen_dir}: no model folders with run folders <model>_0 ..; expected 0_generated_videos or 0_generated_videos/<model>")
    return models
