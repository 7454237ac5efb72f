"""Tests for collabvr.media: image/video codecs and clip editing semantics."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collabvr import media, mp4
from collabvr.media import Image, MediaError, Video, contact_sheet


def blocks(t: int = 6, h: int = 64, w: int = 96) -> np.ndarray:
    """A clip of large flat colour blocks that change per frame (compresses nearly losslessly)."""
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        frames[i, : h // 2, : w // 2] = (200, 30 + 20 * i, 40)
        frames[i, : h // 2, w // 2 :] = (20, 180, 60 + 10 * i)
        frames[i, h // 2 :, :] = (90 + 10 * i, 90, 220)
    return frames


def numbered(t: int, h: int = 8, w: int = 8) -> Video:
    """A clip whose frame i is filled with value i, so slices are easy to check."""
    frames = np.stack([np.full((h, w, 3), i, dtype=np.uint8) for i in range(t)])
    return Video(frames=frames, fps=10)


def test_png_round_trip_is_lossless() -> None:
    rng = np.random.default_rng(0)
    image = Image(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    back = Image.from_png(image.to_png())
    assert np.array_equal(back.array, image.array)
    assert (back.width, back.height) == (23, 17)


def test_png_encoding_is_deterministic() -> None:
    array = blocks(1)[0]
    assert Image(array).to_png() == Image(array.copy()).to_png()


def test_image_rejects_wrong_shape_or_dtype() -> None:
    with pytest.raises(MediaError):
        Image(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(MediaError):
        Image(np.zeros((4, 4, 3), dtype=np.float32))


def test_mp4_round_trip_keeps_shape_fps_and_is_close() -> None:
    frames = blocks()
    video = Video(frames=frames, fps=12.5)
    back = Video(mp4=video.mp4, fps=video.fps)
    assert back.frames.shape == frames.shape
    assert back.fps == 12.5
    assert back.seconds == pytest.approx(6 / 12.5)
    error = np.abs(back.frames.astype(int) - frames.astype(int)).mean()
    assert error < 3


def moving_texture(t: int = 12, size: int = 128) -> np.ndarray:
    """Coarse random texture sliding sideways: motion that makes x264's SIMD paths disagree."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    return np.stack([np.roll(tile, 3 * i, axis=1) for i in range(t)])


def test_mp4_encoding_is_deterministic() -> None:
    for frames in (blocks(), moving_texture()):
        assert Video(frames=frames, fps=24).mp4 == Video(frames=frames.copy(), fps=24).mp4


def test_mp4_bytes_do_not_depend_on_the_process_heap() -> None:
    # MALLOC_PERTURB_ fills every malloc'd and freed block with a byte, so a read of uninitialised
    # memory anywhere in the encoder would change the output between these processes.
    import subprocess
    import sys

    script = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]); from test_media import blocks, moving_texture; "
        "from collabvr.media import Video; "
        "print(hashlib.sha256(Video(frames=blocks(), fps=24).mp4 + Video(frames=moving_texture(), fps=24).mp4).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True, text=True,
                       check=True, timeout=120, env={**os.environ, "MALLOC_PERTURB_": perturb}).stdout
        for perturb in ("0", "85", "170")
    }
    assert len(digests) == 1


@pytest.mark.skipif(not mp4._X264_PARAMS, reason="x264 is pinned to SSE2 on x86-64 only")
def test_mp4_bytes_match_x264_c_reference_on_every_x86_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # x264's AVX2 code rounds differently from its C code on this clip; the SSE2 pin must not.
    frames = moving_texture()
    ours = Video(frames=frames, fps=24).mp4
    monkeypatch.setattr(mp4, "_X264_PARAMS", {"x264-params": "asm=0"})  # x264's plain C code
    assert Video(frames=frames, fps=24).mp4 == ours


def test_video_open_reads_file_and_fps(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(Video(frames=blocks(), fps=8).mp4)
    video = Video.open(path)
    assert video.num_frames == 6
    assert video.fps == pytest.approx(8)
    with pytest.raises(MediaError):
        Video.open(tmp_path / "missing.mp4")


def test_video_requires_exactly_one_source() -> None:
    with pytest.raises(ValueError):
        Video(fps=10)
    with pytest.raises(ValueError):
        Video(frames=blocks(), mp4=b"x", fps=10)


def test_frame_index_at_fractions_and_last_frame() -> None:
    video = numbered(10)
    assert video.frame_index_at(0) == 0
    assert video.frame_index_at(0.5) == 4
    assert video.frame_index_at(1) == 9
    assert video.frame_at(0.5).array[0, 0, 0] == 4
    assert video.last_frame().array[0, 0, 0] == 9
    assert video.frame(-2).array[0, 0, 0] == 8
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError):
            video.frame_index_at(bad)


