"""``collabvr calibrate --from vbvr:DIR``: the labelled set made of real footage.

The good clips are the ground-truth videos of a local VBVR-Bench download (the suite's own
loader, :class:`collabvr.bench.suites.vbvr.VBVRSuite`); the bad clips are corruptions of them,
in equal shares of the bad half:

* ``reverse``: the video played backwards;
* ``freeze``: a frame held from some point on, for the rest of the video;
* ``cut``: the end dropped;
* ``shuffle``: the frames of a segment in another order;
* ``splice``: from some frame on, another sample's video from its beginning.

Labels follow the sim set's rules: the first bad frame is the first frame that differs from the
ground truth at the same index; ``freeze`` and ``cut`` show nothing wrong, only not all of it
(like the sim set's ``incomplete``), so their first bad frame is None and their good fraction
1.0. A corruption that changes no frame (a static video) is not used; the next sample is.

Each clip is verified as a one-step episode would verify it: the step's action is the whole
task, so the instruction is the sample's prompt, from its first frame.
"""

from __future__ import annotations

import numpy as np

from collabvr.bench.suites.vbvr import VBVRSample, VBVRSuite, vbvr_task
from collabvr.calibrate.labelled import Clip, Label, kind_mix
from collabvr.errors import BadInput
from collabvr.media import Image, Video

CORRUPTIONS = ("reverse", "freeze", "cut", "shuffle", "splice")
TARGET = "the end state the task asks for: the task solved"
# two frames differ when more than this share of their pixels is off by more than PIXEL (of 255) in
# some channel: a moved object, not video compression noise
PIXEL, SHARE = 40, 0.001
LOCATE = 0.1  # a said good fraction within this share of the clip of the label locates the error


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return True
    off = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > PIXEL).mean()
    return bool(off > SHARE)


def departure(clip: np.ndarray, truth: np.ndarray) -> int | None:
    """The first frame of ``clip`` that differs from ``truth`` at the same index; None if none does."""
    for t in range(min(len(clip), len(truth))):
        if differs(clip[t], truth[t]):
            return t
    return None


def _resized(frames: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of every frame to ``shape`` (height, width, channels)."""
    h, w = shape[:2]
    rows = np.arange(h) * frames.shape[1] // h
    cols = np.arange(w) * frames.shape[2] // w
    return frames[:, rows][:, :, cols]


def corrupt(kind: str, truth: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int | None] | None:
    """(the corrupted frames, their first bad frame), or None when this corruption changes nothing
    here (a static stretch) and another sample must be used."""
    total = len(truth)
    if total < 4:
        return None
    if kind == "reverse":
        frames = truth[::-1].copy()
    elif kind == "freeze":
        at = int(rng.integers(1, total - 1))
        frames = np.concatenate([truth[: at + 1], np.repeat(truth[at: at + 1], total - at - 1, axis=0)])
        return (frames, None) if departure(frames, truth) is not None else None
    elif kind == "cut":
        keep = int(rng.integers(max(2, total // 4), max(3, 3 * total // 4)))
        frames = truth[:keep].copy()
        return (frames, None) if differs(frames[-1], truth[-1]) else None
    elif kind == "shuffle":
        length = max(3, total // 4)
        start = int(rng.integers(1, total - length + 1))
        order = np.arange(start, start + length)
        while np.array_equal(order, np.arange(start, start + length)):
            order = rng.permutation(order)
        frames = truth.copy()
        frames[start: start + length] = truth[order]
    elif kind == "splice":
        at = int(rng.integers(1, total - 1))
        spliced = _resized(other, truth.shape[1:])
        spliced = np.concatenate([spliced, np.repeat(spliced[-1:], max(0, total - at - len(spliced)), axis=0)])
        frames = np.concatenate([truth[:at], spliced[: total - at]])
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    bad = departure(frames, truth)
    return None if bad is None else (frames, bad)


def footage_set(source: str, n: int, *, seed: int = 0) -> list[Clip]:
    """``n`` labelled clips from ``vbvr:DIR[:SPLIT[/TASK]]``, the same for the same arguments."""
    if n < 1:
        raise BadInput(f"--n must be >= 1, got {n}")
    if not source.startswith("vbvr:"):
        raise BadInput(f"--from takes vbvr:DIR[:SPLIT[/TASK]] (a local VBVR-Bench download), got {source!r}")
    rows = list(VBVRSuite.parse(source).rows)
    rng = np.random.default_rng([seed, 0x766276])
    order = [rows[i] for i in rng.permutation(len(rows))]
    videos: dict[str, Video] = {}

    def video(row: VBVRSample) -> Video:
        if row.key not in videos:
            videos[row.key] = Video.open(row.ground_truth)
        return videos[row.key]

    clips = []
    for i, kind in enumerate(kind_mix(n, CORRUPTIONS)):
        made = None
        for tried in range(len(order)):  # this clip's sample, else the next one the corruption changes
            row = order[(i + tried) % len(order)]
            truth = video(row)
            if kind == "good":
                made = (truth.frames, None)
                break
            other = video(order[(i + tried + 1) % len(order)]).frames
            made = corrupt(kind, truth.frames, other, np.random.default_rng([seed, i, tried, 0x636F72]))
            if made is not None:
                break
        if made is None:
            raise BadInput(f"{source}: no sample's ground truth changes under the {kind!r} corruption "
                           f"(static videos{', or a single sample' if kind == 'splice' else ''})")
        frames, bad = made
        label = Label(kind=kind, good=kind == "good", first_bad_frame=bad,
                      good_fraction=1.0 if bad is None else round(bad / len(frames), 6), moves_done=None, tolerance=LOCATE)
        clips.append(Clip(task=vbvr_task(row), start=Image.open(row.first_frame), instruction=row.prompt,
                          target_state=TARGET, video=Video(frames=frames, fps=truth.fps), label=label))
    return clips
