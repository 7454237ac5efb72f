"""The benchmark runner: many episodes, concurrently, resumable, with compute accounting.

For each method x (family, difficulty) cell of the sim suite it runs seeds ``seed .. seed+n-1``;
for a benchmark suite (VBVR-Bench, Gen-ViRe) every sample (the first ``n`` per task) ``runs``
times, with seeds ``seed .. seed+runs-1``. Episode ``METHOD / FAMILY-DIFFICULTY-SEED`` (benchmarks:
``METHOD / FAMILY / DIFFICULTY / ID-rRUN``) writes its run directory under ``DIR/episodes/`` and,
when it finishes, one line to ``DIR/results.jsonl`` (appended, flushed and fsynced).

Resume is the default. Rerunning the same command skips the episodes that have a line in
``results.jsonl`` (except errors, which are retried) and continues the others from their last
LangGraph checkpoint in ``DIR/checkpoints.sqlite`` (thread ``method|task id|seed``), so a run that
was killed, even with ``kill -9``, loses at most the node that was executing; with the call cache
on (the default) that node's backend calls are cache hits.

Concurrency: episodes run in threads (``asyncio.to_thread``) under a limit of ``concurrency``
episodes at once, and every backend spec (per role) is behind its own semaphore of
``backend_limit`` concurrent calls, shared by all episodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import collabvr.backends.sim.score  # noqa: F401 - imported once here, not by eight threads at once
from collabvr import prices as price_table
from collabvr.backends import registry
from collabvr.backends.reference import register_reference
from collabvr.bench.config import BenchConfig
from collabvr.bench.export import benchmark_tables
from collabvr.bench.report import paired_markdown, results_markdown
from collabvr.bench.results import RESULTS, ResultsFile, read_results, result_key
from collabvr.bench.stats import Cell, paired_against, summarize
from collabvr.bench.suites import Sample
from collabvr.context import Context, make_context
from collabvr.errors import BadInput, redact, scrub
from collabvr.graph import builder_for, parse_method
from collabvr.prices import Estimate
from collabvr.rundir import CHECKPOINTS, write_json
from collabvr.runner import bill, preflight, priced_spec, run, sqlite_saver
from collabvr.scoring import JudgeSpec, reference_paths
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
        """The keys of its results line (sim lines keep their four)."""
        keys = {"method": self.method, "family": self.family, "difficulty": self.difficulty, "seed": self.seed}
        return keys if self.sample is None else {**keys, "sample": self.sample, "run": self.run}

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
    return [Job(m, x.family, x.difficulty, config.seed + r, x.id, r) for m in methods for x in samples
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


# -- per-backend limits --------------------------------------------------------------------------


class _Limited:
    """A backend whose public methods each hold a semaphore while they run."""

    def __init__(self, backend: Any, semaphore: threading.Semaphore) -> None:
        self._backend, self._semaphore = backend, semaphore

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._semaphore:
                return attr(*args, **kwargs)

        return call


@contextmanager
def backend_limits(specs: list[str], limit: int) -> Iterator[dict[tuple[str, str], threading.Semaphore]]:
    """Within the block, every backend of these specs' providers shares one semaphore per
    (role, spec) of ``limit`` concurrent calls. The providers' factories are restored after."""
    semaphores: dict[tuple[str, str], threading.Semaphore] = {}
    lock = threading.Lock()
    originals = {}
    for provider in dict.fromkeys(registry.parse_spec(s)[0] for s in specs):
        original = originals[provider] = registry.factory(provider)

        def limited(role: str, model: str, options: dict[str, Any], _provider: str = provider, _make: Any = original) -> Any:
            backend = _make(role, model, options)
            if backend is None:
                return None
            with lock:
                sem = semaphores.setdefault((role, f"{_provider}:{model}"), threading.BoundedSemaphore(limit))
            return _Limited(backend, sem)

        registry.register(provider, limited)
    try:
        yield semaphores
    finally:
        for provider, original in originals.items():
            registry.register(provider, original)


