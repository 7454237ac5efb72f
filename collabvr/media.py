"""Video and image I/O on PyAV and PIL.

Frames are numpy uint8 arrays shaped (H, W, 3) RGB; videos are (T, H, W, 3).
"""

from __future__ import annotations

import io
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

# Near-lossless: trimming and splicing (partial regeneration) re-encode frames that were already
# encoded, and at crf 16 small details faded after three generations (tests/test_families.py).
_CRF = "8"
_PRESET = "veryfast"
# x264 picks its SIMD code by CPU, and its AVX2/AVX-512 paths round differently from its SSE2 and C
# code: forcing each path on one machine gave different bytes for the same frames, so clips depended
# on the CPU they were made on. Every x86-64 CPU has SSE2, whose output matches x264's C reference
# (tests/test_media.py), so pinning it makes the stored bytes the same on every x86-64 machine.
# Elsewhere (ARM) x264 keeps its own choice. (On the CI machine two encodes in one process once
# differed, in a later frame's decisions; not reproduced here, and not known to be the same cause.)
_X264_PARAMS = {"x264-params": "asm=SSE2"} if platform.machine().lower() in {"x86_64", "amd64"} else {}
# What PyAV raises on unreadable or truncated media.
AV_ERRORS = (av.error.FFmpegError, OSError, EOFError, IndexError)
_CAPTION_WIDTH = 320
_PAD = 8


class MediaError(ValueError):
    """Unreadable or invalid media; the message names the problem."""


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
    height, width = frames.shape[1:3]
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