@settings(max_examples=50, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=40),
    a=st.floats(min_value=0, max_value=1),
    b=st.floats(min_value=0, max_value=1),
)
def test_frame_index_at_is_monotone_and_in_range(total: int, a: float, b: float) -> None:
    video = numbered(total, 2, 2)
    low, high = sorted((a, b))
    i, j = video.frame_index_at(low), video.frame_index_at(high)
    assert 0 <= i <= j <= total - 1


def test_trim_uses_slice_semantics_and_rejects_empty() -> None:
    video = numbered(10)
    part = video.trim(2, -3)
    assert [int(f[0, 0, 0]) for f in part.frames] == [2, 3, 4, 5, 6]
    assert part.fps == video.fps
    with pytest.raises(MediaError):
        video.trim(5, 5)


def test_concat_counts_frames_and_rejects_size_mismatch() -> None:
    joined = Video.concat([numbered(3), Video(frames=blocks(4, 8, 8), fps=10)])
    assert joined.num_frames == 7
    assert joined.fps == 10
    with pytest.raises(MediaError, match="8x8"):
        Video.concat([numbered(3), numbered(3, 8, 10)])
    with pytest.raises(MediaError):
        Video.concat([])


def test_clips_of_different_frame_rates_are_joined_only_by_an_explicit_resample() -> None:
    slow, fast = numbered(4), Video(frames=numbered(6).frames, fps=30)  # 0.4 s at 10 fps, 0.2 s at 30 fps
    with pytest.raises(MediaError, match="different frame rates \\(10, 30 fps\\).*pass fps="):
        Video.concat([slow, fast])
    with pytest.raises(MediaError, match="different frame rates"):
        slow.splice(fast)
    joined = Video.concat([slow, fast], fps=10)
    assert joined.fps == 10 and joined.num_frames == 6 and joined.seconds == pytest.approx(0.6)
    # each part kept its duration: the fast clip's frame 0 (on screen at 0 s) and its last frame
    assert [int(f[0, 0, 0]) for f in joined.frames] == [0, 1, 2, 3, 0, 5]
    up = slow.resample(20)
    assert up.seconds == pytest.approx(slow.seconds) and [int(f[0, 0, 0]) for f in up.frames] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert slow.resample(10) is slow


