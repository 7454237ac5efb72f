"""Run one episode end to end and write its run directory.

A run directory holds ``final.mp4``, every attempt's clip under ``clips/``, ``trace.json`` and
``contact_sheet.png``. It never claims a run that did not complete: outputs of an earlier run
are removed first, and ``trace.json`` is written last (with ``status: "error"`` if the run
raised).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from collabvr import __version__
from collabvr import prices as price_table
from collabvr.artifacts import ArtifactStore
from collabvr.backends import registry
from collabvr.context import Context, make_context
from collabvr.errors import BadInput, Stopped, redact
from collabvr.graph import Compute, compiled, parse_method, worst_case
from collabvr.location import RunPath, is_remote, local_dir, location, path_of, write_atomic
from collabvr.media import Image, contact_sheet
from collabvr.nodes.baseline import horizon
from collabvr.nodes.common import store_of
from collabvr.nodes.prepare import preflight
from collabvr.prices import Estimate
from collabvr.rundir import (
    CHECKPOINTS,
    CLIPS,
    FINAL,
    OUTPUTS,
    RUN,
    SHEET,
    TRACE,
    clip_name,
    is_stepwise,
    write_json,
    write_timeline,
)
from collabvr.scoring import JudgeSpec, first_order_score, judge_video
from collabvr.state import history
from collabvr.task import Task

Event = dict[str, Any]


@dataclasses.dataclass
class Episode:
    """The outcome of one run, as the library returns it."""

    task: Task
    status: str
    reason: str
    out_dir: RunPath  # a Path, or a universal path for a URL (s3://...)
    state: dict[str, Any]
    score: dict[str, Any] | None
    wall_s: float
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every attempt, archived steps too
    repairs: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def compute(self) -> dict[str, float]:
        return self.state.get("compute", {})

    @property
    def final_video(self) -> RunPath:
        return self.out_dir / FINAL

    @property
    def trace_path(self) -> RunPath:
        return self.out_dir / TRACE


def bill(method: str, ctx: Context, prices: dict[str, dict[str, Any]] | None = None, *,
         judge: JudgeSpec | None = None, references: int = 0) -> Estimate:
    """The most one episode of ``method`` can cost under ``ctx``, from the price table: its worst
    case (every attempt, every round) with clip-seconds capped by the budget, plus, with a ``judge``,
    the judge's calls on the final video (:func:`judge_bill`; a part of its own in the estimate).
    Resolves backends."""
    name, method_overrides = parse_method(method)
    ctx = make_context(ctx, **method_overrides)
    prices = prices if prices is not None else price_table.load_prices()
    vgm = registry.resolve_vgm(ctx.vgm, ctx.vgm_options)
    vlm = registry.resolve_vlm(ctx.vlm, ctx.vlm_options)
    billed = getattr(vgm, "billed_seconds", None)
    lengths = (ctx.first_clip_seconds, ctx.clip_seconds, horizon(ctx))
    ratio = max(billed(s) / s for s in lengths) if billed else 1.0
    own = price_table.estimate(worst_case(name, ctx), vgm=priced_spec(ctx.vgm, vgm), vlm=priced_spec(ctx.vlm, vlm),
                               prices=prices, billed_ratio=max(ratio, 1.0)).labelled("method")
    if judge is None:
        return own
    return own.plus(judge_bill(ctx, judge, prices, references=references))


def judge_bill(ctx: Context, judge: JudgeSpec, prices: dict[str, dict[str, Any]] | None = None, *,
               references: int = 0) -> Estimate:
    """The most judging one final video can cost: ``judge.repeats`` calls, each shown the whole video
    (the method's horizon), the first frame and the task's ``references`` images, priced on the judge
    (a :class:`Compute` counts images and video seconds over all its calls)."""
    vlm = registry.resolve_vlm(judge.vlm, judge.options)
    n = judge.repeats
    bound = Compute(vlm_calls=n, vlm_images=n * (1 + references), vlm_video_seconds=n * horizon(ctx))
    return price_table.estimate(bound, vgm="sim", vlm=priced_spec(judge.vlm, vlm),
                                prices=prices if prices is not None else price_table.load_prices()).labelled("judge")


def judge_for(task: Task, ctx: Context, judge: JudgeSpec | None = None) -> JudgeSpec | None:
    """Who judges the final video: ``judge``, else the run's VLM for a (non-sim) task with a rubric."""
    if judge is None and task.rubric and not task.is_sim:
        return JudgeSpec(ctx.vlm, dict(ctx.vlm_options))
    return judge


def priced_spec(spec: str, backend: Any) -> str:
    """``provider:model`` with the model the backend actually uses (``gemini`` -> its default model)."""
    provider, model = registry.parse_spec(spec)
    return f"{provider}:{getattr(backend, 'model', None) or model}"


def recursion_limit(ctx: Context) -> int:
    """Enough super-steps for any method's longest path under these budgets."""
    return ctx.max_steps * (ctx.max_attempts * 4 + 2) + 4 * ctx.rounds + 2 * ctx.k + 10


THREAD = "episode"


def run(
    task: Task | str,
    *,
    context: Context | None = None,
    method: str = "collabvr",
    graph: CompiledStateGraph | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_interrupt: Callable[[dict[str, Any]], Any] | None = None,
    config: dict[str, Any] | None = None,
    resume: bool = False,
    durable: bool = False,
    judge: JudgeSpec | None = None,
    stop: threading.Event | None = None,
    **overrides: Any,
) -> Episode:
    """Run one episode of ``method`` (default CollabVR) and write its run directory.

    ``task`` is a :class:`Task` or a sim spec such as ``"sim:maze/hard"`` (a sim task's seed is the run's
    seed when the context leaves ``seed`` at its default, as on the command line); ``method`` a name from
    ``collabvr.graph.METHODS`` or ``pass@K``; keyword overrides set context fields
    (``vlm="sim:noisy"``, ``max_steps=4``, ``out_dir=...``). ``graph`` replaces the method's
    compiled graph (e.g. one compiled with your checkpointer, with ``config`` naming its thread).

    ``on_event`` receives each custom stream event. With ``approve_plans``, the graph pauses after
    every plan; ``on_interrupt(payload)`` answers it (the payload is the interrupt's, plus
    ``frame_path``, the frame as a PNG in the run directory) with a resume value of
    :mod:`collabvr.nodes.approve`.

    Checkpoints: the given graph's checkpointer; else, with ``durable=True``, SQLite in
    ``<out_dir>/checkpoints.sqlite`` (what ``collabvr run`` uses); else in memory. With
    ``resume=True`` a thread that has a checkpoint continues from it instead of starting fresh,
    and the run directory's clips are kept.

    ``judge`` scores the final video with a VLM judge (the task's rubric when it has one); a task
    with a rubric and no ``judge`` is judged by the run's own VLM. Judge calls are counted in the
    score's ``judge`` entry, apart from the method's compute.

    ``stop``: once it is set, the episode stops after the node that is running (one model call at
    most, never a new one) and raises :class:`collabvr.errors.Stopped`; its checkpoint resumes it.
    """
    name, method_overrides = parse_method(method)
    ctx = make_context(context, **{**method_overrides, **overrides})
    if isinstance(task, str):
        task = Task.parse(task, seed=ctx.seed)
    elif task.is_sim and task.seed is not None and "seed" not in ctx.given:
        # a sim task's seed seeds the run too, unless the caller set one (a bench sets each episode's):
        # Task.sim("maze/hard", seed=7) runs the episode `collabvr run --task sim:maze/hard --seed 7` runs
        ctx = make_context(ctx, seed=task.seed)
    if ctx.approve_plans and on_interrupt is None:
        raise BadInput("approve_plans pauses the graph after every plan: pass on_interrupt to answer it")
    preflight(task, ctx)
    judge = judge_for(task, ctx, judge)
    if judge is not None:
        registry.resolve_vlm(judge.vlm, judge.options)  # a bad judge spec fails before any work
    out = path_of(ctx.out_dir)  # a directory, or a URL (s3://bucket/prefix): the same files either way
    here = local_dir(ctx.out_dir)  # what only a local disk holds: checkpoints, the approval frames
    if not is_remote(ctx.out_dir):
        here.mkdir(parents=True, exist_ok=True)
    with _checkpointed(graph or compiled(name), here, durable=durable, fresh=not resume) as graph:
        config = config or {"configurable": {"thread_id": THREAD}}
        saved = _checkpoint(graph, config) if resume else None
        _clear_outputs(out, keep_clips=saved is not None)
        store = store_of(ctx)
        task = task.materialize(store)
        if saved is None:
            write_json(out / RUN, {"task": task.model_dump(mode="json"), "method": method, "context": ctx.public()})
        # the method as the user named it (pass@8, not pass_at_k) labels the LangSmith runs
        run_config = {"recursion_limit": recursion_limit(ctx), **config,
                      "metadata": {"method": method, **config.get("metadata", {})}}
        started = time.perf_counter()
        state: dict[str, Any] = dict(saved.values) if saved is not None else {}
        graph_input: Any = None if saved is not None else {"task": task.model_dump(mode="json")}
        try:
            # a finished thread has nothing left to run; a killed one may have saved a step's writes and not
            # the checkpoint after them (its snapshot's tasks hold the writes and .next is empty): it goes on
            while saved is None or saved.next or saved.tasks:
                for mode, chunk in _stream(graph, graph_input, run_config, ctx, stop):
                    if mode == "custom" and on_event is not None:
                        on_event(chunk)
                saved = graph.get_state(run_config)
                state = dict(saved.values)
                if not saved.interrupts:
                    break
                if on_interrupt is None:  # resumed without anyone to answer: stop here, resumable
                    raise BadInput("the episode is paused for plan approval; resume it with an approver")
                graph_input = Command(resume=on_interrupt(_with_frame_path(dict(saved.interrupts[0].value), store, here)))
            wall = time.perf_counter() - started
            attempts, repairs = history(state, store.load_json)
            episode = Episode(task, state.get("status", "unknown"), state.get("reason", ""), out, state,
                              score_episode(task, store, state, judge=judge), wall, attempts, repairs)
            write_outputs(episode, store, ctx)
            return episode
        except BaseException as exc:
            write_json(out / TRACE, {
                "collabvr": __version__, "task": task.model_dump(mode="json"), "context": ctx.public(),
                "status": "error", "reason": redact(f"{type(exc).__name__}: {exc}"), "state": state,
            })
            raise


def _stream(graph: CompiledStateGraph, graph_input: Any, config: dict[str, Any], ctx: Context,
            stop: threading.Event | None) -> Iterator[tuple[str, Any]]:
    """The graph's (mode, chunk) stream: its custom events and each node's end, where a set ``stop``
    raises Stopped (closing the stream lets the running node finish and saves its writes, and no node
    starts after it)."""
    stopped = stop.is_set if stop is not None else lambda: False
    if stopped():
        raise Stopped("stopped before it started")
    for mode, chunk in graph.stream(graph_input, config, context=ctx, stream_mode=["custom", "updates"]):
        yield mode, chunk
        if stopped():
            raise Stopped("stopped after the node that was running; its checkpoint resumes it")


@contextmanager
def _checkpointed(graph: CompiledStateGraph, out: Path, *, durable: bool, fresh: bool) -> Iterator[CompiledStateGraph]:
    """The graph with a checkpointer: its own, else SQLite in ``out`` (the run directory, or for a
    remote one its local cache directory: durable), else in memory. A fresh durable run starts a new
    database, so it never continues an older run."""
    if graph.checkpointer is not None:
        yield graph
        return
    if not durable:
        yield graph.copy(update={"checkpointer": InMemorySaver()})
        return
    out.mkdir(parents=True, exist_ok=True)
    if fresh:
        for stale in out.glob(CHECKPOINTS + "*"):
            stale.unlink()
    with sqlite_saver(out / CHECKPOINTS) as saver:
        yield graph.copy(update={"checkpointer": saver})


@contextmanager
def sqlite_saver(path: Path, *, exclusive: bool = False) -> Iterator[Any]:
    """A SQLite checkpointer at ``path``, shared safely by threads; closed when the block ends.
    Used by durable CLI runs and by the bench. ``exclusive``: this process alone opens the file
    while the block runs, so SQLite keeps the WAL index in memory instead of a shared-memory file,
    which a network file system cannot share (the Ray executor's per-episode checkpoints)."""
    from langgraph.checkpoint.sqlite import SqliteSaver  # a dependency; imported where checkpoints are made

    conn = sqlite3.connect(str(path), check_same_thread=False)  # SqliteSaver serialises access with a lock
    try:
        if exclusive:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first WAL access
        saver = SqliteSaver(conn)
        saver.setup()  # WAL mode; NORMAL sync survives a killed process (not a power cut) with fewer fsyncs
        conn.execute("PRAGMA synchronous=NORMAL")
        yield saver
    finally:
        conn.close()


def _with_frame_path(payload: dict[str, Any], store: ArtifactStore, out: Path) -> dict[str, Any]:
    """The interrupt payload plus the frame as a PNG a person can open (on this machine's disk)."""
    frame = payload.get("frame")
    if frame:
        path = out / "approvals" / f"step{payload.get('step', 0) + 1}.png"
        store.export(frame, path)
        payload["frame_path"] = str(path)
    return payload


def score_episode(task: Task, store: ArtifactStore, state: dict[str, Any], *, judge: JudgeSpec | None = None
                  ) -> dict[str, Any] | None:
    """The final video's score: the sim scorer's, which the graph's finalize recorded; the first-order
    scorer on VBVR samples (not the official score); the VLM judge when one is given; None otherwise
    (a user task without a judge)."""
    final = state.get("final")
    if task.is_sim or final is None:
        return state.get("score")
    video = store.load_video(final)
    if task.suite == "vbvr" and judge is None:
        first, last = video.frames_at([0, -1])  # all the scorer reads: never the whole clip
        return first_order_score([first.array, last.array], Image.open(task.meta["first_frame_path"]).array,
                                 Image.open(task.meta["final_frame_path"]).array)
    if judge is not None:
        return judge_video(task, video, store.load_image(task.first_frame), judge)
    return None


def write_outputs(episode: Episode, store: ArtifactStore, ctx: Context) -> None:
    out, state = episode.out_dir, episode.state
    attempts, repairs = episode.attempts, episode.repairs
    clips = []
    for attempt in attempts:
        if attempt.get("clip"):
            name = clip_name(attempt)
            store.export(attempt["clip"], out / name)
            clips.append(name)
    if state.get("final"):
        store.export(state["final"], out / FINAL)
    sheet = contact_sheet(_sheet_rows(state, attempts, store))
    write_atomic(out / SHEET, sheet.to_png())
    trace = {
        "collabvr": __version__,
        "task": episode.task.model_dump(mode="json"),
        "context": ctx.public(),
        "status": episode.status,
        "reason": episode.reason,
        "score": episode.score,
        "wall_s": round(episode.wall_s, 4),
        "compute": state.get("compute", {}),
        "steps": state.get("steps", []),
        "attempts": attempts,
        "repairs": repairs,
        "final": state.get("final"),
        "files": {"final": FINAL, "contact_sheet": SHEET, "clips": clips, "artifacts": _relative(store.url, out)},
    }
    write_json(out / TRACE, trace)
    write_timeline(out)


def _relative(url: str, out: RunPath) -> str:
    """The store's root relative to the run directory when it lies inside it, else its URL."""
    base = location(out).rstrip("/") + "/"
    return url[len(base):] if url.startswith(base) else url


def _checkpoint(graph: CompiledStateGraph, config: dict[str, Any] | None) -> Any | None:
    """The thread's latest checkpoint (a StateSnapshot), or None when there is none to resume."""
    if graph.checkpointer is None or not (config or {}).get("configurable", {}).get("thread_id"):
        return None
    snapshot = graph.get_state(config)
    return snapshot if snapshot.values else None


def _sheet_rows(state: dict[str, Any], attempts: list[dict[str, Any]], store: ArtifactStore) -> list[tuple[Image, Image, str]]:
    """Start and end frame of every accepted step; of a whole-video method (no steps), of every video it
    made. ``attempts``: every attempt of the episode (:func:`collabvr.state.history`)."""
    if not is_stepwise(state.get("steps", []), attempts):
        return [(store.load_image(a["cond_frame"]), store.load_image(a["last_frame"]), _video_caption(a))
                for a in attempts if a.get("cond_frame") and a.get("last_frame")]
    rows = []
    verified = {a.get("step") for a in attempts if a.get("status") == "accepted"}
    for s in state.get("steps", []):
        kept = f"accepted after {s['attempts']} attempt(s)" if s["step"] in verified else "kept (not verified)"
        caption = f"step {s['step'] + 1}: {kept}\n{s['plan']['instruction']}"
        rows.append((store.load_image(s["start_frame"]), store.load_image(s["end_frame"]), caption))
    failed = state.get("attempts", [])
    if state.get("status") == "attempts_exhausted" and failed:
        last = failed[-1]
        end = last.get("last_frame") or state["frame"]
        why = (last.get("verdict") or {}).get("reason") or (last.get("error") or {}).get("message", "")
        caption = f"step {state['step'] + 1}: {last['status']} x{len(failed)}\n{why}"
        rows.append((store.load_image(state["frame"]), store.load_image(end), caption))
    return rows


def _video_caption(attempt: dict[str, Any]) -> str:
    """What became of one video of a whole-video method: selected or not, and why; or the critique."""
    why = (attempt.get("selection") or {}).get("reason") or (attempt.get("critique") or {}).get("critique", "")
    label = f"round {attempt['round'] + 1}, video {attempt['index'] + 1}" if "round" in attempt else f"video {attempt.get('index', 0) + 1}"
    return f"{label}: {attempt.get('status', '')}\n{why}"


def _clear_outputs(out: RunPath, *, keep_clips: bool = False) -> None:
    if not is_remote(out):
        out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    clips = out / CLIPS
    if clips.is_dir() and not keep_clips:
        for path in clips.glob("*.mp4"):
            path.unlink()
