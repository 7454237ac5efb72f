"""One task type for simulator tasks, benchmark samples and users' own tasks: a first frame plus a
task prompt. Benchmark samples (VBVR-Bench, Gen-ViRe) are user-style tasks (a first frame on disk)
that also carry their suite's metadata: ids, reference files and a rubric, all plain JSON."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from collabvr.artifacts import ArtifactRef, ArtifactStore
from collabvr.backends.sim.families import FAMILIES
from collabvr.errors import BadInput
from collabvr.media import Image, MediaError

SIM_SIZE = 256
SIM_SIZES = (128, 2048)  # sim frame sizes: even, at least what the decoder reads, at most what fits in memory


class Task(BaseModel):
    """What to solve. ``first_frame`` is filled in once the frame is in an artifact store."""

    id: str
    prompt: str
    family: str | None = None  # sim task family; None for user tasks
    difficulty: str | None = None
    seed: int | None = None
    size: int = SIM_SIZE
    image_path: str | None = None
    first_frame: ArtifactRef | None = None
    suite: str | None = None  # "vbvr" or "genvire" for a benchmark sample
    sample: str | None = None  # the sample's id within its suite
    rubric: str | None = None  # judge rubric (Gen-ViRe eval_task_description, or a user's --rubric)
    meta: dict[str, Any] = {}  # the suite's per-sample metadata: reference paths, category, max_score...

    @property
    def is_sim(self) -> bool:
        return self.family is not None

    @classmethod
    def sim(cls, spec: str, *, seed: int = 0, size: int = SIM_SIZE) -> Task:
        """A simulator task from "maze/hard" (or "sim:maze/hard"); the seed picks the instance."""
        name = spec.removeprefix("sim:")
        family_name, _, difficulty = name.partition("/")
        difficulty = difficulty or "medium"
        if family_name not in FAMILIES:
            raise BadInput(f"unknown sim task family {family_name!r} in {spec!r}; known: {', '.join(FAMILIES)}")
        family = FAMILIES[family_name]
        if difficulty not in family.lengths:
            raise BadInput(f"unknown difficulty {difficulty!r} in {spec!r}; known: {', '.join(family.lengths)}")
        if not SIM_SIZES[0] <= size <= SIM_SIZES[1] or size % 2:
            raise BadInput(f"sim frame size must be an even number >= {SIM_SIZES[0]} (at most {SIM_SIZES[1]}), got {size}")
        state = family.generate(difficulty, _instance_rng(family_name, difficulty, seed))
        return cls(
            id=f"sim:{family_name}/{difficulty}#{seed}",
            prompt=family.prompt(state),
            family=family_name,
            difficulty=difficulty,
            seed=seed,
            size=size,
        )

    @classmethod
    def from_image(cls, path: str | Path, prompt: str) -> Task:
        """A user's task: a first frame on disk plus a task prompt."""
        if not prompt or not prompt.strip():
            raise BadInput("the task prompt is empty")
        image = _open_image(path)
        digest = hashlib.sha256(image.array.tobytes()).hexdigest()[:12]
        return cls(id=f"user:{digest}", prompt=prompt.strip(), image_path=str(path))

    @classmethod
    def benchmark(cls, suite: str, sample: str, image: str | Path, prompt: str, *, rubric: str | None = None,
                  meta: dict[str, Any] | None = None) -> Task:
        """A benchmark sample: its first frame on disk, its prompt, and the suite's metadata."""
        if not prompt or not prompt.strip():
            raise BadInput(f"{suite} sample {sample}: the prompt is empty")
        return cls(id=f"{suite}:{sample}", prompt=prompt.strip(), image_path=str(image), suite=suite, sample=sample,
                   rubric=rubric, meta=dict(meta or {}))

    def with_rubric(self, rubric: str) -> Task:
        """This task judged against ``rubric`` (a user's --rubric)."""
        if not rubric.strip():
            raise BadInput("the rubric is empty")
        return self.model_copy(update={"rubric": rubric})

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0) -> Task:
        """A task from a spec string: "sim:FAMILY/DIFFICULTY" is the only kind that needs no image."""
        if spec.startswith("sim:") or "/" in spec and ":" not in spec:
            return cls.sim(spec, seed=seed)
        raise BadInput(f"unknown task {spec!r}: use 'sim:FAMILY/DIFFICULTY', or --image PATH with --prompt TEXT")

    def first_image(self) -> Image:
        """The first frame, rendered (sim) or read from disk (user)."""
        if self.is_sim:
            family = FAMILIES[self.family]
            state = family.generate(self.difficulty, _instance_rng(self.family, self.difficulty, self.seed or 0))
            return Image(family.render(state, self.size))
        if self.image_path is None:
            raise BadInput("a user task needs an image")
        return _open_image(self.image_path)

    def materialize(self, store: ArtifactStore) -> Task:
        """This task with its first frame in ``store``."""
        if self.first_frame is not None and store.exists(self.first_frame):
            return self
        return self.model_copy(update={"first_frame": store.put_image(self.first_image())})


def _open_image(path: str | Path) -> Image:
    try:
        image = Image.open(path)
    except MediaError as exc:
        raise BadInput(str(exc)) from exc
    arr = image.array
    if arr.shape[0] % 2 or arr.shape[1] % 2:  # H.264 needs even sizes
        image = Image(np.ascontiguousarray(arr[: arr.shape[0] // 2 * 2, : arr.shape[1] // 2 * 2]))
    return image


def _instance_rng(family: str, difficulty: str, seed: int) -> np.random.Generator:
    salt = int.from_bytes(hashlib.sha256(f"{family}/{difficulty}".encode()).digest()[:4], "little")
    return np.random.default_rng([seed, salt])
