"""The ``collabvr`` command: run an episode, benchmark methods, write a report, print the graph.

Bad input (unknown task or backend, invalid budgets, unreadable image, a sim backend on a user
task, an out-of-range number, an output path that cannot be written) prints one line and exits with
code 2, with no traceback; Ctrl-C says how to resume and exits 130 (:mod:`collabvr.cli_guard`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from collabvr.bench.config import BenchConfig
from collabvr.cli_guard import Guarded, fail, working_in, writable
from collabvr.context import RANGES, Context, make_context
from collabvr.errors import BadInput, unmasked
from collabvr.location import is_remote, local_dir, location, path_of
from collabvr.rundir import RUN, TRACE
from collabvr.status import EXIT_INCOMPLETE, EXIT_INTERNAL, exit_code
from collabvr.task import SIM_SIZES

app = typer.Typer(cls=Guarded, add_completion=False, no_args_is_help=True, help="Collaborative video reasoning (CollabVR).")
# a log or a pipe gets whole lines: with no terminal width to fit, tables are not wrapped at 80 columns
console = Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 200)
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)


_fail = fail  # what the commands call: one line, exit 2 (collabvr.cli_guard)


def _within(bounds: tuple[int, int]) -> dict[str, int]:
    """typer.Option's min and max: an out-of-range number is refused while the options are read."""
    return {"min": bounds[0], "max": bounds[1]}


SEEDS = _within(RANGES["seed"])
SIZES = _within(SIM_SIZES)


def _where(path: Path) -> str:
    """--out as the user meant it: a URL that typer's Path collapsed (s3:/bucket) gets its // back."""
    return location(str(path)) if is_remote(str(path)) else str(path)


def _local_only(bench_dir: Path, command: str) -> None:
    """BadInput for a benchmark directory given as a URL: this command reads a local one."""
    if is_remote(str(bench_dir)):
        url = location(str(bench_dir))
        raise BadInput(f"collabvr {command} reads a local directory; copy {url} first (e.g. aws s3 sync {url} DIR), "
                       f"then: collabvr {command} DIR")


def _options(pairs: list[str] | None) -> dict[str, Any]:
    """key=value pairs; values are parsed as JSON when they parse (numbers, booleans), else strings."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"option {pair!r} must look like key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _warn_unreadable(results: Path) -> None:
    """Say which lines of a results file are skipped: a torn last line after a kill, or a line edited by hand."""
    from collabvr.bench.results import unreadable

    lines = unreadable(results)
    if lines:
        numbers = ", ".join(map(str, lines[:10])) + (", ..." if len(lines) > 10 else "")
        console.print(f"warning: {results}: {len(lines)} line(s) cannot be read and are skipped (line {numbers}); "
                      "their episodes are left out, and a bench run into this directory runs them again",
                      highlight=False, markup=False, soft_wrap=True)


def _default(cls: type, name: str) -> Any:
    """The default of a dataclass field: Context and BenchConfig own the defaults, the CLI shows them."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]


def _context_default(name: str) -> str:
    return str(_default(Context, name))


def _bench_default(name: str) -> Any:
    return _default(BenchConfig, name)


def _confirm(estimate: Any, *, yes: bool, above: float) -> None:
    """Print the bill of a paid run; above ``above`` USD ask before paying (``--yes`` skips it).
    Without a terminal to ask on, refuse: nothing has been called yet."""
    if not estimate.paid:
        return
    console.print(f"estimated cost: {estimate.describe()}", highlight=False)
    if yes or (estimate.usd is not None and estimate.usd <= above):
        return
    if not sys.stdin.isatty():
        raise BadInput(f"the estimated cost exceeds --confirm-above {above:g} USD and there is no terminal to ask; "
                       "pass --yes to go ahead")
    if not typer.confirm("go ahead?", default=False, err=True):
        raise BadInput("stopped before any paid call")


# Context fields the run command sets, as (CLI parameter, Context field); their defaults live in Context.
_RUN_FIELDS = {"vlm": "vlm", "vgm": "vgm", "max_steps": "max_steps", "max_attempts": "max_attempts",
               "first_seconds": "first_clip_seconds", "seconds": "clip_seconds", "fps": "fps",
               "partial_threshold": "partial_threshold", "seed": "seed", "seed_policy": "seed_policy",
               "out_dir": "out_dir", "budget": "budget_seconds", "approve": "approve_plans"}


def _from_config(path: Path | None) -> dict[str, Any]:
    """Context fields and backend options from a --config file (TOML or YAML)."""
    if path is None:
        return {}
    from collabvr.config_file import load_config

    return load_config(path)


def _context_of(config: dict[str, Any], given: dict[str, Any], vlm_option: list[str] | None,
                vgm_option: list[str] | None) -> dict[str, Any]:
    """Context fields by precedence: the command line, then the config file, then Context's defaults.
    Backend options merge key by key, the command line winning."""
    fields = {**config, **{k: v for k, v in given.items() if v is not None}}
    fields["vlm_options"] = {**config.get("vlm_options", {}), **_options(vlm_option)}
    fields["vgm_options"] = {**config.get("vgm_options", {}), **_options(vgm_option)}
    return fields


