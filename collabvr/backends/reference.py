"""Two reference VGMs that bracket every score: ``still`` (the floor) and ``groundtruth`` (the ceiling).

* ``still`` holds the conditioning frame for the clip's length: a video that does nothing. Rule-based
  scorers give such a video real credit (on VBVR task O-47 the official EvalKit scores it 0.76), so
  every benchmark table shows it beside the methods.
* ``groundtruth`` returns the sample's reference video. The bench registers each sample's
  reference (:func:`register_reference`) before its episode; the VGM finds the reference frame
  nearest the conditioning frame and returns the next ``seconds * fps`` frames of it (the whole
  rest of the video for a single-clip method; per step, the matching slice). Past the end of the
  reference it holds the last frame.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from collabvr.errors import BackendError, BadInput
from collabvr.media import Image, MediaError, Video

_THUMB = 24


class StillVGM:
    """A video that holds the conditioning frame: the do-nothing floor."""

    name = "still"
    model = "still"

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        total = max(2, round(seconds * fps))
        return Video(frames=np.repeat(frame.array[None], total, axis=0), fps=fps)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _thumb(array: np.ndarray) -> np.ndarray:
    return np.asarray(PILImage.fromarray(array).resize((_THUMB, _THUMB), PILImage.BILINEAR), dtype=np.float32)


class _References:
    """Reference videos by the digest of their sample's first frame, decoded on first use."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self.videos: dict[str, tuple[Video, np.ndarray]] = {}
        self.lock = threading.Lock()

    def register(self, first_frame: Image, video_path: str | Path) -> None:
        with self.lock:
            self.paths[_digest(first_frame.array)] = Path(video_path)

    def load(self, key: str) -> tuple[Video, np.ndarray]:
        with self.lock:
            if key not in self.videos:
                try:  # decoded now, a frame at a time, so a bad file fails here
                    video = Video.open(self.paths[key])
                    thumbs = np.stack([_thumb(f) for f in video.iter_frames()])
                except (MediaError, OSError) as exc:
                    raise BackendError(f"groundtruth: cannot read reference video {self.paths[key]}: {exc}") from None
                self.videos[key] = (video, thumbs)
            return self.videos[key]

    def nearest(self, frame: Image) -> tuple[Video, int]:
        """The reference video and frame index closest to ``frame`` (an exact first frame first)."""
        key = _digest(frame.array)
        if key in self.paths:
            return self.load(key)[0], 0
        if not self.paths:
            raise BackendError("groundtruth: no reference video is registered (the suite ships none for this sample)")
        target = _thumb(frame.array)
        best: tuple[float, Video | None, int] = (float("inf"), None, 0)
        for k in list(self.paths):
            video, thumbs = self.load(k)
            errors = np.abs(thumbs - target).mean(axis=(1, 2, 3))
            i = int(errors.argmin())
            if errors[i] < best[0]:
                best = (float(errors[i]), video, i)
        return best[1], best[2]  # type: ignore[return-value]


REFERENCES = _References()


def register_reference(first_frame: Image, video_path: str | Path) -> None:
    """Make ``video_path`` the ground truth of the sample whose first frame is ``first_frame``."""
    REFERENCES.register(first_frame, video_path)


class GroundTruthVGM:
    """Replays the sample's reference video: the ceiling."""

    name = "groundtruth"
    model = "groundtruth"

    def generate(self, frame: Image, prompt: str, *, seconds: float, fps: int, seed: int) -> Video:
        video, start = REFERENCES.nearest(frame)
        count = video.num_frames
        total = max(2, round(seconds * fps))
        if start == 0 and count - 1 <= total:  # the whole reference fits: return it unchanged
            return video
        clip = video.trim(start, start + total)  # read from the reference when encoded, not copied here
        if clip.num_frames < total:
            last = video.last_frame().array
            held = Video(frames=np.broadcast_to(last, (total - clip.num_frames, *last.shape)), fps=video.fps)
            clip = Video.concat([clip, held])
        return clip


def make(role: str, model: str, options: dict[str, Any]) -> StillVGM | GroundTruthVGM | None:
    """Registry factory for the ``still`` and ``groundtruth`` providers (VGMs only)."""
    if options:
        raise BadInput(f"the {model or 'reference'} VGM takes no options, got {', '.join(sorted(options))}")
    if role != "vgm":
        return None
    return StillVGM() if model == "still" else GroundTruthVGM()


def make_still(role: str, model: str, options: dict[str, Any]) -> StillVGM | None:
    return make(role, "still", options)  # type: ignore[return-value]


def make_groundtruth(role: str, model: str, options: dict[str, Any]) -> GroundTruthVGM | None:
    return make(role, "groundtruth", options)  # type: ignore[return-value]
