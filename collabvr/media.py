"""Video and image I/O on PyAV and PIL.

Frames are numpy uint8 arrays shaped (H, W, 3) RGB; videos are (T, H, W, 3). A :class:`Video` is
frames in memory, encoded MP4 bytes, or a handle to a stored MP4 whose frames are decoded when,
and only as far as, a reader needs them (the codec itself is :mod:`collabvr.mp4`).
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from collabvr import mp4
from collabvr.mp4 import AV_ERRORS, MediaError, Source

__all__ = ["AV_ERRORS", "KEEP_DECODED_BYTES", "Image", "MediaError", "Opener", "Video", "contact_sheet", "probe_fps"]

_CAPTION_WIDTH = 320
_PAD = 8
# A clip whose decoded frames fit in this many bytes is decoded once and kept by its Video: the
# sim's clips (128 px, a few MB) are read by the verifier, the scorer and the next step, and decoding
# each time would cost them more CPU than holding them costs memory. A larger clip (a 12-s clip at
# 1024x1024 is 604 MB) is decoded again by each reader, which holds only the frames it asks for.
KEEP_DECODED_BYTES = 64 * 2**20

Opener = Callable[[], Source]  # reads a stored MP4: its bytes, or a binary file the caller closes


def _check_frame(array: np.ndarray) -> None:
    """Reject anything that is not an (H, W, 3) uint8 RGB frame."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise MediaError(f"image must be a uint8 numpy array, got {getattr(array, 'dtype', type(array))}")
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise MediaError(f"image must be shaped (H, W, 3), got {array.shape}")