@app.command()
def run(
    task: Annotated[str | None, typer.Option(help="A sim task: sim:FAMILY/DIFFICULTY.", show_default="sim:maze/hard")] = None,
    method: Annotated[str, typer.Option(help="collabvr, or a baseline: single, pass@K, upfront_plan, posthoc_critique, prompt_opt.")] = "collabvr",
    image: Annotated[Path | None, typer.Option(help="Your own task's first frame (use with --prompt).")] = None,
    prompt: Annotated[str | None, typer.Option(help="Your own task's prompt (use with --image).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML or YAML file of context fields and backend options; flags override it.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed: picks the sim instance and seeds every random draw.", show_default=_context_default("seed"), **SEEDS)] = None,
    vlm: Annotated[str | None, typer.Option(help="VLM as provider:model.", show_default=_context_default("vlm"))] = None,
    vgm: Annotated[str | None, typer.Option(help="Video model as provider:model.", show_default=_context_default("vgm"))] = None,
    vlm_option: Annotated[list[str] | None, typer.Option(help="VLM option key=value (repeatable).")] = None,
    vgm_option: Annotated[list[str] | None, typer.Option(help="VGM option key=value (repeatable).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Most steps per episode.", show_default=_context_default("max_steps"), **_within(RANGES["max_steps"]))] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Most attempts per step.", show_default=_context_default("max_attempts"), **_within(RANGES["max_attempts"]))] = None,
    first_seconds: Annotated[float | None, typer.Option(help="First clip length (s).", show_default=_context_default("first_clip_seconds"))] = None,
    seconds: Annotated[float | None, typer.Option(help="Later clip length (s).", show_default=_context_default("clip_seconds"))] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second.", show_default=_context_default("fps"), **_within(RANGES["fps"]))] = None,
    partial_threshold: Annotated[float | None, typer.Option(help="Good fraction above which to regenerate from the error.", show_default=_context_default("partial_threshold"))] = None,
    seed_policy: Annotated[str | None, typer.Option(help="fixed (paper) or vary (new seed per attempt).", show_default=_context_default("seed_policy"))] = None,
    budget: Annotated[float | None, typer.Option(help="Most VGM clip-seconds for the episode (0: no limit).", show_default=_context_default("budget_seconds"))] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run directory.", show_default=_context_default("out_dir"))] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before a paid run above --confirm-above.")] = False,
    confirm_above: Annotated[float, typer.Option(help="Ask before a run whose estimated maximum cost exceeds this many USD.")] = 1.0,
    quiet: Annotated[bool, typer.Option(help="No live progress.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Pause after every plan: approve, edit or stop it at the terminal.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run in this run directory, from its last checkpoint.")] = None,
    rubric: Annotated[Path | None, typer.Option(help="Score the final video with the judge against this rubric file (Markdown, or a Gen-ViRe eval_task_description).")] = None,
    judge_vlm: Annotated[str | None, typer.Option(help="The judge as provider:model (default: --vlm); scores the final video.")] = None,
    judge_vlm_option: Annotated[list[str] | None, typer.Option(help="Judge option key=value (repeatable).")] = None,
) -> None:
    """Run one episode and write final.mp4, trace.json, clips/, contact_sheet.png and episode.html.

    Exit codes: 0 the episode completed, 3 it ended without completing (see collabvr.status),
    2 bad input or a failed preflight (nothing was called), 1 an internal error.
    """
    from collabvr.runner import bill, judge_for, preflight
    from collabvr.runner import run as run_episode
    from collabvr.scoring import reference_paths
    from collabvr.task import Task

    try:
        if (image is None) != (prompt is None):
            raise BadInput("--image and --prompt go together")
        if image is not None and task is not None:
            raise BadInput("give either --task or --image/--prompt, not both")
        given = {"vlm": vlm, "vgm": vgm, "max_steps": max_steps, "max_attempts": max_attempts,
                 "first_seconds": first_seconds, "seconds": seconds, "fps": fps, "partial_threshold": partial_threshold,
                 "seed": seed, "seed_policy": seed_policy, "out_dir": _where(out_dir) if out_dir else None, "budget": budget,
                 "approve": True if approve else None}
        base, the_task = _from_config(config_file), None
        if resume is not None:  # the run's own task, method and context; flags given now override them
            if task is not None or image is not None or out_dir is not None:
                raise BadInput("--resume continues a run directory's own task in it: leave out --task, --image and --out")
            the_task, method, base = _saved_run(resume, base)
            given["out_dir"] = _where(resume)
        fields = _context_of(base, {_RUN_FIELDS[k]: v for k, v in given.items()}, vlm_option, vgm_option)
        ctx = make_context(**fields)
        if the_task is None:
            the_task = Task.from_image(image, prompt) if image is not None else Task.parse(task or "sim:maze/hard", seed=ctx.seed)
        the_task, judge = _judged(the_task, ctx, rubric, judge_vlm, judge_vlm_option)
        if ctx.approve_plans and not sys.stdin.isatty():
            raise BadInput("--approve asks at the terminal, and there is none; in code, pass on_interrupt to collabvr.run")
        preflight(the_task, ctx)
        working_in(local_dir(ctx.out_dir), _resume_command(ctx.out_dir))  # its checkpoints stay local
        if out_dir is None and resume is None and "out_dir" not in base:
            _replacing(Path(ctx.out_dir))
        references = len(reference_paths(the_task.meta or {}))
        _confirm(bill(method, ctx, judge=judge_for(the_task, ctx, judge), references=references), yes=yes, above=confirm_above)
        progress = None if quiet else _Progress(skip={"plan"} if ctx.approve_plans else set())  # the approval shows it
        episode = run_episode(the_task, context=ctx, method=method, on_event=progress, judge=judge, durable=True,
                              resume=resume is not None, on_interrupt=_ask_approval if ctx.approve_plans else None)
    except BadInput as exc:
        _fail(str(exc))
    _summary(episode)
    raise typer.Exit(exit_code(episode.status))


