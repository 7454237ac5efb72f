"""Scoring a final video without the simulator: the rubric judge, Gen-ViRe's per-video rule, and a
first-order VBVR scorer.

Below the runner (which scores every episode) and the bench suites (which aggregate):

* :func:`judge_video`: the VLM ``judge`` role, with the task's rubric when it has one. Its answer is
  kept in the official Gen-ViRe form ``{Criterion_k: {Description, Score, Rationale}}``; a judge
  call that fails (an answer that does not validate after the re-ask, a refusal, a transport
  error) is recorded as a typed failure, never as a score.
* :func:`gvr_score_file`: the ``<id>_score.json`` Gen-ViRe's per-subtask ``*_eval.py`` scripts write,
  with their exact normalization (docs/benchmarks.md, "Gen-ViRe's scoring rules").
* :func:`first_order_score`: quick feedback on VBVR-Bench samples, **not** the official VBVR-EvalKit
  score: the final frame against ``final_frame.png``, the first against ``first_frame.png``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from collabvr.backends import registry
from collabvr.errors import BackendError, failure
from collabvr.media import Image, Video
from collabvr.records import JudgeRequest, RubricJudgement

# -- the rubric judge -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JudgeSpec:
    """Which VLM judges, with which options, and how many times per video (``repeats``)."""

    vlm: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    repeats: int = 1


def score_key(rubric: str) -> str:
    """The criterion score key a rubric's own example uses: ``Score`` (maze) or ``score`` (most)."""
    return "Score" if '"Score"' in rubric or "'Score'" in rubric else "score"


def official_answer(judgement: RubricJudgement, rubric: str) -> dict[str, Any]:
    """A rubric judgement in the official form, keyed by criterion, with the rubric's score key."""
    key = score_key(rubric)
    return {c.name: {"Description": c.description, key: c.score, "Rationale": c.rationale} for c in judgement.criteria}


def reference_paths(meta: dict[str, Any]) -> tuple[tuple[str, Path], ...]:
    """The reference images (caption, path) a Gen-ViRe rubric compares against, when the sample has them."""
    refs = []
    for key, caption in (("gt_image_path", "Ground-truth image"), ("answer_image_path", "Answer image")):
        path = meta.get(key)
        if path and Path(path).is_file():
            refs.append((caption, Path(path)))
    return tuple(refs)


def _references(meta: dict[str, Any]) -> tuple[tuple[str, Image], ...]:
    return tuple((caption, Image.open(path)) for caption, path in reference_paths(meta))


