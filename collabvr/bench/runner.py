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

Concurrency: with the local executor (the default) episodes run in threads (``asyncio.to_thread``)
under a limit of ``concurrency`` episodes at once, and every backend spec (per role) is behind its
own semaphore of ``backend_limit`` concurrent calls, shared by all episodes. With ``executor="ray"``
they run as Ray tasks on a cluster (:mod:`collabvr.bench.ray_executor`, docs/scaling.md). Either way
this process alone writes ``results.jsonl`` and the report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import collabvr.backends.sim.score  # noqa: F401 - imported once here, not by eight threads at once
from collabvr import prices as price_table
from collabvr.backends import registry
from collabvr.bench import limits
from collabvr.bench import memory as bench_memory
from collabvr.bench.config import BenchConfig
from collabvr.bench.episode import Job, episode_record, jobs_of, judge_of, task_of
from collabvr.bench.export import benchmark_tables, official_for_bench
from collabvr.bench.report import paired_intro, paired_markdown, partial_text, results_markdown
from collabvr.bench.results import RESULTS, ResultsFile, read_results, result_key
from collabvr.bench.samples import instances_text, run_of, samples_markdown
from collabvr.bench.stats import Cell, paired_against, summarize
from collabvr.bench.suites.evalkit import OnLine, open_evalkit
from collabvr.context import Context, make_context
from collabvr.errors import BadInput, scrub
from collabvr.graph import compiled, parse_method
from collabvr.location import is_remote, local_dir, path_of, write_atomic
from collabvr.prices import Estimate
from collabvr.rundir import CHECKPOINTS, write_json
from collabvr.runner import bill, preflight, priced_spec, sqlite_saver
from collabvr.scoring import reference_paths
from collabvr.task import Task

__all__ = ["Bench", "Execute", "Job", "bench_bill", "executor", "jobs_of", "read_results", "run_bench", "write_summary"]


Execute = Callable[["Bench", list[Job]], None]  # runs some episodes to the end, passing each line to Bench.add


@dataclasses.dataclass
class Bench:
    """Everything episodes share while a benchmark runs; the one writer of ``results.jsonl``."""

    config: BenchConfig
    results: ResultsFile
    budgets: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)  # matched, per cell
    on_result: Callable[[dict[str, Any]], None] | None = None
    priced: tuple[str, str] = ("sim", "sim")  # (vgm, vlm) specs with the models the backends really use
    spent: float = 0.0  # USD of the episodes this invocation ran
    skipped: int = 0  # episodes not started because --max-cost was reached
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # Ctrl-C: the episodes in flight stop after their running node (resumable), none starts;
    # on_stop(episodes in flight) is told at once
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    on_stop: Callable[[int], None] | None = None
    running: int = 0

    def stop(self) -> None:
        """Stop: no episode starts, and those in flight stop after the node each is running."""
        if not self.stopping.is_set():
            self.stopping.set()
            if self.on_stop is not None:
                self.on_stop(self.running)

    def over_budget(self) -> bool:
        """Whether ``--max-cost`` is reached: no new episode starts then."""
        with self.lock:
            if self.config.max_cost and self.spent >= self.config.max_cost:
                self.skipped += 1
                return True
            return False

    def budget_for(self, job: Job) -> float:
        """The episode's clip-seconds budget: its instance's own, the matched one of its cell, or the fixed
        one (0: none)."""
        cfg = self.config
        if job.method == cfg.match_method():
            return 0.0
        own = cfg.instance_budgets.get(f"{job.family}/{job.difficulty}/{job.seed}")
        if own is not None:
            return float(own)
        return self.budgets.get((job.family, job.difficulty), cfg.fixed_budget())

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Count a finished episode's cost, append its line (fsynced) and report it."""
        with self.lock:
            self.spent += record["cost"] or 0.0
        self.results.append(scrub(record))
        if self.on_result is not None:
            self.on_result(record)
        return record

    def run_one(self, job: Job, graph: Any) -> dict[str, Any]:
        """Run (or continue) one episode in this thread and append its result line (none for an episode
        stopped by :meth:`stop`: it raises Stopped)."""
        with self.lock:
            self.running += 1
        try:
            record = episode_record(self.config, job, graph, budget=self.budget_for(job), priced=self.priced,
                                    stop=self.stopping)
        finally:
            with self.lock:
                self.running -= 1
        return self.add(record)


async def _run_jobs(bench: Bench, jobs: list[Job], graphs: dict[str, Any]) -> None:
    gate = asyncio.Semaphore(bench.config.concurrency)

    async def one(job: Job) -> None:
        async with gate:
            if not bench.stopping.is_set() and not bench.over_budget():
                await asyncio.to_thread(bench.run_one, job, graphs[parse_method(job.method)[0]])

    try:
        await asyncio.gather(*(one(job) for job in jobs))
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this, then waits for the episode threads
        bench.stop()
        raise


