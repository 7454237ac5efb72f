"""VBVR-EvalKit, the official VBVR-Bench scorer, run for the user: their clone, unchanged, in a subprocess.

Read from github.com/Video-Reason/VBVR-EvalKit at commit 275472f (README.md, run_evaluation.py,
evaluate.py, vbvr_bench/__init__.py, vbvr_bench/evaluators/base_evaluator.py). The kit has two entry
points, and they give different numbers on the same videos:

* ``run_evaluation.py --model_path M --gt_base DATA --output_dir OUT`` (the README's "recommended"
  option): each video's **task-specific score** only (``evaluate(..., task_specific_only=True)``); it
  reads ``<split>/<task>/<5 digits>.mp4`` of the task folders it has an evaluator for (others are
  skipped with a warning) and writes ``OUT/<M's name>_vbvr_results.json``: ``summary.{In_Domain,
  Out_of_Domain, overall}.{mean_score, num_samples, by_task}`` and ``samples[]`` (``video_file,
  task_name, folder, score, error``);
* ``evaluate.py --videos_path M --gt_path DATA --output_path OUT --name NAME``: the **weighted score**
  (0.15 first-frame consistency, 0.35 final-frame accuracy, 0.15 temporal smoothness, 0.10 visual
  quality, 0.25 task-specific); every ``.mp4`` of every task folder; writes
  ``OUT/NAME_eval_results.json``: ``{In_Domain, Out_of_Domain}.{mean_score, num_videos, by_task.<task>.
  mean_score}``, ``overall.mean_score`` and ``detailed[]`` (``video_path, task_name, video_idx, score``).

Both catch a video's exception and score it 0 with an ``error``: we count those, and the videos the kit
did not score at all, beside every score.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from collabvr.errors import BadInput, redact
from collabvr.media import AV_ERRORS, Image, MediaError, Video

ENTRIES = ("run_evaluation", "evaluate")
WHAT = {"run_evaluation": "task-specific score", "evaluate": "weighted score"}
GET = "get it with: git clone https://github.com/Video-Reason/VBVR-EvalKit"
SPLIT_FOLDERS = {"In-Domain_50": "In_Domain", "Out-of-Domain_50": "Out_of_Domain"}
TAIL = 3  # lines of a failed run quoted in the error
OnLine = Callable[[str, bool], None]  # the kit's output as it comes: (text, transient: a progress bar's redraw)


@dataclass(frozen=True)
class EvalKit:
    """A checked clone of VBVR-EvalKit, the interpreter that runs it, and the commit it is at."""

    root: Path
    python: str
    commit: str

    def label(self, entry: str) -> str:
        return f"VBVR-EvalKit {entry}.py ({WHAT[entry]}), commit {self.commit}"


def check_entry(entry: str) -> str:
    if entry not in ENTRIES:
        raise BadInput(f"--entry must be one of {', '.join(ENTRIES)}, got {entry!r}")
    return entry


def open_evalkit(root: str | Path, *, python: str | None = None, entry: str = "run_evaluation") -> EvalKit:
    """The clone at ``root`` checked for the entry point and its package, and ``python`` (default: this
    interpreter) checked for its requirements, before any video is scored. BadInput naming the fix."""
    check_entry(entry)
    root = Path(root).expanduser().resolve()
    missing = [name for name in (f"{entry}.py", "vbvr_bench/__init__.py", "vbvr_bench/evaluators/__init__.py")
               if not (root / name).is_file()]
    if not root.is_dir() or missing:
        what = "no such directory" if not root.is_dir() else f"no {', '.join(missing)}"
        raise BadInput(f"--evalkit {root}: not a VBVR-EvalKit clone ({what}); {GET}")
    python = python or sys.executable
    modules = "tqdm, vbvr_bench, vbvr_bench.evaluators" if entry == "run_evaluation" else "vbvr_bench, vbvr_bench.evaluators"
    probe = f"import sys; sys.path.insert(0, {str(root)!r}); import {modules}"
    try:
        proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300, cwd=root,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BadInput(f"--python {python}: cannot run it ({exc}); give the interpreter that has VBVR-EvalKit's requirements") from None
    if proc.returncode != 0:
        last = _last_lines(proc.stderr or proc.stdout, 1)
        raise BadInput(f"{python} cannot import VBVR-EvalKit ({last}); install its requirements with "
                       f"{python} -m pip install -r {root / 'requirements.txt'}, or pass --python with an interpreter that has them")
    return EvalKit(root, python, commit_of(root))


def commit_of(root: Path) -> str:
    """The clone's commit (short), marked ``+changes`` when its tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" +changes" if dirty.stdout.strip() else "")


def _last_lines(text: str, n: int) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return " | ".join(lines[-n:]) if lines else "no output"


