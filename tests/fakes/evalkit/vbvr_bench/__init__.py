"""Stand-in for VBVR-EvalKit's package (see ../README.md): the toy scorer both entry points use."""

import os

import av
import numpy as np
from PIL import Image

from .evaluators import TASK_EVALUATOR_MAP, get_task_category, is_out_of_domain  # noqa: F401


def _closeness(frame, reference_path):
    reference = np.asarray(Image.open(reference_path).convert("RGB"), dtype=float)
    frame = np.asarray(Image.fromarray(frame).resize((reference.shape[1], reference.shape[0])), dtype=float)
    return float(1.0 - np.abs(frame - reference).mean() / 255.0)


def evaluate_video(video_path, gt_first_frame, gt_final_frame, *, weighted):
    """(score, dimensions, received): the toy task or weighted score of one video."""
    with av.open(video_path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    task = _closeness(frames[-1], gt_final_frame)
    received = {"video": os.path.abspath(video_path), "gt_first_frame": gt_first_frame, "gt_final_frame": gt_final_frame,
                "frames": len(frames)}
    if not weighted:
        return task, {"task_specific": task}, received
    first = _closeness(frames[0], gt_first_frame)
    score = 0.15 * first + 0.35 * task + 0.25 + 0.25 * task
    return score, {"first_frame_consistency": first, "final_frame_accuracy": task, "task_specific": task}, received