def _run_in_threads(bench: Bench, jobs: list[Job]) -> None:
    """The local executor: episodes in threads of this process, checkpoints in ``DIR/checkpoints.sqlite``."""
    config = bench.config
    local_dir(config.out).mkdir(parents=True, exist_ok=True)
    with sqlite_saver(local_dir(config.out) / CHECKPOINTS) as saver, \
            ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="episode") as pool:
        graphs = {name: compiled(name).copy(update={"checkpointer": saver})
                  for name in dict.fromkeys(parse_method(job.method)[0] for job in jobs)}

        async def main() -> None:
            asyncio.get_running_loop().set_default_executor(pool)
            await _run_jobs(bench, jobs, graphs)

        asyncio.run(main())


@contextmanager
def _local(config: BenchConfig) -> Iterator[Execute]:
    """Episodes in threads; every backend spec (per role) behind a semaphore of ``backend_limit``
    (default: ``concurrency``) concurrent calls shared by all episodes."""
    hold, _ = limits.threads(config.backend_limit or config.concurrency)
    with limits.backend_limits([registry.parse_spec(s)[0] for s in config.specs()], hold):
        yield _run_in_threads


def executor(config: BenchConfig) -> AbstractContextManager[Execute]:
    """Where the episodes run, set up for the block: threads of this process (``local``), or Ray tasks
    on a cluster (``ray``; started here, or the one at ``config.address``) with the heavy local models
    in one actor per GPU. BadInput with how to install Ray when it is not installed."""
    if config.executor != "ray":
        return _local(config)
    try:
        from collabvr.bench import ray_executor  # the optional dependency: only this module imports ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray" and not str(exc.name).startswith("ray."):
            raise
        raise BadInput("--executor ray needs Ray: pip install 'collabvr[ray]'") from None
    return ray_executor.cluster(config)


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
    done = _done(path_of(config.out) / RESULTS)
    total = price_table.NOTHING
    bill_ctx = make_context(ctx, budget_seconds=config.fixed_budget())
    bills: dict[tuple[str, bool, int], Estimate] = {}
    sim = config.suite_of().kind == "sim"
    for job in jobs_of(config):
        if job.key in done:
            continue
        # who judges and the reference images depend on a benchmark sample, never on a sim instance:
        # the probe stands for every sim task (building 1,800 sim tasks took 8 s on a loaded machine)
        task = probe if sim else task_of(config, job)
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
    execute: Execute | None = None,
    on_official: OnLine | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_stop: Callable[[int], None] | None = None,
) -> list[Cell]:
    """Run (or resume) a benchmark; write results.jsonl, results.md and summary.json; return the cells.

    ``on_start(total, already_done)`` is called once before the first episode, ``on_result`` after
    each one. With ``config.max_cost``, no episode starts once the cost of the episodes run so far
    reaches it; the summary says how many were not started. ``execute`` is an executor already set
    up (``with executor(config) as execute``, to share it with :func:`bench_bill`); without it, one
    is set up for this call. With ``config.evalkit`` the clone is checked before any episode, and the
    finished bench is scored with it (its output lines go to ``on_official``).

    Before the first episode the peak memory per episode is estimated (:mod:`collabvr.bench.memory`);
    when ``concurrency`` episodes would not fit in the memory available, fewer run at once and
    ``on_warning`` gets one line saying so (a ``RuntimeWarning`` without it), or, with
    ``config.strict_memory``, BadInput is raised before anything is written. The estimate and the
    process's measured peak go to summary.json (``memory``).

    On Ctrl-C (KeyboardInterrupt) no episode starts and those in flight stop after the node each is
    running, with no result line (the next run continues them from their checkpoints);
    ``on_stop(episodes in flight)`` is called at once, and the KeyboardInterrupt is raised when they
    have stopped.
    """
    config.check()
    config.out = path_of(config.out)  # a directory, or a URL: the same files either way
    if not is_remote(config.out):
        config.out.mkdir(parents=True, exist_ok=True)
    with nullcontext(execute) if execute is not None else executor(config) as execute:
        # fail on a bad backend before any work; this also builds the backends before the episodes start
        probe, ctx = _probe_context(config)
        preflight(probe, ctx)
        if config.judge_vlm:
            registry.resolve_vlm(config.judge_vlm, config.judge_vlm_options)
        if config.evalkit:  # a clone or interpreter that cannot score fails now, before anything is spent
            open_evalkit(config.evalkit, python=config.evalkit_python or None, entry=config.evalkit_entry)
        priced = (priced_spec(ctx.vgm, registry.resolve_vgm(ctx.vgm, ctx.vgm_options)),
                  priced_spec(ctx.vlm, registry.resolve_vlm(ctx.vlm, ctx.vlm_options)))
        memory = bench_memory.plan(config, ctx)
        config = dataclasses.replace(config)  # the caller's config keeps its --concurrency
        notice = bench_memory.guard(config, memory)
        if notice is not None:
            on_warning(notice) if on_warning is not None else warnings.warn(notice, RuntimeWarning, stacklevel=2)
        _pin_settings(config)
        bench = _run_missing(config, on_start, on_result, on_stop, priced, execute)
    stopped = None
    if bench is not None and bench.skipped:
        stopped = {"reason": "max_cost", "max_cost": config.max_cost, "spent": round(bench.spent, 6),
                   "not_started": bench.skipped}
    registry.close_all()  # every episode is done: free the local models' (GPU) memory
    measured = {"concurrency": config.concurrency, "peak_rss_bytes": bench_memory.peak_rss()}  # what ran, what it took
    return write_summary(config, stopped=stopped, memory={**memory.public(), **measured}, on_official=on_official)


