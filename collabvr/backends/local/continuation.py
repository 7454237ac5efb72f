"""The clips a VGM made lately, so that a frame of one leads back to the frames before it.

LTXCondition continues a clip from its last N frames rather than from one frame. The graph hands
the backend only the frame to start from (the last frame of the accepted clip, or the cut of a
partial regeneration), as the store gives it back; this memory finds that frame among the clips the
backend made (by content hash) and returns the frames up to it, in order.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


class RecentClips:
    """The last ``limit`` clips' frames, indexed by each frame's content hash; thread-safe (the
    episodes of a bench share one backend)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._clips: OrderedDict[int, np.ndarray] = OrderedDict()  # clip id -> frames
        self._where: dict[bytes, tuple[int, int]] = {}  # frame hash -> (clip id, index)
        self._ids = 0
        self._lock = threading.Lock()

    def frames_up_to(self, frame: np.ndarray, most: int, temporal: int) -> list[np.ndarray]:
        """The frames of a remembered clip up to and including ``frame``: ``temporal`` x k + 1 of
        them, at most ``most``; [] when the frame is not in a remembered clip or starts it."""
        with self._lock:
            found = self._where.get(digest(frame))
            if found is None or found[0] not in self._clips:
                return []
            clip_id, index = found
            count = min(most, index + 1)
            count = (count - 1) // temporal * temporal + 1
            if count <= 1:
                return []
            return list(self._clips[clip_id][index + 1 - count : index + 1])

    def remember(self, frames: np.ndarray) -> None:
        digests = [digest(array) for array in frames]
        with self._lock:
            self._ids += 1
            self._clips[self._ids] = frames
            for i, key in enumerate(digests):
                self._where[key] = (self._ids, i)
            while len(self._clips) > self.limit:
                old, _ = self._clips.popitem(last=False)
                self._where = {k: v for k, v in self._where.items() if v[0] != old}

    def clear(self) -> None:
        with self._lock:
            self._clips.clear()
            self._where.clear()


def digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes() + repr(array.shape).encode(), digest_size=16).digest()


__all__ = ["RecentClips", "digest"]
