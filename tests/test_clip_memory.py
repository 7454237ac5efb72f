"""Copies of a clip alive at once while it is encoded, stored, decoded, scored and shown to a VLM.

A backend hands its frames over once; from there every step works a frame at a time (issue 23).
Two counters, added up: tracemalloc sees numpy's buffers (a step's peak, divided by the clip's size,
is the whole-clip copies it allocated), and the frames the decoder hands out, which live in PyAV's
own buffers where tracemalloc cannot see them, are counted while alive (the most alive at once,
divided by the clip's length). The bound is on copies, never on time or on the machine's memory.
The clips here count as large (``KEEP_DECODED_BYTES`` lowered to 1 KB), so nothing is kept decoded,
as for a 1024x1024 clip in a real bench.
"""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collabvr import media, mp4
from collabvr.artifacts import ArtifactStore, ref_json
from collabvr.backends.api import sample_frames
from collabvr.backends.google import GeminiVLM
from collabvr.backends.openai import OpenAIVLM
from collabvr.backends.sim import make as make_sim
from collabvr.backends.sim.families import FAMILIES
from collabvr.backends.sim.score import score_video
from collabvr.context import Context
from collabvr.media import Image, Video
from collabvr.nodes.finalize import score_of
from collabvr.records import PlanRequest, VerifyRequest
from collabvr.runner import score_episode
from collabvr.scoring import first_order_score
from collabvr.task import Task
from tests.fakes import FakeGoogle, FakeOpenAI, gemini_options, openai_options

SIZE, SECONDS, FPS = 256, 4, 16  # 64 frames: 12.6 MB of RGB
CLIP_BYTES = SIZE * SIZE * 3 * SECONDS * FPS


class Decoded:
    """Frames the decoder handed out that are still alive, and the most alive at once."""

    def __init__(self) -> None:
        self.alive = self.most = 0

    def track(self, frame: np.ndarray) -> np.ndarray:
        self.alive += 1
        self.most = max(self.most, self.alive)
        weakref.finalize(frame, self._freed)
        return frame

    def _freed(self) -> None:
        self.alive -= 1


DECODED = Decoded()