# -- the run -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Bench:
    """Everything episodes share while a benchmark runs."""

    config: BenchConfig
    graphs: dict[str, Any]
    results: ResultsFile
    budgets: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)  # matched, per cell
    on_result: Callable[[dict[str, Any]], None] | None = None
    priced: tuple[str, str] = ("sim", "sim")  # (vgm, vlm) specs with the models the backends really use
    spent: float = 0.0  # USD of the episodes this invocation ran
    skipped: int = 0  # episodes not started because --max-cost was reached
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def over_budget(self) -> bool:
        """Whether ``--max-cost`` is reached: no new episode starts then."""
        with self.lock:
            if self.config.max_cost and self.spent >= self.config.max_cost:
                self.skipped += 1
                return True
            return False

    def context_for(self, job: Job) -> Context:
        cfg = self.config
        budget = self.budgets.get((job.family, job.difficulty), cfg.fixed_budget()) if job.method != cfg.match_method() else 0.0
        return Context(**{
            **cfg.context, "vgm": cfg.vgm, "vlm": cfg.vlm, "vgm_options": dict(cfg.vgm_options),
            "vlm_options": dict(cfg.vlm_options), "seed": job.seed, "out_dir": str(cfg.out / job.run_dir),
            "budget_seconds": budget, "cache_dir": str(cfg.out / "cache") if cfg.cache else "",
        })

    def run_one(self, job: Job) -> dict[str, Any]:
        """Run (or continue) one episode in this thread and append its result line."""
        started = time.perf_counter()
        task = task_of(self.config, job)
        if task.meta.get("reference_video"):  # the groundtruth VGM replays it
            register_reference(task.first_image(), task.meta["reference_video"])
        ctx = self.context_for(job)
        name, _ = parse_method(job.method)
        graph = self.graphs[name]
        config = {"configurable": {"thread_id": job.thread_id(task.id)}}
        resumed = bool(graph.get_state(config).values)
        record: dict[str, Any] = {**job.record(), "task": task.id, "run_dir": job.run_dir,
                                  "budget_seconds": ctx.budget_seconds, "resumed": resumed}
        try:
            episode = run(task, context=ctx, method=job.method, graph=graph, config=config, resume=True,
                          judge=judge_of(self.config, task))
            compute = dict(episode.compute)
            score = episode.score or {}
            record |= {"status": episode.status, "reason": episode.reason, "score": score.get("score"),
                       "solved": bool(score.get("solved")), "compute": compute, "wall_s": round(episode.wall_s, 4)}
            if "judge" in score:  # judge calls are counted apart from the method's compute
                record["judge"] = {**score["judge"], "status": score.get("status"), "failed_calls": score.get("failed_calls", 0)}
            if score.get("scorer"):
                record["scorer"] = score["scorer"]
        except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the benchmark
            compute = {}
            record |= {"status": "error", "reason": redact(f"{type(exc).__name__}: {exc}"), "score": None,
                       "solved": False, "compute": compute, "wall_s": round(time.perf_counter() - started, 4)}
        record["cost"] = price_table.cost(compute, vgm=self.priced[0], vlm=self.priced[1], prices=self.config.prices)
        with self.lock:
            self.spent += record["cost"] or 0.0
        record["cache_hits"] = {"vgm": compute.get("vgm_cache_hits", 0), "vlm": compute.get("vlm_cache_hits", 0)}
        record["elapsed_s"] = round(time.perf_counter() - started, 4)
        self.results.append(scrub(record))
        if self.on_result is not None:
            self.on_result(record)
        return record


async def _run_jobs(bench: Bench, jobs: list[Job]) -> None:
    gate = asyncio.Semaphore(bench.config.concurrency)

    async def one(job: Job) -> None:
        async with gate:
            if not bench.over_budget():
                await asyncio.to_thread(bench.run_one, job)

    await asyncio.gather(*(one(job) for job in jobs))