def _encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """Encode frames as H.264 MP4, single-threaded so the bytes are deterministic."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width = int(frames.shape[2])
        stream.height = int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": _CRF, "preset": _PRESET, **_X264_PARAMS}
        stream.codec_context.thread_count = 1
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def _starts_fresh(packet: bytes, avcc: bytes) -> bool:
    """Whether an H.264 MP4 packet holds an IDR picture: decoding restarts there, so what follows
    never refers to pictures before it (a plain keyframe in an open GOP may)."""
    if len(avcc) < 5 or avcc[0] != 1:
        return False
    size, i = (avcc[4] & 3) + 1, 0
    while i + size <= len(packet):
        length = int.from_bytes(packet[i : i + size], "big")
        i += size
        if length == 0 or i + length > len(packet):
            return False
        if packet[i] & 0x1F == 5:
            return True
        i += length
    return False


def _join_mp4(parts: Sequence[bytes]) -> bytes | None:
    """Join H.264 MP4 clips into one without re-encoding (a remux), or None when they cannot be.

    Joining never re-encodes, so the joined clip decodes to exactly the frames of its parts: no
    generation loss, and a fraction of the CPU of an encode. That needs parts with the same codec
    parameters (this module's clips all have them), each starting on an IDR picture, and decoding
    times that keep rising once shifted to follow on (a part of one or two frames has less B-frame
    delay than a longer one after it would need).
    """
    out = io.BytesIO()
    try:
        with av.open(out, mode="w", format="mp4") as container:
            target = None
            first: tuple = ()
            offset = 0  # where this part's presentation starts, in the stream's time base
            last_dts: int | None = None
            for data in parts:
                with av.open(io.BytesIO(data), mode="r") as source:
                    if len(source.streams.video) != 1 or len(source.streams) != 1:
                        return None
                    stream = source.streams.video[0]
                    ctx = stream.codec_context
                    avcc = bytes(ctx.extradata or b"")  # SPS, PPS and the NAL length size
                    params = (ctx.name, avcc, ctx.width, ctx.height, ctx.pix_fmt, stream.time_base)
                    if target is None:
                        if ctx.name != "h264" or not avcc:
                            return None
                        target, first = container.add_stream_from_template(stream), params
                    elif params != first:
                        return None
                    end, opening = offset, True
                    for packet in source.demux(stream):
                        if packet.dts is None:  # the demuxer's empty flush packet
                            continue
                        if packet.pts is None or (opening and not _starts_fresh(bytes(packet), avcc)):
                            return None
                        opening = False
                        packet.pts += offset
                        packet.dts += offset
                        if last_dts is not None and packet.dts <= last_dts:
                            return None  # more B-frame delay than the part before: timing would break
                        last_dts = packet.dts
                        end = max(end, packet.pts + packet.duration)
                        packet.stream = target
                        container.mux(packet)
                    if opening:  # a part without a single packet
                        return None
                    offset = end
    except (*AV_ERRORS, ValueError):
        return None
    return out.getvalue()


def _decode_mp4(data: bytes) -> np.ndarray:
    """Decode every frame of the first video stream as RGB."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise MediaError("cannot decode video: no video stream")
            stream = container.streams.video[0]
            # One thread for the decoder and one for swscale. Clips are short and small, and a bench
            # decodes many at once: frame threading cost about 40% more CPU per clip, and swscale's
            # default spreads each frame over a new thread pool. The pixels are the same either way.
            stream.codec_context.thread_count = 1
            frames = [frame.to_ndarray(format="rgb24", threads=1) for frame in container.decode(stream)]
    except AV_ERRORS as exc:
        raise MediaError(f"cannot decode video: {exc}") from exc
    if not frames:
        raise MediaError("cannot decode video: no frames")
    return np.stack(frames)


def _read_only(frames: np.ndarray) -> np.ndarray:
    """Frames are shared through caches, so nobody may write to them in place."""
    view = frames.view()
    view.flags.writeable = False
    return view


class Video:
    """An RGB clip that is either decoded frames or encoded MP4 bytes; converts lazily and caches both."""

    def __init__(self, *, frames: np.ndarray | None = None, mp4: bytes | None = None, fps: float) -> None:
        if (frames is None) == (mp4 is None):
            raise ValueError("Video needs exactly one of frames= or mp4=")
        if fps <= 0:
            raise MediaError(f"fps must be positive, got {fps}")
        if frames is not None:
            _check_frames(frames)
            frames = _read_only(frames)
        self.fps = float(fps)
        self._frames = frames
        self._mp4 = mp4
        self.decodes_stored = mp4 is not None  # frames (once read) are exactly what the MP4 decodes to

    @property
    def frames(self) -> np.ndarray:
        if self._frames is None:
            assert self._mp4 is not None
            frames = _decode_mp4(self._mp4)
            _check_frames(frames)
            self._frames = _read_only(frames)
        return self._frames

    @property
    def mp4(self) -> bytes:
        if self._mp4 is None:
            self._mp4 = _encode_mp4(self.frames, self.fps)
        return self._mp4

    @property
    def nbytes(self) -> int:
        """Memory held now: decoded frames and/or encoded bytes, without decoding anything."""
        held = self._frames.nbytes if self._frames is not None else 0
        return held + (len(self._mp4) if self._mp4 is not None else 0)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    def frame(self, index: int) -> Image:
        """One frame by (possibly negative) index."""
        return Image(self.frames[index])

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

    def trim(self, start: int, stop: int) -> Video:
        """frames[start:stop] with Python slice semantics; must be non-empty."""
        part = self.frames[start:stop]
        if part.shape[0] == 0:
            raise MediaError(f"trim [{start}:{stop}] of {self.num_frames} frames is empty")
        return Video(frames=part, fps=self.fps)

    @staticmethod
    def concat(videos: Sequence[Video]) -> Video:
        """Join clips of equal size; the result takes the first clip's fps.

        When every part is stored H.264 (it has MP4 bytes) and they can be joined as they are, the
        result is that join, and shows what the parts' bytes decode to; otherwise it is the parts'
        frames, concatenated (and encoded when its MP4 is asked for)."""
        if not videos:
            raise MediaError("cannot concat an empty list of videos")
        sizes = {(v.width, v.height) for v in videos}
        if len(sizes) > 1:
            names = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            raise MediaError(f"cannot concat videos of different sizes: {names}")
        fps = videos[0].fps
        encoded = [v._mp4 for v in videos if v._mp4 is not None and v.fps == fps]
        if len(encoded) == len(videos):
            # Every part is stored H.264: join the streams, so the result shows exactly the pixels
            # its parts showed (re-encoding would lose a little more) and costs no encode.
            joined = encoded[0] if len(encoded) == 1 else _join_mp4(encoded)
            if joined is not None:
                video = Video(mp4=joined, fps=fps)
                if all(v.decodes_stored for v in videos):
                    # Every part starts on an IDR picture, so the joined stream decodes to exactly
                    # the parts' decoded frames (tests/test_media.py checks it): no need to decode.
                    video._frames = _read_only(np.concatenate([v.frames for v in videos]))
                return video
        return Video(frames=np.concatenate([v.frames for v in videos]), fps=fps)

    def splice(self, tail: Video) -> Video:
        """Append a continuation whose first frame repeats our last frame (partial regeneration)."""
        if tail.num_frames <= 1:
            return self
        return Video.concat([self, tail.trim(1, tail.num_frames)])

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
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            rate = container.streams.video[0].average_rate
    except AV_ERRORS as exc:
        raise MediaError(f"cannot decode video: {exc}") from exc
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
