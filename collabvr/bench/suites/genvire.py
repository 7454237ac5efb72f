"""Gen-ViRe: the loader (``--suite genvire:DIR[:CATEGORY[/SUBTASK]]``) and the official sample set. The
generation tree and step4's aggregation are in :mod:`.genvire_official`.

Read from the official toolkit (github.com/L-CodingSpace/GVR at dd532d1; paths below are in that repository):

* layout: ``DIR/<cN_category>/<subtask>/<name>_eval.json`` maps sample ids (strings, not always
  numeric: ``random_01`` in c1_abstract_reasoning/symmetry/symmetry_eval.json) to
  ``{input_image_path, i2v_prompt, eval_task_description, ...}``; ``input_image_path`` is relative to
  the subtask folder (``input_images/``, ``input_images_green/``, ...), and a json may list ids that
  have no image in the clone: those are skipped and listed in ``suite.skipped``;
* the official sample set: three per subtask, the dataset's ids ``01``-``03`` (README.md: "all 72
  samples" of 24 subtasks; code/sample_psdl.py ``determine_video_filename``, which also names the
  four subtasks whose eval json keys differ: symmetry ``random_01``.., color, reflect, resize). An eval
  json lists more for some subtasks (tool_use_selection/04): those are left out of a suite read from
  the folders, counted in ``suite.left_out``, unless ``all_samples``;
* the Hugging Face dataset ``ciciciciliu/Gen-Vire_ds`` (split ``train``), exported to a local JSONL
  or parquet file: rows ``id, main_category, sub_category, i2v_prompt, image, eval_json_path``;
  ``main_category`` maps to the category folders with code/step2_generate_configs.py's
  ``CATEGORY_MAPPING`` (folder names keep the toolkit's spellings: c3_perceptural_reasoning, ...);
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collabvr.bench.suites import Sample, first_per_group
from collabvr.errors import BadInput
from collabvr.media import Image, MediaError
from collabvr.task import Task

# code/step2_generate_configs.py CATEGORY_MAPPING (dataset main_category -> folder)
CATEGORY_FOLDERS = {
    "abstract_reasoning": "c1_abstract_reasoning",
    "algorithmic_logical_reasoning": "c2_algorithmic_logical_reasoning",
    "perceptual_reasoning": "c3_perceptural_reasoning",
    "analogy_reasoning": "c4_analogy_resoning",
    "planning_reasoning": "c5_planing_reasoning",
    "spatial_reasoning": "c6_spatial_reasoning",
}
FOLDER_CATEGORIES = {v: k for k, v in CATEGORY_FOLDERS.items()}
GET = ("get it with: git clone https://github.com/L-CodingSpace/GVR (the toolkit holds every eval json and "
       "image), or export the dataset ciciciciliu/Gen-Vire_ds to JSONL (docs/benchmarks.md)")
_CATEGORY_DIR = re.compile(r"c\d+_[a-z_]+")
RUNS_OFFICIAL = 5
OFFICIAL_IDS = ("01", "02", "03")  # the dataset's ids, three per subtask (README.md: 72 samples, 24 subtasks)
SUBTASKS = {  # README.md, "Detailed Subcategories"
    "abstract_reasoning": ("2d_rule_extrapolation", "3d_rule_extrapolation", "raven_matrix", "symmetry"),
    "algorithmic_logical_reasoning": ("cross_word", "geometric_reasoning", "graph_tr", "sudoku"),
    "perceptual_reasoning": ("matching_color", "matching_num", "matching_pairs", "matching_shape"),
    "analogy_reasoning": ("color", "reflect", "resize", "rotation"),
    "planning_reasoning": ("assemble_reasoning", "gui_reasoning", "multi_step_procedural_planning", "tool_use_selection"),
    "spatial_reasoning": ("auto_drive", "maze", "spatial_obstacle", "vla"),
}
# code/sample_psdl.py determine_video_filename: the subtasks whose eval json keys are not the dataset's ids
ID_NAMES = {
    "symmetry": ("random_01", "random_02", "random_03"),
    "color": ("ColourBlue_42", "ColourBlue_43", "ColourRed_32"),
    "reflect": ("ReflectY_19", "ReflectY_24", "ReflectY_43"),
    "resize": ("Resize0.5XY_44", "Resize2XY_27", "Resize2XY_41"),
}


def official_ids(subtask: str) -> tuple[str, ...] | None:
    """The eval json keys of one of the 24 subtasks' official samples (its dataset ids 01-03, or the
    names sample_psdl.py gives them); None for a subtask Gen-ViRe does not have."""
    if not any(subtask in subs for subs in SUBTASKS.values()):
        return None
    return ID_NAMES.get(subtask, OFFICIAL_IDS)


@dataclass(frozen=True)
class GenViReSample:
    main_category: str
    subtask: str
    id: str
    image: Path
    prompt: str
    rubric: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.main_category}/{self.subtask}/{self.id}"


def _eval_json(subtask_dir: Path) -> Path | None:
    """The subtask's eval json: ``<subtask>_eval.json`` if present, else the shortest ``*_eval.json``
    (gui_reasoning holds gui_eval.json beside gui_eval_past.json)."""
    candidates = sorted(subtask_dir.glob("*_eval.json"), key=lambda p: (p.stem != f"{subtask_dir.name}_eval", len(p.name), p.name))
    return candidates[0] if candidates else None


def _read_eval(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc}); expected an object mapping sample ids to "
                       "{input_image_path, i2v_prompt, eval_task_description}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object mapping sample ids to samples, got a {type(data).__name__}")
    return data


def _image_path(subtask_dir: Path, rel: str) -> Path:
    """``input_image_path`` relative to the subtask folder; a path with ``input_images/`` inside is cut
    there, as code/step2_generate_configs.py does."""
    direct = subtask_dir / rel
    if direct.is_file() or "input_images/" not in rel:
        return direct
    return subtask_dir / ("input_images/" + rel.split("input_images/")[-1])


def _sample(path: Path, sid: str, entry: Any, main_category: str, subtask: str, image: Path | None,
            skipped: list[str]) -> GenViReSample | None:
    if not isinstance(entry, dict):
        raise BadInput(f"{path}: sample {sid!r} is not an object")
    for key in ("i2v_prompt", "eval_task_description"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise BadInput(f"{path}: sample {sid!r} has no {key} (expected a non-empty string)")
    subtask_dir = path.parent
    if image is None:
        if not entry.get("input_image_path"):
            raise BadInput(f"{path}: sample {sid!r} has no input_image_path")
        image = _image_path(subtask_dir, entry["input_image_path"])
    if not image.is_file():
        skipped.append(f"{main_category}/{subtask}/{sid}: no image at {image}")
        return None
    meta = {"main_category": main_category, "subtask": subtask, "id": sid, "eval_json": str(path),
            "max_score": entry.get("max_score")}
    for key in ("gt_image_path", "answer_image_path"):
        if entry.get(key):
            ref = _image_path(subtask_dir, entry[key])
            if ref.is_file():
                meta[key] = str(ref)
    if subtask == "raven_matrix" and "gt_image_path" not in meta:  # raven_eval.py infers gt_images/<input stem>_gt.png
        guess = subtask_dir / "gt_images" / f"{image.stem}_gt.png"
        if guess.is_file():
            meta["gt_image_path"] = str(guess)
    return GenViReSample(main_category, subtask, sid, image, entry["i2v_prompt"].strip(), entry["eval_task_description"], meta)


def _from_folders(root: Path, skipped: list[str], left_out: list[str], all_samples: bool) -> list[GenViReSample]:
    samples = []
    for cat_dir in sorted(p for p in root.iterdir() if p.is_dir() and _CATEGORY_DIR.fullmatch(p.name)):
        main_category = FOLDER_CATEGORIES.get(cat_dir.name, cat_dir.name.split("_", 1)[1])
        for sub_dir in sorted(p for p in cat_dir.iterdir() if p.is_dir()):
            path = _eval_json(sub_dir)
            if path is None:
                continue
            for sid, entry in _read_eval(path).items():
                official = official_ids(sub_dir.name)
                if not all_samples and official is not None and str(sid) not in official:
                    left_out.append(f"{main_category}/{sub_dir.name}/{sid}")
                    continue
                s = _sample(path, str(sid), entry, main_category, sub_dir.name, None, skipped)
                if s is not None:
                    samples.append(s)
    return samples


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path}: line {n} is not JSON ({exc})") from None
        return rows
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise BadInput(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or export the dataset to JSONL") from None
    return pq.read_table(path).to_pylist()


def _row_image(path: Path, n: int, value: Any, out_dir: Path) -> Path:
    """A row's image: a file path, raw bytes, base64, or the datasets Image form {bytes, path}."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, str) and not value.startswith(("data:", "iVBOR", "/9j/")):
        file = Path(value) if Path(value).is_absolute() else path.parent / value
        if not file.is_file():
            raise BadInput(f"{path}: row {n}: image file {file} is missing")
        return file
    if isinstance(value, str):
        value = base64.b64decode(value.split(",", 1)[-1])
    if not isinstance(value, bytes | bytearray):
        raise BadInput(f"{path}: row {n}: expected image as a path, bytes or base64, got {type(value).__name__}")
    try:
        image = Image.from_png(bytes(value)) if bytes(value[:4]) == b"\x89PNG" else Image(_decode_any(bytes(value)))
    except (MediaError, OSError) as exc:
        raise BadInput(f"{path}: row {n}: unreadable image bytes ({exc})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / f"row{n:05d}.png"
    file.write_bytes(image.to_png())
    return file


def _decode_any(data: bytes) -> Any:
    import numpy as np
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


def _from_dataset(path: Path, skipped: list[str]) -> list[GenViReSample]:
    """Rows of a local export of ciciciciliu/Gen-Vire_ds; the rubric comes from ``eval_json_path``
    (relative to the GVR clone: the file's folder), or from the row's own ``eval_task_description``."""
    samples = []
    cache = path.parent / f".{path.stem}_images"
    evals: dict[Path, dict[str, Any]] = {}
    for n, row in enumerate(_rows(path), 1):
        for key in ("id", "main_category", "sub_category", "i2v_prompt", "image"):
            if row.get(key) in (None, ""):
                raise BadInput(f"{path}: row {n} has no {key} (expected columns id, main_category, sub_category, "
                               "i2v_prompt, image, eval_json_path)")
        entry = {"i2v_prompt": row["i2v_prompt"], "eval_task_description": row.get("eval_task_description")}
        eval_path = path.parent / str(row.get("eval_json_path") or "")
        if row.get("eval_json_path") and eval_path.is_file():
            if eval_path not in evals:
                evals[eval_path] = _read_eval(eval_path)
            entry = {**_eval_entry(evals[eval_path], str(row["id"]), str(row["sub_category"])),
                     **{k: v for k, v in entry.items() if v}}
        if not entry.get("eval_task_description"):
            raise BadInput(f"{path}: row {n} ({row['id']}): no rubric: eval_json_path {eval_path} is missing and the row "
                           "has no eval_task_description")
        image = _row_image(path, n, row["image"], cache)
        s = _sample(eval_path if eval_path.is_file() else path, str(row["id"]), entry, str(row["main_category"]),
                    str(row["sub_category"]), image, skipped)
        if s is not None:
            samples.append(s)
    return samples


def _eval_entry(evals: dict[str, Any], sid: str, subtask: str) -> dict[str, Any]:
    """A dataset row's eval json entry: under its id, or under the name sample_psdl.py gives that id."""
    if sid in evals:
        return evals[sid]
    names = dict(zip(OFFICIAL_IDS, official_ids(subtask) or OFFICIAL_IDS, strict=True))
    return evals.get(names.get(sid, sid), {})


def load_genvire(root: str | Path, *, all_samples: bool = False) -> tuple[list[GenViReSample], list[str], list[str]]:
    """The official samples under a GVR clone (every one in its eval jsons with ``all_samples``), or
    every row of a dataset export file; the ids skipped for lack of an image; the ids left out as
    not official."""
    root = Path(root).expanduser()
    skipped: list[str] = []
    left_out: list[str] = []
    if root.is_file() and root.suffix in (".jsonl", ".parquet"):
        samples = _from_dataset(root, skipped)
    elif root.is_dir():
        exports = sorted([*root.glob("*.jsonl"), *root.glob("*.parquet")])
        has_folders = any(p.is_dir() and _CATEGORY_DIR.fullmatch(p.name) for p in root.iterdir())
        if not has_folders and not exports:
            raise BadInput(f"{root}: expected category folders c1_abstract_reasoning ... c6_spatial_reasoning, or a "
                           f"dataset export (*.jsonl, *.parquet). {GET}")
        samples = _from_folders(root, skipped, left_out, all_samples) if has_folders else _from_dataset(exports[0], skipped)
    else:
        raise BadInput(f"{root}: no such directory or dataset file. {GET}")
    if not samples:
        raise BadInput(f"{root}: no samples with an image found. {GET}")
    return samples, skipped, left_out


@dataclass(frozen=True)
class GenViReSuite:
    spec: str
    root: Path
    rows: tuple[GenViReSample, ...]
    skipped: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()  # ids in an eval json beyond the official three per subtask
    kind: str = "genvire"
    by_key: dict[str, GenViReSample] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str, *, all_samples: bool = False) -> GenViReSuite:
        rest = spec.strip().removeprefix("genvire:")
        head, sep, tail = rest.rpartition(":")
        category = subtask = None
        if sep and (tail.split("/", 1)[0] in CATEGORY_FOLDERS or tail.split("/", 1)[0] in FOLDER_CATEGORIES
                    or _CATEGORY_DIR.fullmatch(tail.split("/", 1)[0])):
            rest = head
            category, _, subtask = tail.partition("/")
        if not rest:
            raise BadInput(f"suite {spec!r}: give the benchmark directory, genvire:DIR or genvire:DIR:CATEGORY/SUBTASK")
        rows, skipped, left_out = load_genvire(rest, all_samples=all_samples)
        if category:
            main = FOLDER_CATEGORIES.get(category, category)
            known = sorted({r.main_category for r in rows})
            rows = [r for r in rows if r.main_category == main]
            if not rows:
                raise BadInput(f"suite {spec!r}: no category {category!r}; known: {', '.join(known)}")
        if subtask:
            known = sorted({r.subtask for r in rows})
            rows = [r for r in rows if r.subtask == subtask]
            if not rows:
                raise BadInput(f"suite {spec!r}: no subtask {subtask!r}; known: {', '.join(known)}")
        if category:  # only the left-out ids of the chosen category or subtask
            main = FOLDER_CATEGORIES.get(category, category)
            left_out = [k for k in left_out if k.split("/")[0] == main and (not subtask or k.split("/")[1] == subtask)]
        return cls(spec, Path(rest).expanduser(), tuple(rows), tuple(skipped), tuple(left_out), by_key={r.key: r for r in rows})

    def samples(self, n: int, seed: int) -> list[Sample]:
        return first_per_group([(r.main_category, r.subtask, r.key) for r in self.rows], n, seed)

    def task(self, sample: Sample, size: int) -> Task:
        r = self.by_key[sample.id]
        return Task.benchmark("genvire", r.key, r.image, r.prompt, rubric=r.rubric, meta=r.meta)