def _replacing(run_dir: Path) -> None:
    """Say so when a run without --out replaces the earlier run in the default run directory."""
    if (run_dir / RUN).is_file() or (run_dir / TRACE).is_file():
        console.print(f"note: this run replaces the earlier run in {run_dir}; give --out DIR to keep each run",
                      highlight=False, markup=False, soft_wrap=True)


def _resume_command(where: str) -> Any:
    """What resumes a run in ``where`` (a directory or a URL), once it has started there (its run.json);
    before that, the same command."""
    return lambda: f"collabvr run --resume {shlex.quote(where)}" if (path_of(where) / RUN).is_file() else ""


def _saved_run(run_dir: Path, base: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """(task, method, context fields) a run directory started with (its run.json), under ``base``.
    Options recorded as secrets ("***") are left out: keys come from the environment again."""
    from collabvr.task import Task

    try:
        saved = json.loads((path_of(str(run_dir)) / RUN).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"--resume {run_dir}: not a run directory of collabvr run ({RUN}: {exc})") from None
    context = {k: v for k, v in saved["context"].items() if v != "***"}
    for key in ("vlm_options", "vgm_options"):
        context[key] = {**{k: v for k, v in context.get(key, {}).items() if v != "***"}, **base.get(key, {})}
    rest = {k: v for k, v in base.items() if not k.endswith("_options")}
    task = saved["task"]
    for path in [task.get("image_path") or "", *(v for v in (task.get("meta") or {}).values() if isinstance(v, str))]:
        unmasked(path, f"a path of the task in {run_dir / RUN}")  # read again: its first frame, its references
    return Task.model_validate(saved["task"]), saved["method"], {**context, **rest}


_ANSWERS = {"a": "approve", "approve": "approve", "e": "edit", "edit": "edit", "s": "stop", "stop": "stop"}


def _ask_approval(payload: dict[str, Any]) -> Any:
    """Show the plan and its frame once, then ask until the answer is approve, edit or stop (or their
    first letters): a typo never spends a paid generation. Returns a resume value of nodes/approve."""
    plan = payload["plan"]
    console.print(f"[cyan]step {payload['step'] + 1}[/] plan: {escape(plan['instruction'])}", highlight=False)
    if plan.get("target_state"):
        console.print(f"  target: {escape(plan['target_state'])}", highlight=False)
    console.print(f"  frame: {payload.get('frame_path', '(none)')}", highlight=False)
    if payload.get("error"):
        console.print(f"  [red]{escape(payload['error'])}[/]", highlight=False)
    while True:
        choice = _ANSWERS.get(typer.prompt("  [a]pprove, [e]dit or [s]top", err=True).strip().lower())
        if choice == "stop":
            return {"action": "stop", "reason": "at the terminal"}
        if choice == "approve":
            return "approve"
        if choice == "edit":
            instruction = typer.prompt("  new instruction", default=plan["instruction"], err=True).strip()
            if instruction:
                return {"action": "edit", "instruction": instruction}
        console.print("  answer approve, edit or stop (a, e or s)", highlight=False)


def _judged(task: Any, ctx: Context, rubric: Path | None, judge_vlm: str | None, options: list[str] | None) -> tuple[Any, Any]:
    """The task with its rubric, and who judges it (None: nobody, or the run's VLM for a rubric)."""
    from collabvr.scoring import JudgeSpec

    if rubric is not None:
        try:
            task = task.with_rubric(rubric.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read --rubric {rubric}: {exc}") from None
    if judge_vlm is None and options:
        raise BadInput("--judge-vlm-option needs --judge-vlm")
    if judge_vlm is None:
        return task, None
    return task, JudgeSpec(judge_vlm, _options(options))


@app.command()
def graph(method: Annotated[str, typer.Option(help="Which method's graph.")] = "collabvr") -> None:
    """Print the method's graph as a Mermaid diagram."""
    from collabvr.graph import compiled, parse_method

    try:
        name, _ = parse_method(method)
    except BadInput as exc:
        _fail(str(exc))
    out.print(compiled(name).get_graph().draw_mermaid(), highlight=False, markup=False)


@app.command()
def bench(
    out_dir: Annotated[Path, typer.Option("--out", help="Benchmark directory: episodes/, results.jsonl, results.md, summary.json.")],
    suite: Annotated[str, typer.Option(help=escape("sim, sim:FAMILY[/DIFFICULTY], vbvr:DIR[:SPLIT[/TASK]] (VBVR-Bench) or genvire:DIR[:CATEGORY[/SUBTASK]] (Gen-ViRe; docs/benchmarks.md)."))] = _bench_default("suite"),
    methods: Annotated[str, typer.Option(help="Comma-separated methods, e.g. single,pass@4,collabvr.")] = ",".join(_bench_default("methods")),
    n: Annotated[int, typer.Option("--n", help="Episodes per method and cell: seeds SEED..SEED+N-1.")] = _bench_default("n"),
    concurrency: Annotated[int, typer.Option(help="Episodes at once.")] = _bench_default("concurrency"),
    seed: Annotated[int, typer.Option(help="First seed.", **SEEDS)] = _bench_default("seed"),
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML or YAML file of context fields and backend options; flags override it.")] = None,
    vgm: Annotated[str | None, typer.Option(help="Video model as provider:model.", show_default=_bench_default("vgm"))] = None,
    vlm: Annotated[str | None, typer.Option(help="VLM as provider:model.", show_default=_bench_default("vlm"))] = None,
    vgm_option: Annotated[list[str] | None, typer.Option(help="VGM option key=value (repeatable).")] = None,
    vlm_option: Annotated[list[str] | None, typer.Option(help="VLM option key=value (repeatable).")] = None,
    budget: Annotated[str, typer.Option(help="VGM clip-seconds per episode, or match:METHOD (its mean per cell).")] = _bench_default("budget"),
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Cache backend calls in DIR/cache.")] = _bench_default("cache"),
    size: Annotated[int, typer.Option(help="Sim frame size (even).", **SIZES)] = _bench_default("size"),
    prices: Annotated[Path | None, typer.Option(help="JSON price table merged over the built-in one: {MODEL: {input_per_mtok, output_per_mtok} or {per_second}} (docs/backends.md).")] = None,
    backend_limit: Annotated[int, typer.Option(help="Concurrent calls per backend (0: --concurrency).")] = _bench_default("backend_limit"),
    max_steps: Annotated[int | None, typer.Option(help="Most steps per episode (advanced).", show_default=_context_default("max_steps"), **_within(RANGES["max_steps"]))] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Most attempts per step (advanced).", show_default=_context_default("max_attempts"), **_within(RANGES["max_attempts"]))] = None,
    first_seconds: Annotated[float | None, typer.Option(help="First clip length in seconds (advanced).", show_default=_context_default("first_clip_seconds"))] = None,
    seconds: Annotated[float | None, typer.Option(help="Later clip length in seconds (advanced).", show_default=_context_default("clip_seconds"))] = None,
    max_cost: Annotated[float, typer.Option(help="Start no episode once the episodes run have cost this many USD (0: no cap).")] = _bench_default("max_cost"),
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before a paid run above --confirm-above.")] = False,
    confirm_above: Annotated[float, typer.Option(help="Ask before a run whose estimated maximum cost exceeds this many USD.")] = 5.0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    runs: Annotated[int, typer.Option(help="Benchmark suites: generated videos per sample (Gen-ViRe's official protocol: 5).")] = _bench_default("runs"),
    judge_vlm: Annotated[str | None, typer.Option(help="The judge as provider:model (default: --vlm, for tasks with a rubric).")] = None,
    judge_vlm_option: Annotated[list[str] | None, typer.Option(help="Judge option key=value (repeatable).")] = None,
    judge_repeats: Annotated[int, typer.Option(help="Judge calls per video, averaged (the paper's protocol; not Gen-ViRe's official one).")] = _bench_default("judge_repeats"),
    strict: Annotated[bool, typer.Option("--strict", help="Tables score a failed judge call 0 instead of dropping it as the official scripts do.")] = False,
    strict_memory: Annotated[bool, typer.Option("--strict-memory", help="Refuse (exit 2) instead of lowering --concurrency when the episodes' estimated memory exceeds what is available.")] = False,
    all_samples: Annotated[bool, typer.Option("--all-samples", help="Gen-ViRe: every id of the eval jsons, not only the official three per subtask.")] = False,
    evalkit: Annotated[Path | None, typer.Option(help="VBVR: score the videos, floors and ceilings with this VBVR-EvalKit clone when the bench ends.")] = None,
    evalkit_entry: Annotated[str, typer.Option(help="VBVR-EvalKit entry point: run_evaluation (task-specific score) or evaluate (weighted score).")] = _bench_default("evalkit_entry"),
    evalkit_python: Annotated[str | None, typer.Option(help="The interpreter that has VBVR-EvalKit's requirements (default: this one).")] = None,
    executor: Annotated[str, typer.Option(help="local: threads of this process; ray: Ray tasks on a cluster (docs/scaling.md).")] = _bench_default("executor"),
    address: Annotated[str | None, typer.Option(help="Ray: the cluster to join (auto, HOST:PORT); default: start a local one.")] = None,
    ray_workers: Annotated[int, typer.Option(help="Ray, local cluster: episodes at once on this machine's CPUs (0: all of them).")] = _bench_default("ray_workers"),
    gpus_per_model: Annotated[int, typer.Option(help="Ray: GPUs per actor holding the local models; one actor per that many GPUs.")] = _bench_default("gpus_per_model"),
) -> None:
    """Run methods over a suite, resumably; write results.jsonl, results.md and summary.json.

    Exit codes: 0 every episode ran (whatever the scores), 3 --max-cost stopped it early,
    2 bad input or a failed preflight, 1 some episodes raised an internal error.
    """
    from collabvr.bench.pace import plan_line, stopping_line
    from collabvr.bench.report import results_table
    from collabvr.bench.runner import bench_bill, run_bench
    from collabvr.bench.runner import executor as executor_for
    from collabvr.prices import load_prices

    try:
        fields = _context_of(_from_config(config_file), {"vgm": vgm, "vlm": vlm, "max_steps": max_steps,
                             "max_attempts": max_attempts, "first_clip_seconds": first_seconds, "clip_seconds": seconds},
                             vlm_option, vgm_option)
        backends = {k: fields.pop(k) for k in ("vgm", "vlm", "vgm_options", "vlm_options") if k in fields}
        out_dir = path_of(str(out_dir))  # a directory, or a URL (s3://bucket/prefix)
        config = BenchConfig(
            out=out_dir, suite=suite, methods=[m.strip() for m in methods.split(",") if m.strip()], n=n, seed=seed,
            concurrency=concurrency, backend_limit=backend_limit, budget=budget, cache=cache, size=size, context=fields,
            prices=load_prices(prices), max_cost=max_cost, runs=runs, judge_vlm=judge_vlm or "",
            judge_vlm_options=_options(judge_vlm_option), judge_repeats=judge_repeats, strict=strict, strict_memory=strict_memory,
            all_samples=all_samples, evalkit=str(evalkit or ""), evalkit_entry=evalkit_entry, evalkit_python=evalkit_python or "",
            executor=executor, address=address or "", ray_workers=ray_workers, gpus_per_model=gpus_per_model, **backends,
        )
        config.check()  # before a Ray cluster starts
        working_in(local_dir(out_dir), kept=f"the finished episodes in {out_dir / 'results.jsonl'}")
        with executor_for(config) as execute:  # the bill's preflight reaches the model hosts, not a copy here
            _warn_unreadable(out_dir / "results.jsonl")
            _confirm(bench_bill(config), yes=yes, above=confirm_above)
            progress = _BenchProgress(quiet, concurrency=config.concurrency, plan=plan_line(config))
            with progress:
                cells = run_bench(config, on_start=progress.start, on_result=progress.update, execute=execute,
                                  on_official=_KitOutput(quiet),
                                  on_warning=lambda line: console.print(escape(line), highlight=False, soft_wrap=True),
                                  on_stop=lambda n: console.print(stopping_line(n), highlight=False, soft_wrap=True))
    except BadInput as exc:
        _fail(str(exc))
    out.print(results_table(cells, title=f"{suite}: {out_dir}"))
    report = f"collabvr report {out_dir}" if not is_remote(out_dir) else "copy it to a local DIR, then collabvr report DIR"
    out.print(f"wrote {out_dir / 'results.md'}, {out_dir / 'summary.json'}; report: {report}", highlight=False)
    summary = json.loads((out_dir / "summary.json").read_text())
    if summary.get("stopped"):
        console.print(f"stopped early: --max-cost reached; {summary['stopped']['not_started']} episode(s) not started", highlight=False)
        raise typer.Exit(EXIT_INCOMPLETE)
    if summary["totals"]["errors"]:
        console.print(f"{summary['totals']['errors']} episode(s) raised an error; see results.jsonl", highlight=False)
        raise typer.Exit(EXIT_INTERNAL)


@app.command()
def export(
    bench_dir: Annotated[Path, typer.Argument(help="A benchmark directory (collabvr bench --out) of a vbvr or genvire suite.")],
    fmt: Annotated[str, typer.Option("--format", help="vbvr (OUT/<method>/<split>/<task>/<id>.mp4) or genvire (OUT/0_generated_videos/...).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the official tree.")],
    runs: Annotated[int | None, typer.Option(help="Gen-ViRe: export run folders _0 .. _{RUNS-1} (default: the runs made, at most the official five).")] = None,
) -> None:
    """Export the final videos (and Gen-ViRe score files) in a benchmark's official layout, for its own scorers."""
    from collabvr.bench.export import export_run

    try:
        _local_only(bench_dir, "export")
        _warn_unreadable(bench_dir / "results.jsonl")
        written, note = export_run(bench_dir, fmt, out_dir, runs=runs)
    except BadInput as exc:
        _fail(str(exc))
    out.print(f"wrote {len(written)} video(s) under {out_dir}", highlight=False)
    if note:
        console.print(note, highlight=False)
    if fmt == "vbvr":
        out.print(f"official score: collabvr score vbvr {out_dir} --evalkit <VBVR-EvalKit clone>", highlight=False)
    else:
        out.print(f"official tables: collabvr score genvire {out_dir}/0_generated_videos (see {out_dir}/genvire_summary.md)", highlight=False)


@app.command()
def score(
    benchmark: Annotated[str, typer.Argument(help="vbvr or genvire.")],
    tree: Annotated[Path, typer.Argument(help="vbvr: an export (collabvr export --format vbvr), or one model folder of it; "
                                              "genvire: 0_generated_videos, or 0_generated_videos/<model>.")],
    evalkit: Annotated[Path | None, typer.Option(help="vbvr: your clone of VBVR-EvalKit, run unchanged.")] = None,
    entry: Annotated[str, typer.Option(help="vbvr: run_evaluation (task-specific score) or evaluate (weighted score).")] = "run_evaluation",
    gt_base: Annotated[Path | None, typer.Option(help="vbvr: the VBVR-Bench download (default: the one the export recorded).")] = None,
    python: Annotated[str | None, typer.Option(help="vbvr: the interpreter that has VBVR-EvalKit's requirements (default: this one).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="genvire: score videos without a score file 0, and read score keys in any case.")] = False,
    runs: Annotated[int, typer.Option(help="genvire: read run folders <model>_0 .. <model>_{RUNS-1} (step4 reads 5).")] = 5,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the scores (default: a new folder beside the tree; never inside it).")] = None,
    quiet: Annotated[bool, typer.Option(help="vbvr: do not show VBVR-EvalKit's output as it runs.")] = False,
) -> None:
    """Score an exported tree with the benchmark's official rules: VBVR-EvalKit for vbvr (run for you),
    Gen-ViRe's step4 aggregation for genvire. Prints the tables and writes them to --out."""
    from collabvr.bench.export import score_genvire, score_vbvr

    try:
        if benchmark == "vbvr":
            if strict:
                raise BadInput("--strict is for genvire; VBVR-EvalKit scores every video it finds")
            if evalkit is None:
                raise BadInput("collabvr score vbvr needs --evalkit EVALKIT_DIR, your clone of VBVR-EvalKit "
                               "(git clone https://github.com/Video-Reason/VBVR-EvalKit)")
            _, table, where = score_vbvr(tree, evalkit=evalkit, entry=entry, gt_base=gt_base, python=python, out=out_dir,
                                         on_line=_KitOutput(quiet))
        elif benchmark == "genvire":
            if evalkit is not None or gt_base is not None or python is not None:
                raise BadInput("--evalkit, --gt-base and --python are for vbvr; collabvr score genvire reads score files")
            _, table, where = score_genvire(tree, strict=strict, runs=runs, out=out_dir)
        else:
            raise BadInput(f"unknown benchmark {benchmark!r}: collabvr score vbvr EXPORT_DIR --evalkit DIR, or collabvr score genvire GEN_DIR")
    except BadInput as exc:
        _fail(str(exc))
    out.print(table, highlight=False, markup=False, soft_wrap=True)  # Markdown tables: never wrapped
    console.print(f"wrote {where}", highlight=False, soft_wrap=True)


class _KitOutput:
    """VBVR-EvalKit's output while it runs: its lines on stderr, its progress bar redrawn in place on a
    terminal (and left out of a log); nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str, transient: bool) -> None:
        if self.quiet or (transient and not console.is_terminal):
            return
        console.print(f"  evalkit: {escape(text)}", highlight=False, soft_wrap=True, end="\r" if transient else "\n")


@app.command("export-suite")
def export_suite(
    suite: Annotated[str, typer.Argument(help="sim, sim:FAMILY or sim:FAMILY/DIFFICULTY.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the VBVR-Bench layout.")],
    n: Annotated[int, typer.Option("--n", help="Samples per cell (seeds SEED..SEED+N-1).")] = 5,
    seed: Annotated[int, typer.Option(help="First seed.", **SEEDS)] = 0,
    size: Annotated[int, typer.Option(help="Frame size (even).", **SIZES)] = 256,
) -> None:
    """Write sim tasks in the VBVR-Bench layout (first/final frame, ground-truth video, prompt, index)."""
    from collabvr.bench.suites.vbvr import export_sim_suite

    try:
        if not suite.startswith("sim"):
            raise BadInput(f"export-suite writes the sim suite only, got {suite!r}")
        if n < 1:
            raise BadInput(f"--n must be a whole number >= 1, got {n}")
        folders = export_sim_suite(out_dir, spec=suite, n=n, seed=seed, size=size)
    except BadInput as exc:
        _fail(str(exc))
    out.print(f"wrote {len(folders)} sample(s) to {out_dir}; run them with --suite vbvr:{out_dir}", highlight=False)


@app.command()
def report(
    bench_dir: Annotated[Path, typer.Argument(help="A benchmark directory (collabvr bench --out).")],
    evalkit: Annotated[Path | None, typer.Option(help="VBVR: first score the videos, floors and ceilings with this VBVR-EvalKit clone.")] = None,
    evalkit_entry: Annotated[str, typer.Option(help="VBVR-EvalKit entry point: run_evaluation (task-specific score) or evaluate (weighted score).")] = "run_evaluation",
    evalkit_python: Annotated[str | None, typer.Option(help="The interpreter that has VBVR-EvalKit's requirements (default: this one).")] = None,
) -> None:
    """Write DIR/report/: index.html (tables, paired differences, plots, one row per episode with its timeline)
    and two PNG plots. With --evalkit, VBVR-EvalKit's scores join the tables (and summary.json)."""
    from collabvr.bench.export import add_official
    from collabvr.bench.report import write_report

    try:
        _local_only(bench_dir, "report")
        if not (bench_dir / "results.jsonl").is_file():
            raise BadInput(f"{bench_dir} has no results.jsonl; run collabvr bench --out {bench_dir} first")
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            raise BadInput('collabvr report needs matplotlib: pip install "collabvr[report]"') from None
        _warn_unreadable(bench_dir / "results.jsonl")
        if evalkit is not None:
            add_official(bench_dir, evalkit=evalkit, entry=evalkit_entry, python=evalkit_python, on_line=_KitOutput(False))
        index = write_report(bench_dir)
    except BadInput as exc:
        _fail(str(exc))
    out.print(f"wrote {index}", highlight=False)


class _BenchProgress:
    """A rich progress bar: episodes done/total, running mean score per method, compute spent; and,
    also with --quiet, the plan before the first episode and, once the first episodes have finished,
    how long the rest will take."""

    def __init__(self, quiet: bool, concurrency: int = 1, plan: str = "") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from collabvr.bench.pace import Pace

        self.quiet, self.plan = quiet, plan
        self.pace = Pace(concurrency)
        self.progress = Progress(TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.description}"), console=console, disable=quiet)
        self.task = self.progress.add_task("", total=None)
        self.scores: dict[str, list[float]] = {}
        self.clip_seconds = self.vlm_calls = self.cost = 0.0

    def __enter__(self) -> _BenchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def start(self, total: int, done: int) -> None:
        """Every check has passed and the first episode is about to start: the plan, and what is done already."""
        if self.plan:
            console.print(self.plan, highlight=False, markup=False, soft_wrap=True)
        self.pace.start(total, done)
        self.progress.update(self.task, total=total, completed=done)
        if done and not self.quiet:
            console.print(f"resuming: {done} of {total} episodes already done", highlight=False)

    def update(self, result: dict[str, Any]) -> None:
        compute = result.get("compute") or {}
        self.scores.setdefault(result["method"], []).append(result.get("score") or 0.0)
        self.clip_seconds += compute.get("clip_seconds", 0.0)
        self.vlm_calls += compute.get("vlm_calls", 0)
        self.cost += result.get("cost") or 0.0
        means = "  ".join(f"{m} {sum(v) / len(v):.2f}" for m, v in self.scores.items())
        spent = f"{self.clip_seconds:.0f} clip-s, {self.vlm_calls:.0f} VLM calls, ${self.cost:.2f}"
        self.progress.update(self.task, advance=1, description=f"{means} | {spent}")
        estimate = self.pace.finished()
        if estimate is not None:
            self.progress.console.print(estimate, highlight=False, markup=False)


class _Progress:
    """Live progress: one line per event of the custom stream, and a transient bar while a clip is
    being generated. Events are completed through their schema first, so no field is missing; a
    kind this CLI does not know is shown as its name and fields."""

    def __init__(self, skip: set[str] | None = None) -> None:
        self.bar: Any = None
        self.skip = skip or set()

    def __call__(self, raw: dict[str, Any]) -> None:
        from collabvr import events

        kind = str(raw.get("event", "?"))
        if kind in self.skip:
            return
        try:
            event = events.make(kind, **{k: v for k, v in raw.items() if k != "event"})
        except (ValueError, TypeError):
            self._close_bar()
            fields = " ".join(f"{k}={v}" for k, v in raw.items() if k != "event")
            console.print(f"  {kind}: {fields}", highlight=False, markup=False)
            return
        if kind == "generating":
            if console.is_terminal:  # a bar only where it can redraw in place; a log gets the lines below
                self._bar(event)
            return
        self._close_bar()
        console.print(self.line(event), highlight=False)

    @staticmethod
    def line(event: dict[str, Any]) -> str:
        """One line of the live log for a complete event."""
        kind, step, attempt = event["event"], event["step"] + 1, event["attempt"] + 1
        error = (event.get("error") or {}).get("message", "")
        match kind:
            case "plan":
                done = " (finishes the task)" if event["task_complete"] else ""
                steps = f" ({event['planned_steps']} steps)" if event["planned_steps"] > 1 else ""
                return f"[cyan]step {step}[/] plan{steps}: {escape(event['instruction'] or '(already solved)')}{done}"
            case "generated":
                return f"  attempt {attempt}: generated {event['seconds']:.1f}s clip"
            case "verified":
                color = "green" if event["status"] == "accepted" else "red"
                return f"  attempt {attempt}: [{color}]{event['status']}[/] - {escape(event['reason'])}"
            case "repair":
                return f"  repair: {event['strategy']}"
            case "approval":
                return f"  plan {event['decision']}: {escape(event['instruction'])}"
            case "selected":
                return f"  round {step}: [green]selected[/] candidate {attempt - 1} of {event['of']} - {escape(event['reason'])}"
            case "critique":
                verdict = "[green]solved[/]" if event["solved"] else "[red]not solved[/]"
                return f"  round {step}: critique {verdict} - {escape(event['critique'])}"
            case "advance":
                return f"  step {step}: clip kept unverified"
            case "finalized":
                return f"[bold]{event['status']}[/]: {escape(event['reason'])}"
            case _ if "error" in event:
                return f"  attempt {attempt}: [red]{kind}[/]: {escape(error)}"
        return f"  {kind}"

    def _bar(self, event: dict[str, Any]) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if self.bar is None:
            self.bar = Progress(TextColumn("  generating"), BarColumn(), TextColumn("{task.description}"),
                                TimeElapsedColumn(), console=console, transient=True)
            self.bar.start()
            self.bar_task = self.bar.add_task("", total=event["total"])
        unit = event["unit"]
        total = event["total"]
        description = f"{event['done']:g}/{total:g} {unit}" if total else f"{event['done']:g} {unit}"
        self.bar.update(self.bar_task, completed=event["done"], total=total, description=description)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _summary(episode: Any) -> None:
    state, compute = episode.state, episode.compute
    table = Table(title=f"{episode.task.id}: {episode.status}", show_header=False)
    table.add_row("reason", episode.reason)
    if episode.score is not None and episode.score.get("score") is None:
        table.add_row("score", f"none: {episode.score.get('reason', '')}")
    elif episode.score is not None:
        table.add_row("score", f"{episode.score['score']:.3f} ({'solved' if episode.score['solved'] else 'not solved'}: {episode.score['reason']})")
    table.add_row("steps accepted", str(len(state.get("steps", []))))
    table.add_row("attempts", str(len(episode.attempts)))
    table.add_row("VGM calls / clip-seconds", f"{compute.get('vgm_calls', 0):g} / {compute.get('clip_seconds', 0):g}")
    table.add_row("VLM calls", f"{compute.get('vlm_calls', 0):g}")
    table.add_row("wall time", f"{episode.wall_s:.2f} s")
    table.add_row("final video", str(episode.final_video))
    table.add_row("trace", str(episode.trace_path))
    table.add_row("contact sheet", str(episode.out_dir / "contact_sheet.png"))
    out.print(table)


@app.command()
def calibrate(
    vlm: Annotated[str, typer.Option(help="The VLM to calibrate, as provider:model.")],
    suite: Annotated[str, typer.Option(help="sim, sim:FAMILY or sim:FAMILY/DIFFICULTY.")] = "sim",
    n: Annotated[int, typer.Option("--n", help="Labelled clips to verify (half good, half bad); plan frames: N/2.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the labelled set and of the VLM's draws.", **SEEDS)] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for calibration.json, calibration.md, calibration.png.")] = Path("runs/calibrate"),
    vlm_option: Annotated[list[str] | None, typer.Option(help="VLM option key=value (repeatable).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Clip length in seconds.", show_default=_context_default("clip_seconds"))] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second.", show_default=_context_default("fps"), **_within(RANGES["fps"]))] = None,
    size: Annotated[int, typer.Option(help="Sim frame size (even).", **SIZES)] = 128,
    source: Annotated[str, typer.Option("--from", help=escape("vbvr:DIR[:SPLIT[/TASK]]: a benchmark's ground-truth videos, and corruptions of them, instead of sim clips."))] = "",
    predict: Annotated[bool, typer.Option("--predict", help="Turn the rates into DIR/sim-preset.json and predict CollabVR's gain over the baselines on the sim suite.")] = False,
    predict_n: Annotated[int, typer.Option("--predict-n", help="--predict: seeds per sim cell.")] = 4,
    predict_vgm: Annotated[str, typer.Option("--predict-vgm", help="--predict: the sim VGM preset.")] = "sim:weak",
    predict_draws: Annotated[int, typer.Option("--predict-draws", help="--predict: draws of the rates from their posteriors, each a benchmark run (0: point estimates only).")] = 8,
    concurrency: Annotated[int, typer.Option(help="--predict: episodes at once.")] = 2,
) -> None:
    """Measure a VLM as verifier and planner on clips with known ground truth (docs/calibrate.md).

    Writes calibration.json, calibration.md and calibration.png; exit code 0, or 2 on bad input.
    """
    from collabvr import calibrate as cal

    try:
        options = _options(vlm_option)
        if vlm.split(":", 1)[0] == "sim":
            options.setdefault("seed", seed)
        ctx = make_context(vlm=vlm, vlm_options=options, seed=seed, clip_seconds=seconds, fps=fps,
                           out_dir=str(out_dir))
        if size % 2:
            raise BadInput(f"--size must be an even number, got {size}")
        if predict and source:
            raise BadInput("--predict works from the sim set only (it needs the plan rates); drop --from or --predict")
        writable(out_dir)  # before the measuring, not after it
        if predict:
            cal.suite_specs(suite)
            cal.check_predict(suite, vgm=predict_vgm, n=predict_n, concurrency=concurrency, draws=predict_draws)  # before any VLM call
        result = cal.calibrate(ctx, suite=suite, n=n, size=size, source=source or None)
        if predict:
            cal.write(result, out_dir)  # the rates are on disk before the benchmark starts
            console.print(f"predict: running the sim benchmark in {out_dir / 'predict'}", highlight=False)
            with _BenchProgress(False, concurrency=concurrency) as progress:
                result["prediction"] = cal.predict(result, out_dir, vgm=predict_vgm, n=predict_n, seed=seed,
                                                   concurrency=concurrency, draws=predict_draws, on_start=progress.start,
                                                   on_result=progress.update)
    except BadInput as exc:
        _fail(str(exc))
    paths = cal.write(result, out_dir)
    out.print(cal.table(result), highlight=False, markup=False)
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
