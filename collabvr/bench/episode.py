"""One episode of a benchmark: which episodes a config names, and running one into its results line.

Below the runner, which decides where episodes run (threads here, or Ray tasks on a cluster:
:mod:`collabvr.bench.ray_executor`) and is the one writer of ``results.jsonl``. Both executors build
an episode's line with :func:`episode_record`, so a line says the same whichever ran it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from collabvr import prices as price_table
from collabvr.backends.reference import register_reference
from collabvr.bench.config import BenchConfig
from collabvr.bench.suites import Sample
from collabvr.context import Context
from collabvr.errors import redact
from collabvr.location import local_dir, path_of
from collabvr.runner import run
from collabvr.scoring import JudgeSpec
from collabvr.task import Task


@dataclasses.dataclass(frozen=True)
class Job:
    """One episode of the benchmark."""

    method: str
    family: str
    difficulty: str
    seed: int
    sample: str | None = None  # a benchmark sample's id; None for sim (the seed is the instance)
    run: int = 0  # which generated video of the sample (benchmarks: 0 .. runs-1)
    suite: str = ""  # benchmarks: the suite's kind (vbvr, genvire), part of the instance paired statistics match

    @property
    def key(self) -> tuple[str, str, str, int, str | None]:
        return (self.method, self.family, self.difficulty, self.seed, self.sample)

    @property
    def run_dir(self) -> str:
        """The run directory, relative to the benchmark directory."""
        if self.sample is None:
            return f"episodes/{self.method}/{self.family}-{self.difficulty}-{self.seed}"
        return f"episodes/{self.method}/{self.family}/{self.difficulty}/{self.sample.rsplit('/', 1)[-1]}-r{self.run}"

    def record(self) -> dict[str, Any]:
        """The keys of its results line (sim lines keep their four; benchmark lines add what makes the
        instance: suite, sample and run)."""
        keys = {"method": self.method, "family": self.family, "difficulty": self.difficulty, "seed": self.seed}
        return keys if self.sample is None else {**keys, "suite": self.suite, "sample": self.sample, "run": self.run}

    @property
    def row(self) -> Sample:
        return Sample(self.family, self.difficulty, self.sample, self.seed)

    def thread_id(self, task_id: str) -> str:
        return f"{self.method}|{task_id}|{self.seed}"


def jobs_of(config: BenchConfig, methods: list[str] | None = None) -> list[Job]:
    suite = config.suite_of()
    samples = suite.samples(config.n, config.seed)
    methods = methods or config.ordered_methods()
    if suite.kind == "sim":
        return [Job(m, x.family, x.difficulty, x.seed) for m in methods for x in samples]
    return [Job(m, x.family, x.difficulty, config.seed + r, x.id, r, suite.kind) for m in methods for x in samples
            for r in range(config.runs)]


def task_of(config: BenchConfig, job: Job) -> Task:
    return config.suite_of().task(job.row, config.size)


def judge_of(config: BenchConfig, task: Task) -> JudgeSpec | None:
    """Who judges an episode's final video: --judge-vlm, else the run's VLM for a task with a rubric."""
    if config.judge_vlm:
        return JudgeSpec(config.judge_vlm, dict(config.judge_vlm_options), config.judge_repeats)
    if task.rubric and not task.is_sim:
        return JudgeSpec(config.vlm, dict(config.vlm_options), config.judge_repeats)
    return None


def context_for(config: BenchConfig, job: Job, budget: float) -> Context:
    """The episode's run context: the bench's backends and context fields, its seed, run directory and budget."""
    return Context(**{
        **config.context, "vgm": config.vgm, "vlm": config.vlm, "vgm_options": dict(config.vgm_options),
        "vlm_options": dict(config.vlm_options), "seed": job.seed, "out_dir": str(path_of(config.out) / job.run_dir),
        "budget_seconds": budget, "cache_dir": str(local_dir(config.out) / "cache") if config.cache else "",
    })


def episode_record(config: BenchConfig, job: Job, graph: Any, *, budget: float, priced: tuple[str, str],
                   stop: threading.Event | None = None) -> dict[str, Any]:
    """Run (or continue, from ``graph``'s checkpointer) one episode in this thread; return its results
    line. An episode that raises is a line with status ``error`` (retried by the next run), never an
    exception: one broken episode must not stop the benchmark. ``priced`` holds the (vgm, vlm) specs
    with the models the backends really use, for the cost. Once ``stop`` is set the episode stops
    after its running node and raises :class:`collabvr.errors.Stopped`: no line, its checkpoint
    resumes it."""
    started = time.perf_counter()
    task = task_of(config, job)
    if task.meta.get("reference_video"):  # the groundtruth VGM replays it
        register_reference(task.first_image(), task.meta["reference_video"])
    ctx = context_for(config, job, budget)
    thread = {"configurable": {"thread_id": job.thread_id(task.id)}}
    resumed = bool(graph.get_state(thread).values)
    record: dict[str, Any] = {**job.record(), "task": task.id, "run_dir": job.run_dir,
                              "budget_seconds": ctx.budget_seconds, "resumed": resumed}
    try:
        episode = run(task, context=ctx, method=job.method, graph=graph, config=thread, resume=True,
                      judge=judge_of(config, task), stop=stop)
        compute = dict(episode.compute)
        score = episode.score or {}
        record |= {"status": episode.status, "reason": episode.reason, "score": score.get("score"),
                   "solved": bool(score.get("solved")), "compute": compute, "wall_s": round(episode.wall_s, 4)}
        if "judge" in score:  # judge calls are counted apart from the method's compute
            record["judge"] = {**score["judge"], "status": score.get("status"), "failed_calls": score.get("failed_calls", 0)}
        if score.get("scorer"):
            record["scorer"] = score["scorer"]
    except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the benchmark
        record |= _failed(exc, started)
    return _accounted(config, record, priced, started)


def lost_record(config: BenchConfig, job: Job, exc: BaseException, *, priced: tuple[str, str]) -> dict[str, Any]:
    """The results line of an episode whose process was lost (a Ray worker or node died): an error,
    retried by the next run like any other."""
    started = time.perf_counter()
    return _accounted(config, {**job.record(), "run_dir": job.run_dir, **_failed(exc, started)}, priced, started)


def _failed(exc: BaseException, started: float) -> dict[str, Any]:
    return {"status": "error", "reason": redact(f"{type(exc).__name__}: {exc}"), "score": None, "solved": False,
            "compute": {}, "wall_s": round(time.perf_counter() - started, 4)}


def _accounted(config: BenchConfig, record: dict[str, Any], priced: tuple[str, str], started: float) -> dict[str, Any]:
    """The line with its cost, cache hits and elapsed time."""
    compute = record["compute"]
    record["cost"] = price_table.cost(compute, vgm=priced[0], vlm=priced[1], prices=config.prices)
    record["cache_hits"] = {"vgm": compute.get("vgm_cache_hits", 0), "vlm": compute.get("vlm_cache_hits", 0)}
    record["elapsed_s"] = round(time.perf_counter() - started, 4)
    return record