def judge_video(task: Any, video: Video, first_frame: Image, spec: JudgeSpec) -> dict[str, Any]:
    """Judge ``video`` ``spec.repeats`` times; the per-video score is the mean over the repeats that
    answered. Returns a JSON-ready dict: ``score`` (None when every call failed), ``repeats`` (one
    entry per call: the official answer and score file, or the typed failure) and ``judge`` compute."""
    vlm = registry.resolve_vlm(spec.vlm, spec.options)
    rubric = task.rubric or ""
    meta = dict(getattr(task, "meta", {}) or {})
    request = JudgeRequest(task=task.prompt, video=video, first_frame=first_frame, family=getattr(task, "family", None),
                           rubric=rubric, references=_references(meta))
    repeats: list[dict[str, Any]] = []
    compute = {"spec": spec.vlm, "calls": 0, "input_tokens": 0, "output_tokens": 0}
    for _ in range(spec.repeats):
        compute["calls"] += 1
        try:
            answer = vlm.judge(request)
        except BackendError as exc:
            repeats.append({"status": "failed", "error": failure(exc)})
            continue
        if answer.usage is not None:
            compute["input_tokens"] += answer.usage.input_tokens
            compute["output_tokens"] += answer.usage.output_tokens
        if isinstance(answer, RubricJudgement):
            official = official_answer(answer, rubric)
            if task.suite == "genvire":
                sid = str(meta.get("id") or (task.sample or "").rsplit("/", 1)[-1])  # the bare id, as --task_id gives it
                scored = gvr_score_file(official, meta.get("subtask", ""), meta.get("max_score"), sid)
            else:  # a user's rubric: points over the points the rubric allows
                total = sum(c.score for c in answer.criteria)
                most = sum(c.max_score for c in answer.criteria) or float(len(answer.criteria))
                scored = {**official, "normalized_score": round(min(1.0, total / most), 4), "total_score": total,
                          "max_score": most, "criterion_count": len(answer.criteria)}
            repeats.append({"status": "ok", "score": scored["normalized_score"], "score_file": scored})
        else:
            repeats.append({"status": "ok", "score": answer.score, "solved": answer.solved, "reason": answer.reason})
    scores = [r["score"] for r in repeats if r["status"] == "ok"]
    failed = len(repeats) - len(scores)
    if not scores:
        reason = f"judge failed on every call: {repeats[-1]['error']['message']}" if repeats else "no judge call"
        return {"score": None, "solved": False, "status": "judge_failed", "reason": reason, "scorer": "judge",
                "failed_calls": failed, "repeats": repeats, "judge": compute}
    mean = float(np.mean(scores))
    return {"score": round(mean, 4), "solved": mean >= 1.0 - 1e-9, "status": "judged", "scorer": "judge",
            "reason": f"judge {spec.vlm}: mean of {len(scores)} call(s)" + (f", {failed} failed" if failed else ""),
            "failed_calls": failed, "repeats": repeats, "judge": compute}


# -- Gen-ViRe's per-video rule ----------------------------------------------------------------------

# Subtasks whose script reads only these keys for a criterion's score (code/../maze/maze_eval.py reads
# "分数" then "Score", never the lowercase "score" its own output hint asks for).
_SCORE_KEYS: dict[str, tuple[str, ...]] = {"maze": ("分数", "Score")}
_DEFAULT_KEYS = ("score",)


def _criterion_score(value: dict[str, Any], keys: tuple[str, ...], *, any_case: bool) -> float:
    for key in keys:
        if key in value:
            return float(value[key])
    if any_case:
        for key, v in value.items():
            if key.lower() in ("score", "分数") and isinstance(v, int | float):
                return float(v)
    return 0.0


def gvr_video_score(answer: dict[str, Any], subtask: str, max_score: float | None = None, *,
                    any_case: bool = False) -> tuple[float, float, int]:
    """(normalized, total, criterion count) of one judge answer, as the subtask's official script computes it.

    * raven_matrix (c1_abstract_reasoning/raven_matrix/raven_eval.py): the sum of the criteria whose
      key contains "Criterion", divided by the sample's ``max_score`` (8 when absent);
    * maze (c6_spatial_reasoning/maze/maze_eval.py): the mean over keys starting "Criterion_" or
      "标准_", reading only "分数" or "Score";
    * every other subtask (e.g. c1_abstract_reasoning/symmetry/symmetry_eval.py): the mean over keys
      starting "Criterion_", reading "score".

    ``any_case`` (``--strict``) reads a criterion's score key in any case, fixing the maze quirk.
    """
    keys = _SCORE_KEYS.get(subtask, _DEFAULT_KEYS)
    if any_case:
        keys = (*keys, "score", "Score")
    total, count = 0.0, 0
    for key, value in answer.items():
        if not isinstance(value, dict):
            continue
        wanted = "Criterion" in key if subtask == "raven_matrix" else (
            key.startswith(("Criterion_", "标准_")) if subtask == "maze" else key.startswith("Criterion_"))
        if wanted:
            total += _criterion_score(value, keys, any_case=any_case)
            count += 1
    if subtask == "raven_matrix":
        most = float(max_score if max_score is not None else 8)
        return (total / most if most > 0 else 0.0), total, count
    return (total / count if count else 0.0), total, count