def moving(t: int, seed: int, size: int = 64) -> np.ndarray:
    """Textured frames with a moving square: P and B frames with real residuals, lossy at crf 8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames = np.repeat(base[None], t, axis=0)
    for i in range(t):
        frames[i, 8 + 2 * i : 24 + 2 * i, 10:26] = (250, 20, 20)
    return frames


def packets(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def test_concat_of_stored_clips_joins_their_streams_and_shows_exactly_their_pixels() -> None:
    parts = [Video(mp4=Video(frames=moving(t, seed), fps=8).mp4, fps=8) for t, seed in [(5, 0), (9, 1), (3, 2), (12, 3)]]
    joined = Video.concat(parts)
    assert joined.decodes_stored
    # a remux: the parts' compressed pictures, in order, none re-encoded
    assert packets(joined.mp4) == [p for part in parts for p in packets(part.mp4)]
    # so what the stored bytes decode to is exactly the parts' decoded frames (no generation loss)
    expected = np.concatenate([part.frames for part in parts])
    assert np.array_equal(np.stack(list(mp4.decode(joined.mp4))), expected)
    assert np.array_equal(joined.frames, expected)
    again = Video(mp4=joined.mp4, fps=8)
    assert (again.num_frames, media.probe_fps(joined.mp4)) == (29, 8.0)


def test_concat_of_one_stored_clip_keeps_its_bytes() -> None:
    clip = Video(mp4=Video(frames=moving(4, 0), fps=8).mp4, fps=8)
    assert Video.concat([clip]).mp4 == clip.mp4


def test_concat_falls_back_to_frames_when_the_streams_cannot_be_joined() -> None:
    short = Video(mp4=Video(frames=moving(1, 0), fps=8).mp4, fps=8)  # no B-frame delay
    long = Video(mp4=Video(frames=moving(6, 1), fps=8).mp4, fps=8)  # two frames of delay after it
    assert mp4.join([short.mp4, long.mp4]) is None
    for parts in ([short, long], [long, Video(frames=moving(3, 2), fps=8)]):
        joined = Video.concat(parts)
        assert not joined.decodes_stored  # frames joined in memory; the MP4 is encoded from them
        assert np.array_equal(joined.frames, np.concatenate([p.frames for p in parts]))
        assert joined.fps == 8


def test_only_an_idr_picture_starts_a_joinable_part() -> None:
    data = Video(frames=moving(6, 0), fps=8).mp4
    with av.open(io.BytesIO(data)) as container:
        avcc = bytes(container.streams.video[0].codec_context.extradata)
    first, *rest = packets(data)
    assert mp4._starts_fresh(first, avcc)
    assert not any(mp4._starts_fresh(p, avcc) for p in rest)
    assert not mp4._starts_fresh(first, b"")


def test_splice_drops_the_duplicated_first_frame() -> None:
    head = numbered(5)
    tail = Video(frames=numbered(8).frames[4:], fps=10)  # starts with head's last frame (4)
    spliced = head.splice(tail)
    assert [int(f[0, 0, 0]) for f in spliced.frames] == list(range(8))
    assert head.splice(numbered(1)) is head


def test_unreadable_image_path_and_garbage_png_give_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot read image"):
        Image.open(tmp_path / "nope.png")
    with pytest.raises(MediaError):
        Image.from_png(b"not a png at all")


def test_image_open_reads_file(tmp_path: Path) -> None:
    image = Image(blocks(1)[0])
    path = tmp_path / "x.png"
    path.write_bytes(image.to_png())
    assert np.array_equal(Image.open(path).array, image.array)


def test_garbage_mp4_gives_media_error_on_frames() -> None:
    video = Video(mp4=b"\x00garbage" * 100, fps=10)
    with pytest.raises(MediaError, match="cannot decode video"):
        _ = video.frames


def test_odd_size_gives_media_error_naming_size() -> None:
    with pytest.raises(MediaError, match="9x8"):
        Video(frames=np.zeros((2, 8, 9, 3), dtype=np.uint8), fps=10)


def test_contact_sheet_has_one_thumb_row_per_step_and_even_size() -> None:
    a, b = Image(blocks(1, 64, 96)[0]), Image(blocks(1, 40, 40)[0])
    sheet = contact_sheet([(a, b, "step 1 - accepted (2 attempts)"), (b, a, "step 2 - rejected")], thumb=64)
    assert sheet.height == 128
    assert sheet.width >= 128
    assert sheet.width % 2 == 0 and sheet.height % 2 == 0


def test_contact_sheet_without_rows_is_a_small_even_image() -> None:
    sheet = contact_sheet([])
    assert 0 < sheet.height <= 192 and 0 < sheet.width
    assert sheet.width % 2 == 0 and sheet.height % 2 == 0
    assert (sheet.array < 128).any()  # the "no accepted steps" text is drawn


# -- handles and streaming: pixels read when, and as far as, a reader needs them ------------------------


class Opener:
    """A store's opener: counts how often the stored bytes are read; ``as_file`` hands a file object."""

    def __init__(self, data: bytes, *, as_file: bool = False) -> None:
        self.data, self.as_file, self.opened, self.files = data, as_file, 0, []

    def __call__(self) -> bytes | io.BytesIO:
        self.opened += 1
        if not self.as_file:
            return self.data
        self.files.append(io.BytesIO(self.data))
        return self.files[-1]


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips of a test's size count as large: never kept decoded, always streamed."""
    monkeypatch.setattr(media, "KEEP_DECODED_BYTES", 1024)


def test_a_handle_knows_its_size_from_its_metadata_without_reading_the_store() -> None:
    opener = Opener(Video(frames=moving(9, 0), fps=8).mp4)
    handle = Video(opener=opener, fps=8, num_frames=9, width=64, height=64)
    assert (handle.num_frames, handle.width, handle.height, handle.seconds) == (9, 64, 64, 9 / 8)
    assert opener.opened == 0 and handle.decodes_stored


@pytest.mark.parametrize("as_file", [False, True], ids=["bytes", "file"])
def test_a_large_handle_reads_the_frames_asked_for_with_the_pixels_of_a_whole_decode(large, as_file: bool) -> None:
    data = Video(frames=moving(12, 1), fps=8).mp4
    whole = np.stack(list(mp4.decode(data)))
    opener = Opener(data, as_file=as_file)
    handle = Video(opener=opener, fps=8, num_frames=12, width=64, height=64)
    picked = handle.frames_at([0, 5, -1, 5])
    assert [np.array_equal(p.array, whole[i]) for p, i in zip(picked, [0, 5, 11, 5], strict=True)] == [True] * 4
    assert np.array_equal(handle.last_frame().array, whole[-1])
    assert np.array_equal(np.stack(list(handle.iter_frames(3, 7))), whole[3:7])
    assert handle._frames is None and handle.nbytes == 0  # nothing kept: every read went to the store
    assert all(f.closed for f in opener.files)
    with pytest.raises(IndexError, match="out of range"):
        handle.frame(12)


