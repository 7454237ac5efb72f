"""VBVR-Bench: the loader (``--suite vbvr:DIR[:SPLIT[/TASK]]``), the export layout the official
VBVR-EvalKit reads, the first-order scorer's floors and ceilings, and the sim suite in its layout.

The layout (VBVR-EvalKit README.md, "Download Ground Truth Data"; ``run_evaluation.py``
``find_gt_info``)::

    DIR/VBVR-Bench.json                                   optional index: a JSON list
    DIR/<In-Domain_50|Out-of-Domain_50>/<task folder>/<5-digit id>/
        first_frame.png  final_frame.png  ground_truth.mp4  prompt.txt

Index entries hold ``id, prompt, first_image`` (base64 PNG) and the paths ``first_frame_path,
final_frame_path, prompt_path, ground_truth_video_path``, relative to DIR; split, task folder and
sample id are read from the path components, as the official readers do. Without the index the
folders are scanned. Anything missing or malformed fails once, naming the file and what was expected.

The export for the official kit (``run_evaluation.py`` ``collect_videos``: ``\\d{5}\\.mp4`` under the
split and task folders) is ``OUT/<method>/<split>/<task folder>/<5-digit id>.mp4``; then
``python run_evaluation.py --model_path OUT/<method> --gt_base DIR``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from collabvr.backends.sim.families import FAMILIES
from collabvr.bench.suites import Sample, first_per_group
from collabvr.errors import BadInput
from collabvr.media import AV_ERRORS, Image, MediaError, Video
from collabvr.scoring import first_order_score
from collabvr.task import Task

SPLITS = ("In-Domain_50", "Out-of-Domain_50")
INDEX = "VBVR-Bench.json"
FILES = ("first_frame.png", "final_frame.png", "ground_truth.mp4", "prompt.txt")
GET = ("get it with: huggingface-cli download Video-Reason/VBVR-Bench-Data --repo-type dataset --local-dir DIR "
       "(docs/benchmarks.md)")
_ID = re.compile(r"\d{5}")
_SIM_TASK = re.compile(r"sim-(?P<family>[a-z_]+)-(?P<difficulty>easy|medium|hard)")
EPSILON = 0.02  # the ground truth scores at least 1 - EPSILON on the first-order scorer (video compression)


@dataclass(frozen=True)
class VBVRSample:
    split: str
    task: str
    id: str
    first_frame: Path
    final_frame: Path
    ground_truth: Path
    prompt: str

    @property
    def key(self) -> str:
        return f"{self.split}/{self.task}/{self.id}"


def _check_video(path: Path) -> None:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput(f"{path}: expected an MP4 with a video stream, found none")
    except AV_ERRORS as exc:
        raise BadInput(f"{path}: unreadable video, expected an MP4 ({type(exc).__name__}: {exc})") from None


def _check_image(path: Path) -> None:
    try:
        Image.open(path)
    except MediaError as exc:
        raise BadInput(f"{path}: unreadable image, expected a PNG ({exc})") from None


def _parts(root: Path, rel: str, what: str, entry: int) -> tuple[str, str, str]:
    parts = Path(rel).parts
    if len(parts) < 4 or parts[-4] not in SPLITS or not _ID.fullmatch(parts[-2]):
        raise BadInput(f"{root / INDEX}: entry {entry}: {what} {rel!r} is not <split>/<task folder>/<5-digit id>/<file> "
                       f"with split one of {', '.join(SPLITS)}")
    return parts[-4], parts[-3], parts[-2]


def _from_index(root: Path) -> list[VBVRSample]:
    path = root / INDEX
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: not a readable JSON file ({exc}); expected a JSON list of samples. {GET}") from None
    if not isinstance(entries, list):
        raise BadInput(f"{path}: expected a JSON list of samples, got a {type(entries).__name__}")
    samples = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: entry {i} is not an object")
        missing_keys = [k for k in ("first_frame_path", "final_frame_path", "ground_truth_video_path") if not entry.get(k)]
        if missing_keys:
            raise BadInput(f"{path}: entry {i} ({entry.get('id', '?')}) lacks {', '.join(missing_keys)}")
        split, task, sid = _parts(root, entry["first_frame_path"], "first_frame_path", i)
        files = {k: root / entry[k] for k in ("first_frame_path", "final_frame_path", "ground_truth_video_path")}
        for key, file in files.items():
            if not file.is_file():
                raise BadInput(f"{file}: missing; the index {path.name} entry {i} ({split}/{task}/{sid}) lists it as {key}. {GET}")
        prompt = entry.get("prompt")
        if not prompt and entry.get("prompt_path"):
            prompt_file = root / entry["prompt_path"]
            if not prompt_file.is_file():
                raise BadInput(f"{prompt_file}: missing; the index entry {i} lists it as prompt_path")
            prompt = prompt_file.read_text(encoding="utf-8")
        if not prompt or not str(prompt).strip():
            raise BadInput(f"{path}: entry {i} ({split}/{task}/{sid}) has no prompt (expected 'prompt' or 'prompt_path')")
        if entry.get("first_image"):  # base64 PNG, with or without a data: prefix; must at least decode
            data = str(entry["first_image"]).split(",", 1)[-1] if str(entry["first_image"]).startswith("data:") else entry["first_image"]
            try:
                base64.b64decode(data, validate=True)
            except ValueError:
                raise BadInput(f"{path}: entry {i} ({split}/{task}/{sid}): first_image is not base64") from None
        samples.append(VBVRSample(split, task, sid, files["first_frame_path"], files["final_frame_path"],
                                  files["ground_truth_video_path"], str(prompt).strip()))
    listed = {(s.split, s.task) for s in samples}
    for split in SPLITS:
        for folder in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            if (split, folder.name) not in listed:
                raise BadInput(f"{folder}: task folder not listed in {path}; re-download the benchmark or remove the folder")
    return samples


def _scan(root: Path) -> list[VBVRSample]:
    samples = []
    for split in SPLITS:
        for task in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            for sample in sorted(p for p in task.iterdir() if p.is_dir()):
                if not _ID.fullmatch(sample.name):
                    raise BadInput(f"{sample}: expected a 5-digit sample folder (00000..99999)")
                for name in FILES:
                    if not (sample / name).is_file():
                        raise BadInput(f"{sample / name}: missing; every sample folder needs {', '.join(FILES)}. {GET}")
                samples.append(VBVRSample(split, task.name, sample.name, sample / FILES[0], sample / FILES[1],
                                          sample / FILES[2], (sample / "prompt.txt").read_text(encoding="utf-8").strip()))
    return samples


def load_vbvr(root: str | Path) -> list[VBVRSample]:
    """Every sample under ``root``, checked: the index when present, else the folders."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BadInput(f"{root}: no such directory; expected a VBVR-Bench download. {GET}")
    if not any((root / s).is_dir() for s in SPLITS) and not (root / INDEX).is_file():
        raise BadInput(f"{root}: expected {INDEX} or the split folders {' and '.join(SPLITS)}. {GET}")
    samples = _from_index(root) if (root / INDEX).is_file() else _scan(root)
    samples.sort(key=lambda s: (SPLITS.index(s.split), s.task, s.id))
    if not samples:
        raise BadInput(f"{root}: no samples found. {GET}")
    for s in samples:
        _check_image(s.first_frame)
        _check_image(s.final_frame)
        _check_video(s.ground_truth)
    return samples