def matched_budgets(results: list[dict[str, Any]], method: str) -> dict[tuple[str, str], float]:
    """Per (family, difficulty): the method's mean clip-seconds per episode (a tiny positive number if 0,
    because a budget of 0 means no limit)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in results:
        if r["method"] == method:
            groups.setdefault((r["family"], r["difficulty"]), []).append((r.get("compute") or {}).get("clip_seconds", 0.0))
    return {cell: max(sum(v) / len(v), 1e-6) for cell, v in groups.items()}


def _pin_settings(config: BenchConfig) -> None:
    """Record the settings in DIR/bench.json; refuse to resume into a DIR run with different ones."""
    path = config.out / "bench.json"
    pinned = scrub(config.pinned())
    if path.exists():
        before = json.loads(path.read_text()).get("pinned", {})
        changed = sorted(k for k in pinned if before.get(k) != pinned[k])
        if changed:
            raise BadInput(f"{config.out} holds a benchmark run with other settings ({', '.join(changed)}); use a new --out")
    write_json(path, {"pinned": pinned})


def _probe_context(config: BenchConfig) -> tuple[Task, Context]:
    probe = task_of(config, jobs_of(config)[0])
    return probe, Context(**{**config.context, "vgm": config.vgm, "vlm": config.vlm,
                             "vgm_options": config.vgm_options, "vlm_options": config.vlm_options})


def bench_bill(config: BenchConfig) -> Estimate:
    """The most the episodes still to run can cost (:func:`collabvr.runner.bill` summed over them),
    after the preflight; a budget of ``match:METHOD`` is not known yet, so each method's own worst
    case counts. Each episode whose video is judged adds the judge's worst case (``judge_repeats``
    calls on the final video and the sample's reference images), kept as the ``judge`` part."""
    config.check()
    probe, ctx = _probe_context(config)
    preflight(probe, ctx)
    done = _done(Path(config.out) / RESULTS)
    total = price_table.NOTHING
    bill_ctx = make_context(ctx, budget_seconds=config.fixed_budget())
    bills: dict[tuple[str, bool, int], Estimate] = {}
    for job in jobs_of(config):
        if job.key in done:
            continue
        task = task_of(config, job)
        judge = judge_of(config, task)
        key = (job.method, judge is not None, len(reference_paths(task.meta or {})))
        if key not in bills:
            bills[key] = bill(job.method, bill_ctx, config.prices, judge=judge, references=key[2])
        total = total.plus(bills[key])
    return total


def run_bench(
    config: BenchConfig,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> list[Cell]:
    """Run (or resume) a benchmark; write results.jsonl, results.md and summary.json; return the cells.

    ``on_start(total, already_done)`` is called once before the first episode, ``on_result`` after
    each one (from a worker thread). With ``config.max_cost``, no episode starts once the cost of
    the episodes run so far reaches it; the summary says how many were not started.
    """
    config.check()
    config.out = Path(config.out)
    config.out.mkdir(parents=True, exist_ok=True)
    limit = config.backend_limit or config.concurrency
    with backend_limits([config.vgm, config.vlm, *([config.judge_vlm] if config.judge_vlm else [])], limit):
        # fail on a bad backend before any work; this also builds the backends before the threads start
        probe, ctx = _probe_context(config)
        preflight(probe, ctx)
        if config.judge_vlm:
            registry.resolve_vlm(config.judge_vlm, config.judge_vlm_options)
        priced = (priced_spec(ctx.vgm, registry.resolve_vgm(ctx.vgm, ctx.vgm_options)),
                  priced_spec(ctx.vlm, registry.resolve_vlm(ctx.vlm, ctx.vlm_options)))
        _pin_settings(config)
        bench = _run_missing(config, on_start, on_result, priced)
    stopped = None
    if bench is not None and bench.skipped:
        stopped = {"reason": "max_cost", "max_cost": config.max_cost, "spent": round(bench.spent, 6),
                   "not_started": bench.skipped}
    registry.close_all()  # every episode is done: free the local models' (GPU) memory
    return write_summary(config, stopped=stopped)


def _done(results_path: Path) -> set[tuple[str, str, str, int, str | None]]:
    """Episodes with a result line that need no rerun (errors are retried)."""
    return {result_key(r) for r in read_results(results_path) if r.get("status") != "error"}


def _run_missing(config: BenchConfig, on_start: Callable[[int, int], None] | None,
                 on_result: Callable[[dict[str, Any]], None] | None, priced: tuple[str, str]) -> Bench:
    results_path = config.out / RESULTS
    results = ResultsFile(results_path)
    methods = config.ordered_methods()
    all_jobs = jobs_of(config, methods)
    done = _done(results_path)
    if on_start is not None:
        on_start(len(all_jobs), sum(job.key in done for job in all_jobs))
    with sqlite_saver(config.out / CHECKPOINTS) as saver, \
            ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="episode") as pool:
        graphs = {name: builder_for(name)().compile(checkpointer=saver, name=name)
                  for name in dict.fromkeys(parse_method(m)[0] for m in methods)}
        bench = Bench(config, graphs, results, on_result=on_result, priced=priced)
        match = config.match_method()
        phases = [[match], [m for m in methods if m != match]] if match else [methods]

        async def main() -> None:
            asyncio.get_running_loop().set_default_executor(pool)
            for phase in phases:
                if match and phase != [match]:
                    bench.budgets = matched_budgets(read_results(results_path), match)
                await _run_jobs(bench, [j for j in jobs_of(config, phase) if j.key not in done])

        asyncio.run(main())
    return bench


