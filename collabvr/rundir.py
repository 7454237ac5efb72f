"""The run directory: its layout, its file names, and its timeline page.

Below both the runner (one episode) and the bench (many), so each names files the same way:

    <run dir>/final.mp4            the final video
    <run dir>/trace.json           everything that happened (written last)
    <run dir>/contact_sheet.png    start and end frame of every step
    <run dir>/episode.html         the timeline: plans, attempts, verdicts, repairs, clips inline
    <run dir>/clips/stepS_attemptA.mp4
    <run dir>/artifacts/           the content-addressed store

Every text that came from a trace (prompts, plans, verdicts, a backend's error message) goes
through ``html.escape``; every link is relative, so the page opens from disk.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from collabvr.errors import redact
from collabvr.location import RunPath, path_of, write_atomic

TRACE = "trace.json"
CHECKPOINTS = "checkpoints.sqlite"  # LangGraph checkpoints of a resumable run (CLI run, bench)
RUN = "run.json"  # the task, method and context a run started with: what --resume reloads
FINAL = "final.mp4"
SHEET = "contact_sheet.png"
CLIPS = "clips"
ARTIFACTS = "artifacts"

TIMELINE = "episode.html"
OUTPUTS = (TRACE, FINAL, SHEET, TIMELINE)
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.ok{color:#17702b}.bad{color:#a31515}.muted{color:#777}
.step{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:1em 0}
.attempt{display:flex;gap:1em;align-items:flex-start;margin:.5em 0}video{max-width:256px}img.sheet{max-width:100%}
pre{white-space:pre-wrap;margin:0}
"""


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def kv(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{escape(str(k))}</th><td><pre>{escape(str(v))}</pre></td></tr>" for k, v in rows if v not in (None, ""))
    return f"<table>{cells}</table>"


def href(path: str) -> str:
    """A relative URL from a relative file path (each segment percent-quoted, e.g. pass@4)."""
    return escape("/".join(quote(part) for part in Path(path).parts), quote=True)


def clip_name(attempt: dict[str, Any]) -> str:
    """The run-directory path an attempt's clip is exported to."""
    return f"{CLIPS}/step{attempt.get('step', 0) + 1}_attempt{attempt.get('index', 0) + 1}.mp4"


def write_timeline(run_dir: str | Path, trace: dict[str, Any] | None = None) -> RunPath:
    """Write ``run_dir/episode.html`` from ``run_dir/trace.json``; the page links only files in run_dir
    (a directory, or a URL: see :mod:`collabvr.location`)."""
    run_dir = path_of(run_dir)
    trace = trace if trace is not None else json.loads((run_dir / "trace.json").read_text())
    task = trace.get("task") or {}
    score = trace.get("score") or {}
    compute = trace.get("compute") or {}
    exists = lambda rel: (run_dir / rel).is_file()  # noqa: E731 - tiny local predicate
    parts = [f"<h1>{escape(str(task.get('id', 'episode')))}</h1>", kv([
        ("task", task.get("prompt")),
        ("status", f"{trace.get('status')}: {trace.get('reason', '')}"),
        ("score", f"{score['score']:.3f} ({'solved' if score.get('solved') else 'not solved'}: {score.get('reason', '')})"
         if score and score.get("score") is not None else (f"none: {score.get('reason', '')}" if score else None)),
        ("method", (trace.get("context") or {}).get("method")),
        ("VGM calls / clip-seconds", f"{compute.get('vgm_calls', 0):g} / {compute.get('clip_seconds', 0):g}"),
        ("VLM calls / tokens in, out", f"{compute.get('vlm_calls', 0):g} / {compute.get('input_tokens', 0):g}, {compute.get('output_tokens', 0):g}"),
        ("wall time", f"{trace.get('wall_s', 0):.2f} s"),
    ])]
    media = []
    if exists("final.mp4"):
        media.append('<div><h3>Final video</h3><video controls muted src="final.mp4"></video></div>')
    if exists("contact_sheet.png"):
        media.append('<div><h3>Contact sheet</h3><a href="contact_sheet.png"><img class="sheet" alt="contact sheet" src="contact_sheet.png"></a></div>')
    parts.append(f'<div class="attempt">{"".join(media)}</div>')

    steps = {s.get("step"): s for s in trace.get("steps") or []}
    attempts = trace.get("attempts") or []
    repairs = trace.get("repairs") or []
    stepwise = is_stepwise(trace.get("steps") or [], attempts)
    # step-wise methods (CollabVR, the up-front plan) get a section per step; whole-video methods
    # (single, pass@k, the critique baselines) one per round, with no step to accept
    section = (lambda a: a.get("step", 0)) if stepwise else (lambda a: a.get("round", a.get("index", 0)))
    order = sorted({section(a) for a in attempts} | set(k for k in steps if k is not None and stepwise))
    for number in order:
        mine = [a for a in attempts if section(a) == number]
        if stepwise:
            parts.append(f'<div class="step"><h2>Step {number + 1}: {_step_state(steps.get(number), mine)}</h2>')
            parts.append(_plan_html(steps.get(number), [r for r in repairs if r.get("step") == number]))
        else:
            title = f"Round {number + 1}" if len(order) > 1 else "Candidates" if len(mine) > 1 else "Video"
            parts.append(f'<div class="step"><h2>{title}</h2>')
        for attempt in mine:
            parts.append(_attempt_html(attempt, clip_name(attempt) if exists(clip_name(attempt)) else None))
            for repair in (r for r in repairs if stepwise and r.get("step") == number and r.get("after_attempt") == attempt.get("index")):
                parts.append(f'<p><b>Repair</b> ({escape(str(repair.get("strategy")))}): <pre>{escape(str(repair.get("prompt", "")))}</pre></p>')
        parts.append("</div>")
    path = run_dir / TIMELINE
    write_atomic(path, page(str(task.get("id", "episode")), "\n".join(parts)).encode())
    return path


_VERIFIED = {"accepted", "rejected", "verification_failed"}  # attempt statuses only a verifying method records


def is_stepwise(steps: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> bool:
    """Whether a run went step by step (CollabVR, the up-front plan) rather than one whole video at a
    time (single, pass@k, the critique baselines): it kept a step, or verified an attempt."""
    return bool(steps) or any(a.get("status") in _VERIFIED for a in attempts)


_GOOD = {"accepted", "selected"}  # an attempt that became (part of) the answer
_NEUTRAL = {"generated", "not_selected"}  # neither good nor a failure: a baseline's clip, a candidate passed over


def _step_state(step: dict[str, Any] | None, attempts: list[dict[str, Any]]) -> str:
    """A step's heading: accepted by the verifier, kept without verification (the up-front plan), or not accepted."""
    if step is None:
        return '<span class="bad">not accepted</span>'
    if any(a.get("status") == "accepted" for a in attempts):
        return f'<span class="ok">accepted after {step.get("attempts")} attempt(s)</span>'
    return '<span class="muted">kept (not verified)</span>'


def _plan_html(step: dict[str, Any] | None, repairs: list[dict[str, Any]]) -> str:
    """The step's plan; when the action was split, which plan the attempts before the split used."""
    if not step or not step.get("plan"):
        return ""
    plan = step["plan"]
    table = kv([(k, plan.get(k)) for k in ("observation", "instruction", "target_state", "task_complete", "steps_left")])
    splits = [r for r in repairs if r.get("strategy") == "action_splitting"]
    if not splits:
        return "<h3>Plan</h3>" + table
    before, after = splits[0].get("after_attempt", 0) + 1, splits[-1].get("after_attempt", 0) + 2
    used = "Attempt 1" if before == 1 else f"Attempts 1 to {before}"
    return (f"<h3>Plan</h3><p>{used} used the plan <q>{escape(str(splits[0].get('from', '')))}</q>; the action was "
            f"then split, and from attempt {after} on the step used this plan:</p>" + table)


def _attempt_html(attempt: dict[str, Any], clip: str | None) -> str:
    status = str(attempt.get("status", ""))
    verdict = attempt.get("verdict") or {}
    error = attempt.get("error") or {}
    selection = attempt.get("selection") or {}
    critique = attempt.get("critique") or {}
    colour = "ok" if status in _GOOD else "muted" if status in _NEUTRAL else "bad"
    details = kv([
        ("prompt", attempt.get("prompt")),
        ("seed", attempt.get("seed")),
        ("verdict", ("accept" if verdict.get("accept") else "reject") if verdict else None),
        ("reason", verdict.get("reason")),
        ("good fraction", verdict.get("good_fraction")),
        ("suggestion", verdict.get("suggestion")),
        ("confidence", verdict.get("confidence")),
        ("selected", f"candidate {selection.get('index', 0) + 1}: {selection.get('reason', '')}" if selection else None),
        ("critique", f"{'solved' if critique.get('solved') else 'not solved'}: {critique.get('critique', '')}"
         if critique else None),
        ("error", f"{error.get('kind', '')}: {error.get('message', '')}" if error else None),
    ])
    video = f'<video controls muted src="{href(clip)}"></video>' if clip else '<span class="muted">(no clip)</span>'
    return (f'<div class="attempt"><div>{video}</div><div><h4>Attempt {attempt.get("index", 0) + 1}: '
            f'<span class="{colour}">{escape(status)}</span></h4>{details}</div></div>')




def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (a temp file and a rename; one put on an object store), with secrets redacted."""
    write_atomic(path, redact(json.dumps(data, indent=2, default=_plain)).encode())


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic records and ArtifactRef
    return dump(mode="json") if callable(dump) else str(value)