def parse_vbvr_spec(spec: str) -> tuple[Path, str | None, str | None]:
    """``vbvr:DIR[:SPLIT[/TASK]]`` as (DIR, SPLIT, TASK)."""
    rest = spec.strip().removeprefix("vbvr:")
    head, sep, tail = rest.rpartition(":")
    if sep and tail.split("/", 1)[0] in SPLITS:
        split, _, task = tail.partition("/")
        return Path(head).expanduser(), split, task or None
    return Path(rest).expanduser(), None, None


@dataclass(frozen=True)
class VBVRSuite:
    spec: str
    root: Path
    rows: tuple[VBVRSample, ...]
    kind: str = "vbvr"
    by_key: dict[str, VBVRSample] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str) -> VBVRSuite:
        root, split, task = parse_vbvr_spec(spec)
        if not str(root) or str(root) == ".":
            raise BadInput(f"suite {spec!r}: give the benchmark directory, vbvr:DIR or vbvr:DIR:SPLIT/TASK")
        rows = load_vbvr(root)
        if split:
            rows = [r for r in rows if r.split == split]
        if task:
            known = sorted({r.task for r in rows})
            rows = [r for r in rows if r.task == task]
            if not rows:
                raise BadInput(f"suite {spec!r}: no task folder {task!r} in {split}; known: {', '.join(known[:20])}")
        if not rows:
            raise BadInput(f"suite {spec!r}: no samples in split {split!r}")
        return cls(spec, root, tuple(rows), by_key={r.key: r for r in rows})

    def samples(self, n: int, seed: int) -> list[Sample]:
        return first_per_group([(r.split, r.task, r.key) for r in self.rows], n, seed)

    def task(self, sample: Sample, size: int) -> Task:
        r = self.by_key[sample.id]
        return vbvr_task(r)


def vbvr_task(r: VBVRSample) -> Task:
    """The task of one sample. A sim export's sample (task folder ``sim-FAMILY-DIFFICULTY``, id = seed) is
    the sim task itself, so the sim backends and the sim scorer work on it."""
    meta = {"split": r.split, "task": r.task, "id": r.id, "first_frame_path": str(r.first_frame),
            "final_frame_path": str(r.final_frame), "reference_video": str(r.ground_truth)}
    sim = _SIM_TASK.fullmatch(r.task)
    if sim and sim["family"] in FAMILIES:
        size = Image.open(r.first_frame).width
        task = Task.sim(f"{sim['family']}/{sim['difficulty']}", seed=int(r.id), size=size)
        return task.model_copy(update={"suite": "vbvr", "sample": r.key, "meta": meta, "image_path": str(r.first_frame)})
    return Task.benchmark("vbvr", r.key, r.first_frame, r.prompt, meta=meta)


