"""Tests for collabvr.artifacts: content addressing, verification and concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from collabvr.artifacts import ArtifactError, ArtifactRef, ArtifactStore, as_ref
from collabvr.media import Image, Video


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def image(value: int) -> Image:
    return Image(np.full((6, 8, 3), value, dtype=np.uint8))


def test_store_creates_root_lazily(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ArtifactStore(root)
    assert not root.exists()
    store.put_image(image(1))
    assert root.is_dir()


def test_same_content_gives_same_ref_and_one_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first, second = store.put_image(image(1)), store.put_image(image(1))
    assert first == second
    assert stored_files(tmp_path) == [store.path(first)]
    assert first.uri == f"file://{tmp_path / first.sha256[:2] / first.sha256}.png"  # absolute: means the same anywhere


def test_different_content_gives_different_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    a, b = store.put_image(image(1)), store.put_image(image(2))
    assert a.sha256 != b.sha256
    assert len(stored_files(tmp_path)) == 2


def test_image_loads_back_equal(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_image(image(7))
    assert (ref.mime, ref.width, ref.height) == ("image/png", 8, 6)
    assert np.array_equal(store.load_image(ref).array, image(7).array)


def test_video_loads_back_with_metadata(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    video = Video(frames=np.full((5, 16, 24, 3), 120, dtype=np.uint8), fps=10)
    ref = store.put_video(video)
    assert (ref.mime, ref.width, ref.height, ref.frames, ref.fps, ref.seconds) == ("video/mp4", 24, 16, 5, 10.0, 0.5)
    back = store.load_video(ref)
    assert back.mp4 == video.mp4
    assert back.frames.shape == (5, 16, 24, 3)


def test_corrupt_file_on_disk_raises_artifact_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_image(image(3))
    store.path(ref).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="corrupt"):
        store.get_bytes(ref)


def test_missing_file_raises_artifact_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_image(image(3))
    store.path(ref).unlink()
    assert not store.exists(ref)
    with pytest.raises(ArtifactError):
        store.load_image(ref)
    assert issubclass(ArtifactError, LookupError)


def test_concurrent_put_of_same_bytes_from_8_threads(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data = Image(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).to_png()
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(pool.map(lambda _: store.put_bytes(data, mime="image/png", width=64, height=64), range(8)))
    assert len(set(refs)) == 1
    assert stored_files(tmp_path) == [store.path(refs[0])]
    assert store.get_bytes(refs[0]) == data


def test_dict_form_of_ref_is_accepted(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.put_image(image(4))
    as_dict = ref.model_dump(mode="json")
    assert as_ref(as_dict) == ref
    assert store.exists(as_dict)
    assert store.path(as_dict) == store.path(ref)
    assert np.array_equal(store.load_image(as_dict).array, image(4).array)


def test_ref_json_is_small(tmp_path: Path) -> None:
    video = Video(frames=np.zeros((3, 8, 8, 3), dtype=np.uint8), fps=24)
    ref = ArtifactStore(tmp_path).put_video(video)
    assert len(ref.model_dump_json()) < 300


def test_ref_is_frozen(tmp_path: Path) -> None:
    ref = ArtifactStore(tmp_path).put_image(image(5))
    with pytest.raises(ValidationError):
        ref.width = 1  # type: ignore[misc]
    assert isinstance(ref, ArtifactRef)


def test_export_writes_copy_and_creates_parents(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    ref = store.put_image(image(6))
    dest = store.export(ref, tmp_path / "out" / "run" / "final.png")
    assert dest.read_bytes() == store.get_bytes(ref)
    again = store.export(ref, dest)
    assert again.read_bytes() == store.get_bytes(ref)


def test_decoded_clips_of_every_store_share_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep opens a store per run directory; their remembered clips must not add up store by store."""
    from collabvr import artifacts

    clip_bytes = 8 * 32 * 32 * 3
    budget = artifacts._DecodedClips(limit=3 * clip_bytes + 3 * 4096)  # about three clips, with their mp4s
    monkeypatch.setattr(artifacts, "_DECODED", budget)
    rng = np.random.default_rng(0)
    made = []
    for i in range(4):
        store = ArtifactStore(tmp_path / f"run{i}" / "artifacts")
        for _ in range(2):
            video = Video(frames=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), fps=8)
            made.append((store, store.put_video(video)))
    assert budget._held <= budget.limit
    assert len(budget._clips) <= 3
    newest_store, newest = made[-1]
    assert newest_store.load_video(newest) is budget.get((newest_store.url, newest.sha256))  # served from memory
    oldest_store, oldest = made[0]
    assert budget.get((oldest_store.url, oldest.sha256)) is None  # dropped, read again from its store
    assert oldest_store.load_video(oldest).num_frames == 8
