"""H.264 MP4 on PyAV, one frame at a time: encode frames as they come, decode them as they are read,
join clips without re-encoding, and read a clip's header.

Nothing here holds a whole clip of pixels: a 12-s clip at 1024x1024 is 604 MB of RGB, and a bench
runs several at once. Frames are numpy uint8 arrays shaped (H, W, 3) RGB.
"""

from __future__ import annotations

import io
import platform
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

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

Source = bytes | BinaryIO  # encoded MP4: its bytes, or a readable, seekable binary file


class MediaError(ValueError):
    """Unreadable or invalid media; the message names the problem."""


def _container(source: Source) -> av.container.InputContainer:
    return av.open(io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source, mode="r")


def encode(frames: Iterable[np.ndarray], fps: float, width: int, height: int) -> bytes:
    """Encode frames as H.264 MP4 as they come, single-threaded so the bytes are deterministic.

    Only the frame being encoded and x264's own lookahead are held, never the clip. The bytes are
    returned whole: the MP4 muxer writes the header after the last frame, seeking back to do so."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width = int(width)
        stream.height = int(height)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": _CRF, "preset": _PRESET, **_X264_PARAMS}
        stream.codec_context.thread_count = 1
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def decode(source: Source, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Frames ``start`` up to ``stop`` of the first video stream as RGB, decoded one at a time.

    Decoding stops at ``stop``; frames before ``start`` are decoded (H.264 needs them) but never
    converted to RGB. MediaError on unreadable media."""
    try:
        with _container(source) as container:
            if not container.streams.video:
                raise MediaError("cannot decode video: no video stream")
            stream = container.streams.video[0]
            # One thread for the decoder and one for swscale. Clips are short and small, and a bench
            # decodes many at once: frame threading cost about 40% more CPU per clip, and swscale's
            # default spreads each frame over a new thread pool. The pixels are the same either way.
            stream.codec_context.thread_count = 1
            for index, frame in enumerate(container.decode(stream)):
                if stop is not None and index >= stop:
                    return
                if index >= start:
                    yield frame.to_ndarray(format="rgb24", threads=1)
    except AV_ERRORS as exc:
        raise MediaError(f"cannot decode video: {exc}") from exc


def header(source: Source) -> tuple[int, int, int, float]:
    """(frames, height, width, average fps) as the container records them, without decoding a
    picture; frames is 0 when the container does not say. MediaError if it cannot be read."""
    try:
        with _container(source) as container:
            if not container.streams.video:
                raise MediaError("cannot decode video: no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            return int(stream.frames or 0), int(ctx.height), int(ctx.width), float(stream.average_rate or 0)
    except AV_ERRORS as exc:
        raise MediaError(f"cannot decode video: {exc}") from exc


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


def join(parts: Sequence[bytes]) -> bytes | None:
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