def gvr_score_file(answer: dict[str, Any], subtask: str, max_score: float | None, task_id: str) -> dict[str, Any]:
    """The ``<id>_score.json`` the official script writes: the answer plus its summary fields."""
    normalized, total, count = gvr_video_score(answer, subtask, max_score)
    out = {**answer, "normalized_score": round(normalized, 4), "total_score": total, "criterion_count": count,
           "task_id": task_id}
    if subtask == "raven_matrix":
        out["max_score"] = max_score if max_score is not None else 8
    return out


# -- the first-order VBVR scorer ----------------------------------------------------------------------

TOLERANCE = 32  # per-channel difference (0..255) under which a pixel counts as matching
SOLVED_AT = 0.9


def _fit(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    if frame.shape[:2] == like.shape[:2]:
        return frame
    return np.asarray(PILImage.fromarray(frame).resize((like.shape[1], like.shape[0]), PILImage.BILINEAR))


def _half(a: np.ndarray) -> np.ndarray:
    """Box-averaged to half size: video codecs keep colour at half resolution (4:2:0), so a crisp
    coloured edge of a faithful video differs from the PNG pixel by pixel, not block by block."""
    h, w = max(1, a.shape[0] // 2), max(1, a.shape[1] // 2)
    return np.asarray(PILImage.fromarray(np.ascontiguousarray(a)).resize((w, h), PILImage.BOX)).astype(np.int16)


def _close(a: np.ndarray, b: np.ndarray, *, reach: int = 0) -> np.ndarray:
    """Per (half-size) pixel of ``b``: whether ``a`` matches it, at that pixel or within ``reach`` pixels."""
    ha, hb = _half(a), _half(b)
    if not reach:
        return np.abs(ha - hb).max(axis=-1) <= TOLERANCE
    padded = np.pad(ha, ((reach, reach), (reach, reach), (0, 0)), mode="edge")
    h, w = hb.shape[:2]
    ok = np.zeros((h, w), bool)
    for dy in range(2 * reach + 1):
        for dx in range(2 * reach + 1):
            ok |= np.abs(padded[dy:dy + h, dx:dx + w] - hb).max(axis=-1) <= TOLERANCE
    return ok


def first_order_score(frames: Sequence[np.ndarray], first_ref: np.ndarray, final_ref: np.ndarray) -> dict[str, Any]:
    """A quick score of a video against a VBVR sample's first and final frames; **not** the official score.

    Only ``frames[0]`` and ``frames[-1]`` are read, so callers pass just those two (``Video.frames_at([0, -1])``)
    rather than a decoded clip.

    Frames are resized to the reference's size, then both are box-averaged to half size (to forgive
    4:2:0 chroma); a reference pixel is matched when the video's frame has a pixel within one (half-size)
    pixel of it whose every channel is within :data:`TOLERANCE`. ``change``: the fraction of the pixels that differ between
    ``first_frame.png`` and ``final_frame.png`` (what the task must change) that the video's last
    frame gets right; ``preserve``: the fraction of the other pixels it keeps right; ``first``: the
    fraction of ``first_frame.png`` the video's first frame matches. ``score = change * preserve``,
    so a video that holds the first frame scores 0 wherever the task changes anything.
    """
    first_ref = _fit(first_ref, final_ref)
    must_change = ~_close(first_ref, final_ref)
    ok = _close(_fit(np.asarray(frames[-1]), final_ref), final_ref, reach=1)
    change = float(ok[must_change].mean()) if must_change.any() else 1.0
    preserve = float(ok[~must_change].mean()) if (~must_change).any() else 1.0
    first = float(_close(_fit(np.asarray(frames[0]), first_ref), first_ref, reach=1).mean())
    score = change * preserve
    return {"score": round(score, 4), "solved": score >= SOLVED_AT, "scorer": "vbvr-first-order", "official": False,
            "reason": f"first-order (not the official VBVR score): change {change:.3f}, preserve {preserve:.3f}, first {first:.3f}",
            "metrics": {"change": round(change, 4), "preserve": round(preserve, 4), "first": round(first, 4)}}
