"""The ``collabvr`` command: run an episode, print the graph.

Bad input (unknown task or backend, invalid budgets, unreadable image, a sim backend on a user
task) prints one line and exits with code 2, with no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from collabvr.errors import BadInput, redact

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Collaborative video reasoning (CollabVR).")
console = Console(stderr=True)
out = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {redact(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


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


@app.command()
def run(
    task: Annotated[str | None, typer.Option(help="A sim task: sim:FAMILY/DIFFICULTY, e.g. sim:maze/hard.")] = None,
    method: Annotated[str, typer.Option(help="collabvr, or a baseline: single, pass@K, upfront_plan, posthoc_critique, prompt_opt.")] = "collabvr",
    image: Annotated[Path | None, typer.Option(help="Your own task's first frame (use with --prompt).")] = None,
    prompt: Annotated[str | None, typer.Option(help="Your own task's prompt (use with --image).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: picks the sim instance and seeds every random draw.")] = 0,
    vlm: Annotated[str, typer.Option(help="VLM as provider:model.")] = "sim",
    vgm: Annotated[str, typer.Option(help="Video model as provider:model.")] = "sim",
    vlm_option: Annotated[list[str] | None, typer.Option(help="VLM option key=value (repeatable).")] = None,
    vgm_option: Annotated[list[str] | None, typer.Option(help="VGM option key=value (repeatable).")] = None,
    max_steps: Annotated[int, typer.Option(help="Most steps per episode.")] = 3,
    max_attempts: Annotated[int, typer.Option(help="Most attempts per step.")] = 3,
    first_seconds: Annotated[float, typer.Option(help="First clip length (s).")] = 6.0,
    seconds: Annotated[float, typer.Option(help="Later clip length (s).")] = 3.0,
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 16,
    partial_threshold: Annotated[float, typer.Option(help="Good fraction above which to regenerate from the error.")] = 0.2,
    seed_policy: Annotated[str, typer.Option(help="fixed (paper) or vary (new seed per attempt).")] = "fixed",
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/latest"),
    quiet: Annotated[bool, typer.Option(help="No live progress.")] = False,
) -> None:
    """Run one CollabVR episode and write final.mp4, trace.json, clips/ and contact_sheet.png."""
    from collabvr.runner import make_context
    from collabvr.runner import run as run_episode
    from collabvr.task import Task

    try:
        if (image is None) != (prompt is None):
            raise BadInput("--image and --prompt go together")
        if image is not None and task is not None:
            raise BadInput("give either --task or --image/--prompt, not both")
        ctx = make_context(
            vlm=vlm, vgm=vgm, vlm_options=_options(vlm_option), vgm_options=_options(vgm_option),
            max_steps=max_steps, max_attempts=max_attempts, first_clip_seconds=first_seconds,
            clip_seconds=seconds, fps=fps, partial_threshold=partial_threshold, seed=seed,
            seed_policy=seed_policy, out_dir=str(out_dir),
        )
        the_task = Task.from_image(image, prompt) if image is not None else Task.parse(task or "sim:maze/hard", seed=seed)
        progress = None if quiet else _Progress()
        episode = run_episode(the_task, context=ctx, method=method, on_event=progress)
    except BadInput as exc:
        _fail(str(exc))
    _summary(episode)


@app.command()
def graph(method: Annotated[str, typer.Option(help="Which method's graph.")] = "collabvr") -> None:
    """Print the method's graph as a Mermaid diagram."""
    from collabvr.graph import compiled, parse_method

    try:
        name, _ = parse_method(method)
    except BadInput as exc:
        _fail(str(exc))
    out.print(compiled(name).get_graph().draw_mermaid(), highlight=False, markup=False)


class _Progress:
    """Live progress: one line per event of the custom stream."""

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        step = event.get("step", 0) + 1
        attempt = event.get("attempt", 0) + 1
        if kind == "plan":
            done = " (finishes the task)" if event.get("task_complete") else ""
            console.print(f"[cyan]step {step}[/] plan: {event.get('instruction') or '(already solved)'}{done}", highlight=False)
        elif kind == "generated":
            console.print(f"  attempt {attempt}: generated {event['seconds']:.1f}s clip", highlight=False)
        elif kind == "verified":
            color = "green" if event["status"] == "accepted" else "red"
            console.print(f"  attempt {attempt}: [{color}]{event['status']}[/] - {event.get('reason', '')}", highlight=False)
        elif kind == "repair":
            console.print(f"  repair: {event['strategy']}", highlight=False)
        elif kind in ("plan_failed", "generation_failed"):
            console.print(f"  [red]{kind}[/]: {event['error']['message']}", highlight=False)


def _summary(episode: Any) -> None:
    state, compute = episode.state, episode.compute
    table = Table(title=f"{episode.task.id}: {episode.status}", show_header=False)
    table.add_row("reason", episode.reason)
    if episode.score is not None:
        table.add_row("score", f"{episode.score['score']:.3f} ({'solved' if episode.score['solved'] else 'not solved'}: {episode.score['reason']})")
    table.add_row("steps accepted", str(len(state.get("steps", []))))
    table.add_row("attempts", str(len(state.get("attempts", []))))
    table.add_row("VGM calls / clip-seconds", f"{compute.get('vgm_calls', 0):g} / {compute.get('clip_seconds', 0):g}")
    table.add_row("VLM calls", f"{compute.get('vlm_calls', 0):g}")
    table.add_row("wall time", f"{episode.wall_s:.2f} s")
    table.add_row("final video", str(episode.final_video))
    table.add_row("trace", str(episode.trace_path))
    table.add_row("contact sheet", str(episode.out_dir / "contact_sheet.png"))
    out.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