def _done(results_path: Path) -> set[tuple[str, str, str, int, str | None]]:
    """Episodes with a result line that need no rerun (errors are retried)."""
    return {result_key(r) for r in read_results(results_path) if r.get("status") != "error"}


def _run_missing(config: BenchConfig, on_start: Callable[[int, int], None] | None,
                 on_result: Callable[[dict[str, Any]], None] | None, on_stop: Callable[[int], None] | None,
                 priced: tuple[str, str], execute: Execute) -> Bench:
    results_path = config.out / RESULTS
    methods = config.ordered_methods()
    all_jobs = jobs_of(config, methods)
    done = _done(results_path)
    if on_start is not None:
        on_start(len(all_jobs), sum(job.key in done for job in all_jobs))
    bench = Bench(config, ResultsFile(results_path), on_result=on_result, on_stop=on_stop, priced=priced)
    match = config.match_method()
    for phase in [[match], [m for m in methods if m != match]] if match else [methods]:
        if match and phase != [match]:
            bench.budgets = matched_budgets(read_results(results_path), match)
        execute(bench, [j for j in jobs_of(config, phase) if j.key not in done])
    return bench


def write_summary(config: BenchConfig, *, stopped: dict[str, Any] | None = None,
                  memory: dict[str, Any] | None = None, on_official: OnLine | None = None) -> list[Cell]:
    """results.md and summary.json from results.jsonl, for this config's episodes only; ``stopped``
    records why some episodes were not started (``--max-cost``), ``memory`` the estimate per episode
    and the measured peak (:mod:`collabvr.bench.memory`). With ``config.evalkit``, VBVR-EvalKit
    scores the videos, floors and ceilings first (its output lines to ``on_official``)."""
    planned = jobs_of(config)
    wanted = {job.key for job in planned}
    out = path_of(config.out)
    results = [r for r in read_results(out / RESULTS) if result_key(r) in wanted]
    cells = summarize(results, seed=config.seed)
    totals = {
        "episodes": len(results),
        "planned": len(planned),
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
    suite = config.suite_of()
    summary = {"config": {**config.pinned(), "suite": config.suite, "methods": config.methods, "n": config.n,
                          "seed": config.seed, **run_of(config, suite)},
               "totals": totals, "stopped": stopped, "memory": memory, "cells": [c.public() for c in cells],
               "paired": [{"other": other, "difficulty": level, **p.public()} for other, level, p in pairs]}
    tables = ""
    if suite.kind != "sim":
        summary["config"] |= {"runs": config.runs, "judge_repeats": config.judge_repeats, "judge_vlm": config.judge_vlm,
                              "strict": config.strict}
        official = None
        if config.evalkit and results:
            official = official_for_bench(out, suite, results, evalkit=config.evalkit, entry=config.evalkit_entry,
                                          python=config.evalkit_python or None, on_line=on_official)
        extra, tables = benchmark_tables(out, suite, results, runs=config.runs, repeats=config.judge_repeats,
                                         strict=config.strict, official=official)
        summary["benchmark"] = extra
    write_json(out / "summary.json", scrub(summary))
    header = (f"# Benchmark results\n\nsuite `{config.suite}`, methods `{','.join(config.methods)}`, {instances_text(summary['config'])}, "
              f"VGM `{config.vgm}`, VLM `{config.vlm}`, budget `{config.budget or 'none'}`. Scores: mean [95% percentile "
              f"bootstrap CI, 2000 resamples, seed {config.seed}]; clip-s, VLM calls and cost are means per episode.\n\n")
    if partial_text(totals):
        header += f"**Partial bench:** {partial_text(totals)}\n\n"
    if stopped:
        header += (f"**Stopped early:** `--max-cost {stopped['max_cost']:g}` was reached (${stopped['spent']:.2f} spent); "
                   f"{stopped['not_started']} episode(s) were not started. Rerun the same command to continue.\n\n")
    paired_text = ""
    if pairs:
        paired_text = ("\n## Paired differences\n\n" + paired_intro(reference, suite.kind, config.seed) + "\n\n"
                       + paired_markdown(pairs, reference))
    samples_text = "" if suite.kind == "sim" else "\n" + samples_markdown(summary["config"])
    text = header + results_markdown(cells) + paired_text + ("\n" + tables if tables else "") + samples_text
    write_atomic(out / "results.md", text.encode())
    return cells