def _check_frames(frames: np.ndarray) -> None:
    """Reject anything that is not a non-empty (T, H, W, 3) uint8 clip with even H and W."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise MediaError(f"video frames must be a uint8 numpy array, got {getattr(frames, 'dtype', type(frames))}")
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[3] != 3:
        raise MediaError(f"video frames must be shaped (T>=1, H, W, 3), got {frames.shape}")
    _check_size(int(frames.shape[1]), int(frames.shape[2]))


def _check_size(height: int, width: int) -> None:
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise MediaError(f"video size must be even for yuv420p, got {width}x{height}")


@dataclass(frozen=True, eq=False)
class Image:
    """One RGB frame; the unit that is stored, shown to models and compared."""

    array: np.ndarray

    def __post_init__(self) -> None:
        _check_frame(self.array)

    @classmethod
    def from_png(cls, data: bytes) -> Image:
        """Decode any format PIL reads (PNG, JPEG, ...) into RGB."""
        try:
            with PILImage.open(io.BytesIO(data)) as pil:
                return cls(np.asarray(pil.convert("RGB"), dtype=np.uint8).copy())
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaError(f"cannot decode image: {exc}") from exc

    @classmethod
    def open(cls, path: str | os.PathLike) -> Image:
        """Read an image file from disk."""
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            return cls.from_png(data)
        except (OSError, MediaError) as exc:
            raise MediaError(f"cannot read image {path}: {exc}") from exc

    def to_png(self) -> bytes:
        """Encode as PNG without metadata, so equal arrays give equal bytes (content addressing)."""
        buf = io.BytesIO()
        PILImage.fromarray(self.array, mode="RGB").save(buf, format="PNG", compress_level=6)
        return buf.getvalue()

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        return int(self.array.shape[0])


def _read_only(frames: np.ndarray) -> np.ndarray:
    """Frames are shared through caches, so nobody may write to them in place."""
    view = frames.view()
    view.flags.writeable = False
    return view


class Video:
    """An RGB clip: decoded frames, encoded MP4 bytes, or a handle to a stored MP4 (``opener``).

    Readers take the pixels they need, as they need them: :meth:`iter_frames` streams the clip or a
    window of it, :meth:`frames_at` decodes only the frames asked for, and :attr:`frames` is the
    whole clip as one array. A clip of at most :data:`KEEP_DECODED_BYTES` is decoded once and kept;
    a larger one is decoded again by each reader and never held whole unless :attr:`frames` is
    asked for. Trimming and joining build new clips over their parts without copying pixels; their
    MP4 is encoded from the parts as they are read.

    A handle (``opener=``) reads through whatever its store hands it (bytes, or a binary file
    object, from any filesystem); ``num_frames``, ``width`` and ``height`` are what the store
    recorded, so asking for them decodes nothing.
    """

    def __init__(self, *, frames: np.ndarray | None = None, mp4: bytes | None = None, opener: Opener | None = None,
                 fps: float, num_frames: int | None = None, width: int | None = None, height: int | None = None) -> None:
        if sum(source is not None for source in (frames, mp4, opener)) != 1:
            raise ValueError("Video needs exactly one of frames=, mp4= or opener=")
        if fps <= 0:
            raise MediaError(f"fps must be positive, got {fps}")
        if frames is not None:
            _check_frames(frames)
            frames = _read_only(frames)
        self.fps = float(fps)
        self._frames = frames
        self._mp4 = mp4
        self._opener = opener
        self._parts: tuple[tuple[Video, int, int], ...] = ()  # (clip, start, stop): a trim or a join
        self._count = num_frames if frames is None else None
        self._size = (int(height), int(width)) if frames is None and width and height else None
        self._header_count: int | None = None
        self.decodes_stored = frames is None  # frames (once read) are exactly what the MP4 decodes to

    def __getstate__(self) -> dict[str, Any]:
        """What pickling sends (Ray moves clips between processes): a handle travels as its MP4 bytes,
        read here once, because its opener reads a store the other process may not reach."""
        state = self.__dict__.copy()
        if state["_opener"] is not None:
            state["_mp4"], state["_opener"] = self.mp4, None
        return state

    @classmethod
    def _of_parts(cls, parts: Sequence[tuple[Video, int, int]], fps: float) -> Video:
        """The frames of ``parts`` in order, read from them when needed (never copied here)."""
        flat: list[tuple[Video, int, int]] = []
        for video, start, stop in parts:
            if not video._parts:
                flat.append((video, start, stop))
                continue
            offset = 0  # a window of a trim or a join: the same window of its own parts
            for inner, a, b in video._parts:
                lo, hi = max(start - offset, 0), min(stop - offset, b - a)
                if lo < hi:
                    flat.append((inner, a + lo, a + hi))
                offset += b - a
        video = cls.__new__(cls)
        video.fps, video._frames, video._mp4, video._opener = float(fps), None, None, None
        video._parts, video._header_count, video.decodes_stored = tuple(flat), None, False
        video._count = sum(stop - start for _, start, stop in flat)
        video._size = flat[0][0]._shape()
        return video

    # -- what the clip is, without decoding it --------------------------------------------------------
    def _shape(self) -> tuple[int, int]:
        """(height, width), from the frames, the recorded size, the first part or the MP4's header."""
        if self._frames is not None:
            return int(self._frames.shape[1]), int(self._frames.shape[2])
        if self._size is None:
            with self._source() as source:
                count, height, width, _ = mp4.header(source)
            self._size, self._header_count = (height, width), count
        return self._size

    def _known_count(self) -> int | None:
        """The frame count when known without decoding: held, recorded, or the MP4 header's."""
        if self._frames is not None:
            return int(self._frames.shape[0])
        if self._count is not None:
            return self._count
        self._shape()  # reads the header, which records a count
        return self._header_count or None

    def _keeps(self) -> bool:
        """Whether reading pixels takes them from one whole-clip array (held, or decoded once and kept)."""
        return self._frames is not None or self.small

    @property
    def decoded_nbytes(self) -> int | None:
        """The size of the whole clip decoded, when known without decoding it (None otherwise)."""
        count = self._known_count()
        if count is None:
            return None
        height, width = self._shape()
        return count * height * width * 3

    @property
    def small(self) -> bool:
        """Whether the clip, decoded, is known to fit in :data:`KEEP_DECODED_BYTES`: such a clip is
        decoded once and kept (and is worth a store's cache); a larger one is streamed."""
        size = self.decoded_nbytes
        return size is not None and size <= KEEP_DECODED_BYTES

    @property
    def nbytes(self) -> int:
        """Memory held now: decoded frames and/or encoded bytes, without decoding anything."""
        held = self._frames.nbytes if self._frames is not None else 0
        return held + (len(self._mp4) if self._mp4 is not None else 0)

    @property
    def num_frames(self) -> int:
        """The number of frames; for an MP4 that records none, every frame is decoded (and checked) once."""
        if self._frames is not None:
            return int(self._frames.shape[0])
        if self._count is None:
            if self._keeps():
                return int(self.frames.shape[0])
            _check_size(*self._shape())
            count = sum(1 for _ in self._stream())
            if not count:
                raise MediaError("cannot decode video: no frames")
            self._count = count
        return self._count

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def width(self) -> int:
        return self._shape()[1]

    @property
    def height(self) -> int:
        return self._shape()[0]

    # -- pixels -------------------------------------------------------------------------------------
    @contextmanager
    def _source(self) -> Iterator[Source]:
        """The encoded clip: its bytes, or the file its opener gives (closed after)."""
        if self._mp4 is not None:
            yield self._mp4
            return
        if self._opener is None:
            raise MediaError("this clip has no MP4 of its own")
        opened = self._opener()
        if isinstance(opened, bytes | bytearray | memoryview):
            yield bytes(opened)
            return
        with opened:
            yield opened

    def _stream(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames start..stop-1 straight from where the clip lives, one at a time."""
        if self._frames is not None:
            yield from self._frames[start:stop]
        elif self._parts:
            offset = 0
            for video, a, b in self._parts:
                lo, hi = max(start - offset, 0), b - a if stop is None else min(stop - offset, b - a)
                if lo < hi:
                    yield from video.iter_frames(a + lo, a + hi)
                offset += b - a
                if stop is not None and offset >= stop:
                    return
        else:
            with self._source() as source:
                for frame in mp4.decode(source, start, stop):
                    frame.flags.writeable = False
                    yield frame

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start`` up to ``stop`` (default: the end), read-only, one at a time: a large
        clip is decoded as it is read, and decoding stops at ``stop``."""
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError(f"iter_frames takes non-negative bounds, got {start}, {stop}")
        if self._frames is None and self._keeps():
            self.frames  # noqa: B018 - a small clip: decode it once, keep it
        return self._stream(start, stop)

    @property
    def frames(self) -> np.ndarray:
        """The whole clip as one (T, H, W, 3) array. Kept when small; a large clip is decoded into a
        new array on every call, so ask for it only when every frame is needed at once."""
        if self._frames is not None:
            return self._frames
        frames = _read_only(self._collect())
        if frames.nbytes <= KEEP_DECODED_BYTES:
            self._frames = frames
        return frames

    def _collect(self) -> np.ndarray:
        """Every frame, decoded into one array allocated up front (no list of frames beside it)."""
        height, width = self._shape()
        expected = self._known_count() or 0
        out = np.empty((expected, height, width, 3), np.uint8)
        more: list[np.ndarray] = []  # frames past what the header promised (rare)
        count = 0
        for frame in self._stream():
            if frame.shape != (height, width, 3):
                raise MediaError(f"cannot decode video: frame {count} is shaped {frame.shape}, the clip {width}x{height}")
            if count < expected:
                out[count] = frame
            else:
                more.append(frame)
            count += 1
        if not count:
            raise MediaError("cannot decode video: no frames")
        if more:
            out = np.concatenate([out, np.stack(more)])
        elif count < expected:
            out = out[:count]
        _check_frames(out)
        self._count = count
        return out

    def frames_at(self, indices: Sequence[int]) -> list[Image]:
        """The frames at ``indices`` (negative ones count from the end), in the order asked, from
        one pass of the decoder that keeps only those frames. IndexError for an index out of range."""
        if self._frames is not None or self._keeps():
            frames = self.frames
            return [Image(frames[i]) for i in indices]
        count = self._count
        if count is not None:
            indices = [i + count if i < 0 else i for i in indices]
        wanted = {i for i in indices if i >= 0}
        depth = max((-i for i in indices if i < 0), default=0)  # unknown length: keep the last frames
        tail: deque[np.ndarray] = deque(maxlen=depth or 1)
        found: dict[int, np.ndarray] = {}
        first = 0 if depth else min(wanted, default=0)  # frames before it are decoded, never converted to RGB
        seen = first
        for seen, frame in enumerate(self._stream(first, None if depth else max(wanted, default=-1) + 1), first + 1):
            if seen - 1 in wanted:
                found[seen - 1] = frame
            if depth:
                tail.append(frame)
        if depth:
            self._count = seen
            for i in indices:
                if i < 0 and -i <= seen:
                    found[i] = tail[i]
        missing = [i for i in indices if i not in found]
        if missing:
            raise IndexError(f"frame {missing[0]} is out of range for a clip of {self.num_frames} frames")
        return [Image(found[i]) for i in indices]

    def frame(self, index: int) -> Image:
        """One frame by (possibly negative) index."""
        return self.frames_at([index])[0]

    def last_frame(self) -> Image:
        return self.frame(-1)

    def frame_index_at(self, fraction: float) -> int:
        """Index of the last frame of the prefix covering `fraction` of the clip."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        total = self.num_frames
        return max(0, min(total - 1, round(fraction * total) - 1))

    def frame_at(self, fraction: float) -> Image:
        return self.frame(self.frame_index_at(fraction))

    # -- encoded ------------------------------------------------------------------------------------
    @property
    def mp4(self) -> bytes:
        """The clip as H.264 MP4: the bytes it was made from or stored as, else encoded from its frames
        as they are read (and then kept)."""
        if self._mp4 is None:
            if self._opener is not None:
                with self._source() as source:
                    self._mp4 = source if isinstance(source, bytes) else source.read()
            else:
                height, width = self._shape()
                self._mp4 = mp4.encode(self.iter_frames(), self.fps, width, height)
        return self._mp4

    # -- editing --------------------------------------------------------------------------------------
    def trim(self, start: int, stop: int) -> Video:
        """frames[start:stop] with Python slice semantics; must be non-empty. Nothing is decoded or
        copied until the part is read."""
        if self._frames is not None or self._keeps():
            part = self.frames[start:stop]
            if part.shape[0] == 0:
                raise MediaError(f"trim [{start}:{stop}] of {self.num_frames} frames is empty")
            return Video(frames=part, fps=self.fps)
        a, b, _ = slice(start, stop).indices(self.num_frames)
        if b <= a:
            raise MediaError(f"trim [{start}:{stop}] of {self.num_frames} frames is empty")
        return Video._of_parts([(self, a, b)], self.fps)

    def resample(self, fps: float) -> Video:
        """The clip at another frame rate, same duration: each output frame is the source frame on
        screen at its time (frames dropped or repeated, never blended), and the last frame stays
        last. Only on explicit request: nothing in the framework changes a clip's rate silently."""
        if fps <= 0:
            raise MediaError(f"fps must be positive, got {fps}")
        if float(fps) == self.fps:
            return self
        count = max(1, round(self.num_frames * fps / self.fps))
        picks = np.minimum(np.floor(np.arange(count) * self.fps / fps + 1e-9).astype(int), self.num_frames - 1)
        picks[-1] = self.num_frames - 1  # the last frame stays: the next step starts where the clip ended
        if self._keeps():
            return Video(frames=self.frames[picks], fps=fps)
        height, width = self._shape()  # a large clip: one pass, filling the one array the result holds
        out = np.empty((count, height, width, 3), np.uint8)
        at = 0
        for index, frame in enumerate(self.iter_frames(0, int(picks[-1]) + 1)):
            while at < count and picks[at] == index:
                out[at] = frame
                at += 1
        return Video(frames=out, fps=fps)

    @staticmethod
    def concat(videos: Sequence[Video], *, fps: float | None = None) -> Video:
        """Join clips of equal size and frame rate. Clips of different rates are refused unless
        ``fps`` asks for every part to be :meth:`resample`-d to it (each keeps its duration).

        When every part is stored H.264 (it has MP4 bytes) and they can be joined as they are, the
        result is that join, and shows what the parts' bytes decode to; otherwise it is the parts'
        frames in order, read from the parts when needed (and encoded when its MP4 is asked for)."""
        if not videos:
            raise MediaError("cannot concat an empty list of videos")
        rates = sorted({v.fps for v in videos})
        if fps is not None:
            videos = [v.resample(fps) for v in videos]
        elif len(rates) > 1:
            raise MediaError(f"cannot concat clips of different frame rates ({', '.join(f'{r:g}' for r in rates)} fps) "
                             "without resampling: pass fps= to resample every clip to one rate")
        sizes = {(v.width, v.height) for v in videos}
        if len(sizes) > 1:
            names = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            raise MediaError(f"cannot concat videos of different sizes: {names}")
        fps = videos[0].fps
        if all((v._mp4 is not None or v._opener is not None) and v.fps == fps for v in videos):
            if len(videos) == 1 and videos[0].decodes_stored:
                return videos[0]
            # Every part is stored H.264: join the streams, so the result shows exactly the pixels
            # its parts showed (re-encoding would lose a little more) and costs no encode.
            joined = videos[0].mp4 if len(videos) == 1 else mp4.join([v.mp4 for v in videos])
            if joined is not None:
                width, height = sizes.pop()
                video = Video(mp4=joined, fps=fps, num_frames=sum(v.num_frames for v in videos), width=width, height=height)
                held = [v._frames for v in videos if v.decodes_stored and v._frames is not None]
                if len(held) == len(videos) and sum(f.nbytes for f in held) <= KEEP_DECODED_BYTES:
                    # Every part starts on an IDR picture, so the joined stream decodes to exactly
                    # the parts' decoded frames (tests/test_media.py checks it): no need to decode.
                    video._frames = _read_only(np.concatenate(held))
                return video
        return Video._of_parts([(v, 0, v.num_frames) for v in videos], fps)

    def splice(self, tail: Video, *, fps: float | None = None) -> Video:
        """Append a continuation whose first frame repeats our last frame (partial regeneration).
        Both must have one frame rate, unless ``fps`` resamples them to it (see :meth:`concat`)."""
        if tail.num_frames <= 1:
            return self if fps is None else self.resample(fps)
        return Video.concat([self, tail.trim(1, tail.num_frames)], fps=fps)

    @classmethod
    def open(cls, path: str | os.PathLike, *, fps: float | None = None) -> Video:
        """Read an MP4 from disk; fps defaults to the container's average rate."""
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise MediaError(f"cannot read video {path}: {exc}") from exc
        return cls(mp4=data, fps=fps if fps is not None else probe_fps(data))


def probe_fps(data: bytes) -> float:
    """Average frame rate recorded in an MP4's container; MediaError if it cannot be read."""
    rate = mp4.header(data)[3]
    if not rate:
        raise MediaError("cannot decode video: no frame rate")
    return float(rate)

def _thumbnail(image: Image, size: int) -> PILImage.Image:
    """Fit an image into a size x size box on white, keeping aspect ratio."""
    pil = PILImage.fromarray(image.array, mode="RGB")
    pil.thumbnail((size, size))
    box = PILImage.new("RGB", (size, size), "white")
    box.paste(pil, ((size - pil.width) // 2, (size - pil.height) // 2))
    return box


def _caption_colour(text: str) -> tuple[int, int, int]:
    """Red for rejections/failures, green for acceptances, black otherwise."""
    lowered = text.lower()
    if "reject" in lowered or "failed" in lowered:
        return (200, 0, 0)
    if "accept" in lowered:
        return (0, 140, 0)
    return (0, 0, 0)


def contact_sheet(rows: Sequence[tuple[Image, Image, str]], *, thumb: int = 192) -> Image:
    """One row per step: start thumbnail, end thumbnail, caption; for humans reviewing a run."""
    font = ImageFont.load_default()
    if not rows:
        sheet = PILImage.new("RGB", (max(2 * thumb, 160), max(thumb // 2, 32)), "white")
        ImageDraw.Draw(sheet).text((_PAD, _PAD), "no accepted steps", fill=(0, 0, 0), font=font)
        return Image(np.asarray(_even(sheet)))
    width = 2 * thumb + _CAPTION_WIDTH
    sheet = PILImage.new("RGB", (width, thumb * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (start, end, caption) in enumerate(rows):
        top = row * thumb
        sheet.paste(_thumbnail(start, thumb), (0, top))
        sheet.paste(_thumbnail(end, thumb), (thumb, top))
        text = _fit_caption(draw, caption, font, _CAPTION_WIDTH - 2 * _PAD, thumb - 2 * _PAD)
        draw.text((2 * thumb + _PAD, top + _PAD), text, fill=_caption_colour(caption), font=font)
    return Image(np.asarray(_even(sheet)))


def _fit_caption(draw: ImageDraw.ImageDraw, caption: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
                 width: int, height: int) -> str:
    """The caption word-wrapped to ``width`` pixels, and cut with an ellipsis to the lines that fit in
    ``height``, so no text runs off the sheet's right edge or into the next row."""
    lines: list[str] = []
    for paragraph in caption.splitlines():
        line = ""
        for word in paragraph.split():
            while draw.textlength(word, font=font) > width:  # a word wider than the column: break it
                cut = max(1, next(i for i in range(len(word), 0, -1) if draw.textlength(word[:i], font=font) <= width))
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if draw.textlength(candidate, font=font) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    spacing = 4  # PIL's default multiline spacing
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (10, 2)
    fits = max(1, (height + spacing) // (ascent + descent + spacing))
    if len(lines) > fits:
        lines = lines[:fits]
        while lines[-1] and draw.textlength(lines[-1] + "...", font=font) > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] += "..."
    return "\n".join(lines)


def _even(pil: PILImage.Image) -> PILImage.Image:
    """Crop to even width and height so the sheet can also be video-encoded."""
    return pil.crop((0, 0, pil.width - pil.width % 2, pil.height - pil.height % 2))