def run_entry(kit: EvalKit, entry: str, model_dir: Path, gt_base: Path, out_dir: Path, *,
              on_line: OnLine | None = None) -> Path:
    """Run one entry point on one model folder (``<split>/<task>/<id>.mp4``); its results file, written
    under ``out_dir`` with the kit's whole output in ``out_dir/evalkit-<entry>.log``. ``on_line(text,
    transient)`` sees the output as it comes (transient: a progress bar's redraw). BadInput, with the
    last lines, when it fails or writes no results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir, gt_base, out_dir = model_dir.resolve(), gt_base.resolve(), out_dir.resolve()  # the kit runs in out_dir
    name = model_dir.name
    if entry == "run_evaluation":
        cmd = [kit.python, str(kit.root / "run_evaluation.py"), "--model_path", str(model_dir), "--gt_base", str(gt_base),
               "--output_dir", str(out_dir)]
        result = out_dir / f"{name}_vbvr_results.json"
    else:
        cmd = [kit.python, str(kit.root / "evaluate.py"), "--videos_path", str(model_dir), "--gt_path", str(gt_base),
               "--output_path", str(out_dir), "--name", name]
        result = out_dir / f"{name}_eval_results.json"
    result.unlink(missing_ok=True)  # a stale file from an earlier run must not pass for this one's
    log = out_dir / f"evalkit-{entry}.log"
    tail: collections.deque[str] = collections.deque(maxlen=50)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        try:
            proc = subprocess.Popen(cmd, cwd=out_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            raise BadInput(f"--python {kit.python}: cannot run it ({exc})") from None
        assert proc.stdout is not None
        for text, transient in _segments(proc.stdout, sink):
            tail.append(text + "\n")
            if on_line is not None:
                on_line(text, transient)
        code = proc.wait()
    if code != 0:
        raise BadInput(redact(f"{kit.label(entry)} failed (exit {code}) on {model_dir}: {_last_lines(''.join(tail), TAIL)} "
                              f"(whole output: {log})"))
    if not result.is_file():
        raise BadInput(redact(f"{kit.label(entry)} wrote no results for {model_dir} (it found no video it could score?): "
                              f"{_last_lines(''.join(tail), TAIL)} (whole output: {log})"))
    return result


def _segments(stream: Any, sink: Any) -> Iterator[tuple[str, bool]]:
    """The output as it comes, copied to ``sink``: (text, transient) per piece ended by a newline, or by a
    carriage return (a progress bar redrawing its line: transient)."""
    pending = b""
    while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
        sink.write(chunk)
        pending += chunk
        while (cut := min((i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0), default=-1)) >= 0:
            piece, end, pending = pending[:cut], pending[cut:cut + 1], pending[cut + 1:]
            if piece.strip():
                yield piece.decode(errors="replace").rstrip(), end == b"\r"
    if pending.strip():
        yield pending.decode(errors="replace").rstrip(), False


def _sample_of(path: str) -> tuple[str, str, str]:
    """(split folder, task, 5-digit id) of a video path ``.../<split>/<task>/<id>.mp4``."""
    parts = Path(path).parts
    return parts[-3], parts[-2], Path(parts[-1]).stem


def read_results(entry: str, path: Path) -> dict[str, Any]:
    """An entry point's results file as: ``samples`` {split/task/id: score}, ``errors`` (the keys the kit
    scored 0 on an exception), and the kit's own means ``by_task`` {task folder: mean}, ``splits``
    {In_Domain, Out_of_Domain: (mean, n)} and ``overall`` (mean, n)."""
    try:
        data = json.loads(path.read_text())
        if entry == "run_evaluation":
            rows = [((s["folder"], s["task_name"], Path(s["video_file"]).stem), s) for s in data["samples"]]
            summary = data["summary"]
            splits = {k: (summary[k]["mean_score"], summary[k]["num_samples"]) for k in ("In_Domain", "Out_of_Domain")}
            overall = (summary["overall"]["mean_score"], summary["overall"]["num_samples"])
            by_task = {t: v for k in ("In_Domain", "Out_of_Domain") for t, v in summary[k]["by_task"].items()}
        else:
            rows = [(_sample_of(s["video_path"]), s) for s in data["detailed"]]
            splits = {k: (data[k]["mean_score"], data[k]["num_videos"]) for k in ("In_Domain", "Out_of_Domain")}
            overall = (data["overall"]["mean_score"], data["overall"]["num_videos"])
            by_task = {t: v["mean_score"] for k in ("In_Domain", "Out_of_Domain") for t, v in data[k]["by_task"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{path}: not the results file VBVR-EvalKit {entry}.py writes ({type(exc).__name__}: {exc})") from None
    samples = {"/".join(key): float(row["score"]) for key, row in rows}
    return {"samples": samples, "errors": sorted("/".join(key) for key, row in rows if row.get("error")),
            "by_task": {task: float(v) for task, v in by_task.items()},
            "splits": {k: [float(m), int(n)] for k, (m, n) in splits.items()}, "overall": [float(overall[0]), int(overall[1])]}


def frame_count(path: Path) -> int:
    """The frames of a video, counted from its packets (nothing decoded)."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(video=0) if packet.size)
    except AV_ERRORS as exc:
        raise BadInput(f"{path}: unreadable video ({type(exc).__name__}: {exc})") from None


def write_still(first_frame: Path, like: Path, dest: Path) -> None:
    """The floor's video: ``first_frame`` held for as many frames, at the frame rate, as the video ``like``
    (the sample's ground truth), so only what the video shows differs from the ceiling's."""
    frame = Image.open(first_frame).array
    frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]  # yuv420p needs even sides
    try:
        fps = Video.open(like).fps
        video = Video(frames=np.broadcast_to(frame, (frame_count(like), *frame.shape)), fps=fps)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(video.mp4)
    except MediaError as exc:
        raise BadInput(f"{like}: cannot make the still video of this sample ({exc})") from None