def write_summary(config: BenchConfig, *, stopped: dict[str, Any] | None = None) -> list[Cell]:
    """results.md and summary.json from results.jsonl, for this config's episodes only; ``stopped``
    records why some episodes were not started (``--max-cost``)."""
    wanted = {job.key for job in jobs_of(config)}
    results = [r for r in read_results(config.out / RESULTS) if result_key(r) in wanted]
    cells = summarize(results, seed=config.seed)
    totals = {
        "episodes": len(results),
        "errors": sum(r.get("status") == "error" for r in results),
        "clip_seconds": round(sum((r.get("compute") or {}).get("clip_seconds", 0.0) for r in results), 3),
        "vgm_calls": sum((r.get("compute") or {}).get("vgm_calls", 0) for r in results),
        "vlm_calls": sum((r.get("compute") or {}).get("vlm_calls", 0) for r in results),
        "vgm_cache_hits": sum(r.get("cache_hits", {}).get("vgm", 0) for r in results),
        "vlm_cache_hits": sum(r.get("cache_hits", {}).get("vlm", 0) for r in results),
        "cost": None if any(r.get("cost") is None for r in results) else round(sum(r["cost"] for r in results), 6),
    }
    reference = "collabvr" if "collabvr" in config.methods else config.methods[0]
    pairs = paired_against(results, reference, seed=config.seed)
    summary = {"config": {**config.pinned(), "suite": config.suite, "methods": config.methods, "n": config.n,
                          "seed": config.seed, "seeds": [config.seed, config.seed + config.n - 1]},
               "totals": totals, "stopped": stopped, "cells": [c.public() for c in cells],
               "paired": [{"other": other, "difficulty": level, **p.public()} for other, level, p in pairs]}
    suite = config.suite_of()
    tables = ""
    if suite.kind != "sim":
        summary["config"] |= {"runs": config.runs, "judge_repeats": config.judge_repeats, "judge_vlm": config.judge_vlm,
                              "strict": config.strict}
        extra, tables = benchmark_tables(config.out, suite, results, runs=config.runs, repeats=config.judge_repeats,
                                         strict=config.strict)
        summary["benchmark"] = extra
    write_json(config.out / "summary.json", scrub(summary))
    header = (f"# Benchmark results\n\nsuite `{config.suite}`, methods `{','.join(config.methods)}`, seeds "
              f"{config.seed}..{config.seed + config.n - 1}, VGM `{config.vgm}`, VLM `{config.vlm}`, "
              f"budget `{config.budget or 'none'}`. Scores: mean [95% percentile bootstrap CI, 2000 resamples, "
              f"seed {config.seed}]; clip-s, VLM calls and cost are means per episode.\n\n")
    if stopped:
        header += (f"**Stopped early:** `--max-cost {stopped['max_cost']:g}` was reached (${stopped['spent']:.2f} spent); "
                   f"{stopped['not_started']} episode(s) were not started. Rerun the same command to continue.\n\n")
    paired_text = ""
    if pairs:
        paired_text = (f"\n## Paired differences\n\n{reference} minus each other method on the same instances (family, "
                       f"difficulty, seed), pooled over families; 95% percentile bootstrap CI of the mean difference "
                       f"(2000 resamples, seed {config.seed}, differences sorted before resampling).\n\n"
                       + paired_markdown(pairs, reference))
    (config.out / "results.md").write_text(header + results_markdown(cells) + paired_text + ("\n" + tables if tables else ""))
    return cells