def test_a_small_clip_is_decoded_once_and_kept() -> None:
    opener = Opener(Video(frames=moving(6, 2), fps=8).mp4)
    handle = Video(opener=opener, fps=8, num_frames=6, width=64, height=64)
    handle.last_frame()
    handle.frames_at([0, 1])
    list(handle.iter_frames())
    assert opener.opened == 1 and handle.nbytes >= 6 * 64 * 64 * 3


def test_a_window_is_decoded_without_learning_the_clips_length(large) -> None:
    data = Video(frames=moving(12, 3), fps=8).mp4
    whole = np.stack(list(mp4.decode(data)))
    assert np.array_equal(np.stack(list(mp4.decode(data, 2, 4))), whole[2:4])
    handle = Video(mp4=data, fps=8)
    assert np.array_equal(handle.frame(1).array, whole[1]) and handle._count is None  # decoding stopped at frame 1


def test_a_trim_and_a_join_of_large_clips_copy_nothing_and_encode_what_the_old_copies_did(large) -> None:
    a = Video(mp4=Video(frames=moving(10, 4), fps=8).mp4, fps=8)
    b = Video(frames=moving(5, 5), fps=8)  # not stored: the parts cannot be joined as bytes
    trimmed = a.trim(2, -3)
    joined = Video.concat([trimmed, b])
    assert trimmed._parts and joined._parts and joined.nbytes == 0
    assert (trimmed.num_frames, joined.num_frames) == (5, 10)
    whole = np.stack(list(mp4.decode(a.mp4)))
    expected = np.concatenate([whole[2:7], b.frames])
    assert np.array_equal(joined.frames, expected)
    # the same bytes as the old code, which concatenated the decoded frames and encoded them
    assert joined.mp4 == mp4.encode(expected, 8, 64, 64)
    assert joined.trim(4, 7).mp4 == mp4.encode(expected[4:7], 8, 64, 64)


def test_stored_parts_still_join_as_bytes_and_the_join_knows_its_length(large) -> None:
    parts = [Video(opener=Opener(Video(frames=moving(t, t), fps=8).mp4), fps=8, num_frames=t, width=64, height=64)
             for t in (5, 9)]
    joined = Video.concat(parts)
    assert joined.decodes_stored and joined.num_frames == 14 and joined._frames is None
    assert packets(joined.mp4) == [p for part in parts for p in packets(part.mp4)]
    assert Video.concat(parts[:1]) is parts[0]


def test_an_mp4_without_a_recorded_length_is_counted_by_decoding_it(large) -> None:
    data = Video(frames=moving(7, 6), fps=8).mp4
    assert Video(mp4=data, fps=8).num_frames == 7
    with pytest.raises(MediaError, match="cannot decode video"):
        _ = Video(mp4=data[: len(data) // 3], fps=8).num_frames


def test_a_handle_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Video(mp4=b"x", opener=lambda: b"x", fps=8)


def test_a_handle_pickles_as_its_bytes_and_a_trim_with_its_parts(large) -> None:
    data = Video(frames=moving(8, 7), fps=8).mp4
    handle = Video(opener=Opener(data), fps=8, num_frames=8, width=64, height=64)
    back = pickle.loads(pickle.dumps(handle))
    assert back.mp4 == data and back.num_frames == 8 and back._opener is None
    part = pickle.loads(pickle.dumps(handle.trim(2, 5)))
    assert np.array_equal(part.frames, np.stack(list(mp4.decode(data)))[2:5])


def test_resampling_a_large_clip_reads_it_once_and_picks_the_same_frames(large) -> None:
    data = Video(frames=moving(12, 8), fps=8).mp4
    whole = np.stack(list(mp4.decode(data)))
    handle = Video(opener=Opener(data), fps=8, num_frames=12, width=64, height=64)
    for fps in (3, 20):
        ours = handle.resample(fps)
        assert np.array_equal(ours.frames, Video(frames=whole, fps=8).resample(fps).frames)
        assert ours.seconds == pytest.approx(handle.seconds, abs=1 / fps)