def extra_copies(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn's result, the clip copies fn held at its peak: numpy's allocations plus decoded frames)."""
    gc.collect()
    DECODED.most = DECODED.alive
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / CLIP_BYTES + DECODED.most / (SECONDS * FPS)


@pytest.fixture(autouse=True)
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "KEEP_DECODED_BYTES", 1024)
    decode = mp4.decode
    monkeypatch.setattr(mp4, "decode", lambda *args: (DECODED.track(frame) for frame in decode(*args)))


@pytest.fixture(scope="module")
def sim_clip() -> tuple[Task, Any, Video]:
    """A real sim clip at 256 px, 64 frames: the task, the sim planner's plan, the VGM's frames."""
    task = Task.sim("maze/easy", seed=3, size=SIZE)
    frame = task.first_image()
    plan = make_sim("vlm", "accurate", {}).plan(PlanRequest(task=task.prompt, frame=frame, step=1, max_steps=1,
                                                            seconds=SECONDS, family="maze"))
    clip = make_sim("vgm", "weak", {}).generate(frame, plan.instruction, seconds=SECONDS, fps=FPS, seed=0)
    assert clip.num_frames * clip.width * clip.height * 3 == CLIP_BYTES
    return task, plan, clip


@pytest.fixture
def stored(sim_clip, tmp_path: Path) -> tuple[ArtifactStore, dict, np.ndarray]:
    """The clip in a store: (store, ref, what the stored bytes decode to)."""
    store = ArtifactStore(tmp_path / "artifacts")
    ref = ref_json(store.put_video(Video(frames=np.array(sim_clip[2].frames), fps=FPS)))
    return store, ref, np.stack(list(mp4.decode(store.get_bytes(ref))))


def test_encoding_and_storing_a_large_clip_adds_no_copy(sim_clip, tmp_path: Path) -> None:
    clip = Video(frames=np.array(sim_clip[2].frames), fps=FPS)  # what a backend hands over
    ref, copies = extra_copies(lambda: ArtifactStore(tmp_path).put_video(clip))
    assert copies < 0.5, f"storing made {copies:.2f} clip copies"
    assert ref.frames == SECONDS * FPS and (ref.width, ref.height) == (SIZE, SIZE)


def test_reading_frames_of_a_stored_large_clip_adds_no_copy(stored) -> None:
    store, ref, whole = stored
    handle = store.load_video(ref)
    last, copies = extra_copies(handle.last_frame)
    assert copies < 0.5 and np.array_equal(last.array, whole[-1])
    picked, copies = extra_copies(lambda: handle.frames_at([0, 31, -1]))
    assert copies < 0.5 and all(np.array_equal(p.array, whole[i]) for p, i in zip(picked, [0, 31, -1], strict=True))
    sums, copies = extra_copies(lambda: [int(f.sum()) for f in handle.iter_frames()])
    assert copies < 0.5 and sums == [int(f.sum()) for f in whole]
    # the counter does see a copy when one is made: the whole clip, decoded into one array (no list beside it)
    frames, copies = extra_copies(lambda: handle.frames)
    assert 0.95 < copies < 1.5 and np.array_equal(frames, whole)


def test_the_sim_verifier_and_scorer_read_a_large_clip_without_copying_it(sim_clip, stored, tmp_path: Path) -> None:
    task, plan, _ = sim_clip
    store, ref, whole = stored
    vlm = make_sim("vlm", "accurate", {})

    def request(clip: Video) -> VerifyRequest:
        return VerifyRequest(task=task.prompt, clip=clip, start_frame=task.first_image(), instruction=plan.instruction,
                             target_state=plan.target_state, family="maze")

    verdict, copies = extra_copies(lambda: vlm.verify(request(store.load_video(ref))))
    assert copies < 0.5, f"verifying made {copies:.2f} clip copies"
    assert verdict == vlm.verify(request(Video(frames=whole, fps=FPS)))  # as when the clip was decoded whole

    ctx = Context(out_dir=str(tmp_path))  # the finalize node's scorer, on a store of the run directory
    run_store = ArtifactStore(tmp_path / "artifacts")
    final = ref_json(run_store.put_video(Video(opener=lambda: store.get_bytes(ref), fps=FPS, num_frames=len(whole),
                                               width=SIZE, height=SIZE)))
    state_task = task.materialize(run_store).model_dump(mode="json")
    score, copies = extra_copies(lambda: score_of(state_task, ctx, final))
    assert copies < 0.5, f"scoring made {copies:.2f} clip copies"
    maze = FAMILIES["maze"]
    assert score == dataclasses.asdict(score_video(maze, whole, maze.read(task.first_image().array)))


def test_the_first_order_score_reads_two_frames_of_a_large_clip(stored, tmp_path: Path) -> None:
    store, ref, whole = stored
    paths = {}
    for name, array in (("first_frame_path", whole[0]), ("final_frame_path", whole[-1][:, ::-1])):
        paths[name] = str(tmp_path / f"{name}.png")
        Path(paths[name]).write_bytes(Image(np.ascontiguousarray(array)).to_png())
    task = Task.benchmark("vbvr", "T/00000", paths["first_frame_path"], "solve", meta=paths)
    score, copies = extra_copies(lambda: score_episode(task, store, {"final": ref}))
    assert copies < 0.5, f"the first-order score made {copies:.2f} clip copies"
    assert score == first_order_score(whole, Image.open(paths["first_frame_path"]).array,
                                      Image.open(paths["final_frame_path"]).array)


def test_trimming_and_splicing_a_large_clip_then_storing_it_adds_no_copy(stored) -> None:
    store, ref, whole = stored
    handle = store.load_video(ref)
    cut = handle.frame_index_at(0.5)

    def repair_and_regenerate() -> Any:  # the repair and generate nodes: keep the good prefix, splice a new tail
        prefix = store.put_video(handle.trim(0, cut + 1))
        tail = store.load_video(ref).trim(cut, len(whole))
        return store.put_video(store.load_video(prefix).splice(tail))

    spliced, copies = extra_copies(repair_and_regenerate)
    assert copies < 0.5, f"splicing made {copies:.2f} clip copies"
    assert spliced.frames == len(whole)


def verify_copies(vlm: Any, handle: Video, whole: np.ndarray) -> float:
    """The clip copies ``vlm.verify`` made for a request on ``handle``, after a first call on a tiny clip
    (the SDK's first call builds its schemas and imports)."""

    def verify(clip: Video) -> Any:
        return vlm.verify(VerifyRequest(task="t", clip=clip, start_frame=Image(whole[0]), instruction="go",
                                        target_state="there"))

    verify(Video(frames=whole[:2], fps=FPS))
    return extra_copies(lambda: verify(handle))[1]


def sent_as_sampled(frames: list[np.ndarray], whole: np.ndarray, count: int) -> bool:
    """Whether ``frames`` are the clip's ``count`` evenly sampled frames, with the pixels of a whole decode."""
    picked = np.unique(np.linspace(0, len(whole) - 1, count).round().astype(int))
    return len(frames) == len(picked) and all(np.array_equal(f, whole[i]) for f, i in zip(frames, picked, strict=True))


def test_a_vlm_request_is_built_from_the_frames_it_sends_without_decoding_the_clip(stored) -> None:
    store, ref, whole = stored
    handle = store.load_video(ref)
    with FakeOpenAI() as server:
        vlm = OpenAIVLM("gpt-4o", openai_options(server))
        copies = verify_copies(vlm, handle, whole)
        _, images = server.decode(server.calls("chat")[-1])
    assert copies < 0.5, f"building the request made {copies:.2f} clip copies"
    sent = [image.array for image in images[1:]]  # after the start frame: the clip's sampled frames
    assert sent_as_sampled(sent, whole, vlm.frames_per_clip)
    assert [f.array.tobytes() for f in sample_frames(handle, vlm.frames_per_clip)] == [s.tobytes() for s in sent]


def test_a_gemini_request_on_vertex_sends_sampled_frames_of_a_large_clip_without_decoding_it_whole(stored) -> None:
    store, ref, whole = stored
    handle = store.load_video(ref)
    with FakeGoogle() as server:  # Vertex has no Files API: a clip over the inline limit goes as sampled frames
        vlm = GeminiVLM("gemini-2.5-pro", gemini_options(server, vertexai=True, inline_limit_bytes=1000))
        copies = verify_copies(vlm, handle, whole)
        _, media_sent = server.decode(server.calls("generateContent")[-1])
    assert copies < 0.5, f"building the request made {copies:.2f} clip copies"
    assert sent_as_sampled([m.array for m in media_sent[1:]], whole, vlm.frames_per_clip)  # at full size