# -- floors, ceilings and the table -------------------------------------------------------------------


def floor_and_ceiling(r: VBVRSample) -> tuple[float, float]:
    """The first-order score of a video that holds the first frame, and of the ground-truth video."""
    first, final = Image.open(r.first_frame).array, Image.open(r.final_frame).array
    floor = first_order_score(first[None], first, final)["score"]
    ceiling = first_order_score([f.array for f in Video.open(r.ground_truth).frames_at([0, -1])], first, final)["score"]
    return floor, ceiling


def normalized(score: float, floor: float, ceiling: float) -> float | None:
    """The score between the floor (0) and the ceiling (1); None when they coincide."""
    return None if ceiling - floor <= 1e-9 else (score - floor) / (ceiling - floor)


def vbvr_table(results: list[dict[str, Any]], bounds: dict[str, dict[str, float]]) -> str:
    """Markdown: per task, each method's mean first-order score beside the floor, the ceiling and the
    score normalized between them; ``bounds`` maps sample keys (split/task/id) to {floor, ceiling}
    (summary.json's ``benchmark.bounds``)."""
    by_task: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for key, b in bounds.items():
        split, task, _ = key.split("/", 2)
        by_task.setdefault((split, task), []).append((b["floor"], b["ceiling"]))
    methods = list(dict.fromkeys(r["method"] for r in results))
    lines = ["## VBVR-Bench, first-order scorer (NOT the official VBVR-EvalKit score)", "",
             "Score = change x preserve of the final frame against final_frame.png (docs/benchmarks.md). "
             "floor: a video holding the first frame; ceiling: ground_truth.mp4; norm = (score - floor) / (ceiling - floor).", "",
             "| split | task | floor | ceiling | " + " | ".join(f"{m} | {m} norm" for m in methods) + " |",
             "|---|---|---|---|" + "---|---|" * len(methods)]
    for (split, task), pairs in by_task.items():
        floor = sum(b[0] for b in pairs) / len(pairs)
        ceiling = sum(b[1] for b in pairs) / len(pairs)
        cells = []
        for m in methods:
            scores = [r.get("score") or 0.0 for r in results if r["method"] == m and r["family"] == split and r["difficulty"] == task]
            if not scores:
                cells += ["", ""]
                continue
            mean = sum(scores) / len(scores)
            norm = normalized(mean, floor, ceiling)
            cells += [f"{mean:.3f}", "" if norm is None else f"{norm:.3f}"]
        lines.append(f"| {split} | {task} | {floor:.3f} | {ceiling:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- the sim suite in VBVR's layout --------------------------------------------------------------------


def export_sim_suite(out: str | Path, *, spec: str = "sim", n: int = 5, seed: int = 0, size: int = 256,
                     frames_per_move: int = 4, fps: int = 16) -> list[Path]:
    """Write sim tasks in the VBVR-Bench layout: task folder ``sim-FAMILY-DIFFICULTY`` under In-Domain_50,
    sample id = seed, the optimal solution as ground_truth.mp4, its last frame as final_frame.png,
    and VBVR-Bench.json. Returns the sample folders."""
    from collabvr.bench.suites.sim import sim_cells

    out = Path(out)
    entries, folders = [], []
    for family_name, difficulty in sim_cells(spec):
        family = FAMILIES[family_name]
        for s in range(seed, seed + n):
            task = Task.sim(f"{family_name}/{difficulty}", seed=s, size=size)
            start = family.read(task.first_image().array)
            states = [start]
            for move in family.solve(start) or []:
                states.append(family.apply(states[-1], move))
            frames = [family.render(states[0], size)]
            for before, after in zip(states, states[1:], strict=False):
                frames += [family.render_motion(before, after, k / frames_per_move, size) for k in range(1, frames_per_move + 1)]
            frames += [frames[-1]] * 2  # hold the goal briefly
            rel = Path("In-Domain_50") / f"sim-{family_name}-{difficulty}" / f"{s:05d}"
            folder = out / rel
            folder.mkdir(parents=True, exist_ok=True)
            first_png = Image(frames[0]).to_png()
            (folder / "first_frame.png").write_bytes(first_png)
            (folder / "final_frame.png").write_bytes(Image(frames[-1]).to_png())
            import numpy as np

            (folder / "ground_truth.mp4").write_bytes(Video(frames=np.stack(frames), fps=fps).mp4)
            (folder / "prompt.txt").write_text(task.prompt + "\n", encoding="utf-8")
            entries.append({"id": f"sim-{family_name}-{difficulty}_{s:05d}", "prompt": task.prompt,
                            "first_image": base64.b64encode(first_png).decode(), "first_frame_path": str(rel / "first_frame.png"),
                            "final_frame_path": str(rel / "final_frame.png"), "prompt_path": str(rel / "prompt.txt"),
                            "ground_truth_video_path": str(rel / "ground_truth.mp4")})
            folders.append(folder)
    (out / INDEX).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return folders
