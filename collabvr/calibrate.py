"""``collabvr calibrate``: how good a VLM is as verifier and planner, on sim clips with known truth.

The labelled set (docs/calibrate.md): per clip, a sim task instance (``Task.sim``), a planned
action (the first moves of its optimal solution) and one of six kinds, in equal shares of the
bad half:

* ``good`` (half of the set): the planned moves, carried out;
* ``drift``: a different legal move at a move j >= 1 of the action, the planned moves after it;
* ``violation``: a physics violation (``Family.violate``) at a move j, as the sim VGM draws one;
* ``wrong``: a different legal move as the first move, then the planned moves after it;
* ``incomplete``: the first j < k planned moves, then the clip holds still;
* ``static``: no move at all.

States are rendered with the sim VGM's own renderer (``SimVGM.render``), and every label (good or
bad, the first bad frame, the good fraction, the kind) is checked against the sim's decoder
(``Family.read`` on every frame); a disagreement is an error, never a silently wrong label.

Every clip is verified with the same ``VerifyRequest`` the graph's verify node builds, through
:func:`collabvr.nodes.common.call_vlm`, so a typed failure is its own category, never an accept
or a reject. Rates carry Wilson 95% intervals; the good-fraction error a bootstrap 95% interval.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.backends.sim.config import VGMConfig
from collabvr.backends.sim.families import FAMILIES, DecodeError, Family, IllegalMove
from collabvr.backends.sim.vgm import SimVGM
from collabvr.bench.stats import bootstrap_ci
from collabvr.context import Context
from collabvr.errors import BadInput
from collabvr.media import Image, Video
from collabvr.nodes.common import call_vlm, vlm_of
from collabvr.records import Plan, PlanRequest, Verdict, VerifyRequest
from collabvr.task import Task

BAD_KINDS = ("drift", "violation", "wrong", "incomplete", "static")
KINDS = ("good", *BAD_KINDS)
GOOD_SHARE = 0.5  # half the clips are correct; the other half split evenly over BAD_KINDS
MAX_MOVES = 6  # most moves in a planned action
Z95 = 1.959963984540054


class LabelMismatch(RuntimeError):
    """A clip's constructed label disagrees with what the sim's decoder reads in its frames."""


@dataclass(frozen=True)
class Label:
    kind: str
    good: bool
    first_bad_frame: int | None  # None: no frame is wrong (good, incomplete, static)
    good_fraction: float  # first bad frame / frames; 1.0 when none is wrong (as the sim verifier reports)
    moves_done: int | None  # planned moves the clip carries out, in order, before any error (None: footage)
    tolerance: float  # a said good fraction this close to the label "locates" the error (one move of the clip)


@dataclass
class Clip:
    task: Task
    start: Image
    instruction: str
    target_state: str
    video: Video
    label: Label


# ----------------------------------------------------------------------------- the labelled set


def suite_specs(suite: str) -> list[str]:
    """``sim`` (every family, medium), ``sim:FAMILY`` (its difficulties) or ``sim:FAMILY/DIFF``."""
    if suite == "sim":
        return [f"{name}/medium" for name in FAMILIES]
    if not suite.startswith("sim:"):
        raise BadInput(f"calibrate works on the sim suite only: sim, sim:FAMILY or sim:FAMILY/DIFF, got {suite!r}")
    name, _, diff = suite.removeprefix("sim:").partition("/")
    if name not in FAMILIES:
        raise BadInput(f"unknown sim family {name!r}; known: {', '.join(FAMILIES)}")
    diffs = [diff] if diff else list(FAMILIES[name].lengths)
    for d in diffs:
        if d not in FAMILIES[name].lengths:
            raise BadInput(f"unknown difficulty {d!r}; known: {', '.join(FAMILIES[name].lengths)}")
    return [f"{name}/{d}" for d in diffs]


def kind_mix(n: int, bad_kinds: tuple[str, ...] = BAD_KINDS) -> list[str]:
    """The kinds of ``n`` clips: ``round(n * GOOD_SHARE)`` good, the rest over ``bad_kinds`` in turn."""
    good = round(n * GOOD_SHARE)
    return ["good"] * good + [bad_kinds[i % len(bad_kinds)] for i in range(n - good)]


def _walk(family: Family, state: Any, moves: list[str]) -> list:
    states = [state]
    for move in moves:
        try:
            states.append(family.apply(states[-1], move))
        except IllegalMove:
            states.append(states[-1])  # an impossible instruction: the object stays where it is
    return states


def _states_for(kind: str, family: Family, start: Any, planned: list[str], rng: np.random.Generator) -> tuple[list, int] | None:
    """The world states the clip shows (one per move) and the move index j of its error; None when
    this instance cannot show the kind (no other legal move where a wrong one is wanted)."""
    k = len(planned)
    if kind == "good":
        return _walk(family, start, planned), k
    if kind == "static":
        return [start], 0
    if kind == "incomplete":
        j = int(rng.integers(1, k))
        return _walk(family, start, planned[:j]), j
    j = 0 if kind == "wrong" else int(rng.integers(1, k))
    before = _walk(family, start, planned[:j])
    here = before[-1]
    if kind == "violation":
        broken, _ = family.violate(here, rng)
        return [*before, broken], j
    wrong = family.wrong_move(here, planned[j], rng)
    if wrong is None:  # a corridor: no other legal move here; the caller takes the next instance
        return None
    after = _walk(family, family.apply(here, wrong), planned[j + 1:])
    return [*before, *after], j


def decoded_label(family: Family, frames: np.ndarray, start: Any, planned: list[str]) -> tuple[bool, int | None, int]:
    """What the decoder reads: (carried out, first frame off the plan or unreadable, moves done)."""
    expected = _walk(family, start, planned)
    done = 0
    for t, frame in enumerate(frames):
        try:
            state = family.read(frame)
        except DecodeError:
            return False, t, done
        if state == expected[done]:
            continue
        if done + 1 < len(expected) and state == expected[done + 1]:
            done += 1
            continue
        return False, t, done
    return done == len(planned), None, done


def _label(kind: str, j: int, family: Family, frames: np.ndarray, start: Any, planned: list[str], fpm: int) -> Label:
    n = len(frames)
    ok, bad, done = decoded_label(family, frames, start, planned)
    if kind == "good":
        agrees = ok
    elif kind in ("incomplete", "static"):
        agrees = not ok and bad is None and done == j
    else:  # the first wrong frame lies within the frames of move j, and the moves before it were done
        agrees = not ok and bad is not None and j * fpm < bad <= (j + 1) * fpm and done == j
    if not agrees:
        raise LabelMismatch(f"{kind} clip (error at move {j}) decodes as carried_out={ok}, first_bad={bad}, done={done}")
    return Label(kind=kind, good=kind == "good", first_bad_frame=bad,
                 good_fraction=1.0 if bad is None else round(bad / n, 6), moves_done=done, tolerance=round(fpm / n, 6))


def labelled_set(suite: str, n: int, *, seed: int = 0, seconds: float = 3.0, fps: int = 16, size: int = 128) -> list[Clip]:
    """``n`` labelled clips, the same for the same arguments (see the module docstring)."""
    if n < 1:
        raise BadInput(f"--n must be >= 1, got {n}")
    specs = suite_specs(suite)
    vgm = SimVGM(VGMConfig())
    fpm = vgm.config.frames_per_move
    total = max(2, round(seconds * fps))
    capacity = (total - 1) // fpm
    if capacity < 2:
        raise BadInput(f"a {seconds} s clip at {fps} fps holds fewer than 2 moves; calibrate needs 2")
    clips: list[Clip] = []
    instance = seed
    for i, kind in enumerate(kind_mix(n)):
        made = None
        while made is None:  # the next instance whose solution has at least 2 moves and can show the kind
            task = Task.sim(specs[instance % len(specs)], seed=instance, size=size)
            instance += 1
            family = FAMILIES[task.family]
            first = task.first_image()
            start = family.read(first.array)
            solution = family.solve(start) or []
            if len(solution) < 2:
                continue
            planned = solution[: min(len(solution), capacity, MAX_MOVES)]
            made = _states_for(kind, family, start, planned, np.random.default_rng([seed, i, 0x63616C]))
        states, j = made
        frames = vgm.render(family, states, total, size)
        label = _label(kind, j, family, frames, start, planned, fpm)
        target = _walk(family, start, planned)[-1]
        clips.append(Clip(task=task, start=first, instruction=family.describe(planned),
                          target_state=family.state_text(target), video=Video(frames=frames, fps=fps), label=label))
    return clips


# ----------------------------------------------------------------------------- statistics


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """(rate, lo, hi): the Wilson score interval; Nones when n is 0."""
    if n == 0:
        return None, None, None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def _rate(k: int, n: int) -> dict[str, Any]:
    p, lo, hi = wilson(k, n)
    return {"rate": p, "lo": lo, "hi": hi, "k": k, "n": n, "ci": "wilson95"}


# ----------------------------------------------------------------------------- the run


def _plan_frames(suite: str, n: int, seed: int, size: int) -> list[tuple[Task, Image, Any]]:
    """``n`` frames with a known optimal next move: a state part-way along an instance's solution."""
    specs = suite_specs(suite)
    frames = []
    instance = seed + 100_000
    while len(frames) < n:
        task = Task.sim(specs[instance % len(specs)], seed=instance, size=size)
        instance += 1
        family = FAMILIES[task.family]
        state = family.read(task.first_image().array)
        solution = family.solve(state) or []
        if len(solution) < 2:
            continue
        cut = int(np.random.default_rng([seed, instance, 0x706C]).integers(0, len(solution) - 1))
        here = _walk(family, state, solution[:cut])[-1]
        frames.append((task, Image(family.render(here, size)), here))
    return frames


def _plan_scores(family: Family, state: Any, plan: Plan) -> tuple[bool, bool, bool]:
    """(legal, optimal first move, wrong completion claim) of a plan from a non-goal state."""
    moves = family.parse(plan.instruction)
    end: Any = state
    legal = bool(moves)
    for move in moves:
        try:
            end = family.apply(end, move)
        except IllegalMove:
            legal = False
            break
    dist = family.distance(state)
    optimal = False
    if moves and dist is not None:
        try:
            after = family.distance(family.apply(state, moves[0]))
            optimal = after is not None and after == dist - 1
        except IllegalMove:
            optimal = False
    wrong_claim = bool(plan.task_complete) and not (legal and family.is_goal(end))
    return legal, optimal, wrong_claim


def calibrate(ctx: Context, *, suite: str = "sim", n: int = 60, n_plan: int | None = None, size: int = 128,
              source: str | None = None) -> dict[str, Any]:
    """Verify every clip of the labelled set and plan on frames with a known optimal move; the report.

    With ``source`` (``vbvr:DIR``) the clips are a benchmark's ground-truth videos and corruptions of
    them (:mod:`collabvr.calibrate_footage`), and plans are not measured."""
    vlm_of(ctx)  # an unknown backend or a bad option is bad input now, not a typed failure per call
    compute: Counter = Counter()
    if source:
        from collabvr.calibrate_footage import footage_set

        clips = footage_set(source, n, seed=ctx.seed)
    else:
        clips = labelled_set(suite, n, seed=ctx.seed, seconds=ctx.clip_seconds, fps=ctx.fps, size=size)
    rows = verify_all(ctx, clips, compute)
    plans = [] if source else plan_all(ctx, suite, n_plan if n_plan is not None else max(1, n // 2), size, compute)
    return report(ctx, source or suite, rows, plans, dict(compute), plan_measured=not source)


def verify_all(ctx: Context, clips: list[Clip], compute: Counter) -> list[dict[str, Any]]:
    """One row per clip: its label, the VLM's outcome (accept, reject or failed) and good fraction."""
    rows = []
    for i, clip in enumerate(clips):
        request = VerifyRequest(task=clip.task.prompt, clip=clip.video, start_frame=clip.start,
                                instruction=clip.instruction, target_state=clip.target_state,
                                family=clip.task.family, step=i, attempt=0)
        verdict, fail, used = call_vlm(ctx, "verify", request, Verdict)
        compute.update(used)
        outcome = "failed" if fail is not None else ("accept" if verdict.accept is True else "reject")
        rows.append({"task": clip.task.id, **asdict(clip.label), "outcome": outcome,
                     "good_fraction_said": None if verdict is None else verdict.good_fraction,
                     "failure": None if fail is None else fail.get("kind", fail.get("type", "failure"))})
    return rows


def plan_all(ctx: Context, suite: str, n: int, size: int, compute: Counter) -> list[dict[str, Any]]:
    """One row per plan frame: answered (legal, optimal, wrong completion) or failed."""
    plans: list[dict[str, Any]] = []
    for task, image, state in _plan_frames(suite, n, ctx.seed, size):
        request = PlanRequest(task=task.prompt, frame=image, step=1, max_steps=ctx.max_steps,
                              seconds=ctx.first_clip_seconds, family=task.family)
        plan, fail, used = call_vlm(ctx, "plan", request, Plan)
        compute.update(used)
        if fail is not None:
            plans.append({"task": task.id, "outcome": "failed"})
            continue
        legal, optimal, wrong_claim = _plan_scores(FAMILIES[task.family], state, plan)
        plans.append({"task": task.id, "outcome": "answered", "legal": legal, "optimal": optimal, "wrong_completion": wrong_claim})
    return plans


def report(ctx: Context, suite: str, rows: list[dict], plans: list[dict], compute: dict[str, Any], *,
           plan_measured: bool = True) -> dict[str, Any]:
    answered = [r for r in rows if r["outcome"] != "failed"]
    bad = [r for r in answered if not r["good"]]
    good = [r for r in answered if r["good"]]
    errors = [abs(r["good_fraction_said"] - r["good_fraction"]) for r in bad if r["outcome"] == "reject"]
    gf = {"mean_abs_error": None, "lo": None, "hi": None, "n": len(errors), "ci": "bootstrap95",
          "over": "rejected bad clips"}
    if errors:
        lo, hi = bootstrap_ci(errors, seed=ctx.seed)
        gf |= {"mean_abs_error": round(float(np.mean(errors)), 6), "lo": lo, "hi": hi}
    by_kind = {}
    for kind in dict.fromkeys(r["kind"] for r in sorted(rows, key=lambda r: not r["good"])):
        mine = [r for r in answered if r["kind"] == kind]
        right = sum((r["outcome"] == "accept") == (kind == "good") for r in mine)
        # located: rejected, and the good fraction said is within the tolerance (one move) of the labelled one
        tol = [r for r in mine if not r["good"]]
        located = sum(r["outcome"] == "reject" and abs(r["good_fraction_said"] - r["good_fraction"]) <= r["tolerance"] + 1e-9
                      for r in tol)
        by_kind[kind] = {"correct": _rate(right, len(mine)), "located": _rate(located, len(tol)),
                         "failed": sum(r["outcome"] == "failed" for r in rows if r["kind"] == kind)}
    answered_plans = [p for p in plans if p["outcome"] == "answered"]
    failures = Counter(r["failure"] for r in rows if r["outcome"] == "failed")
    failures.update("plan" for p in plans if p["outcome"] == "failed")
    from collabvr.prices import cost, load_prices

    try:
        usd = cost(compute, vgm="sim", vlm=ctx.vlm, prices=load_prices())
    except Exception:  # noqa: BLE001 - an unpriced or unknown backend: the cost is unknown, not a crash
        usd = None
    return {
        "vlm": ctx.vlm,
        "vlm_options": {k: v for k, v in ctx.vlm_options.items() if "key" not in k.lower()},
        "suite": suite,
        "seed": ctx.seed,
        "clips": len(rows),
        "mix": dict(Counter(r["kind"] for r in rows)),
        "verify": {
            "false_accept": _rate(sum(r["outcome"] == "accept" for r in bad), len(bad)),
            "false_reject": _rate(sum(r["outcome"] == "reject" for r in good), len(good)),
            "good_fraction_error": gf,
            "by_kind": by_kind,
            "failed": sum(r["outcome"] == "failed" for r in rows),
        },
        "plan": {
            "measured": plan_measured,
            "frames": len(plans),
            "legal": _rate(sum(p["legal"] for p in answered_plans), len(answered_plans)),
            "optimal": _rate(sum(p["optimal"] for p in answered_plans), len(answered_plans)),
            "wrong_completion": _rate(sum(p["wrong_completion"] for p in answered_plans), len(answered_plans)),
            "failed": len(plans) - len(answered_plans),
        },
        "typed_failures": dict(failures),
        "compute": {"vlm_calls": compute.get("vlm_calls", 0), "input_tokens": compute.get("input_tokens", 0),
                    "output_tokens": compute.get("output_tokens", 0), "usd": usd},
        "clips_detail": rows,
        "plans_detail": plans,
    }


def _fmt(r: dict[str, Any]) -> str:
    if r.get("rate") is None:
        return "n/a"
    return f"{r['rate']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (n={r['n']})"


def table(result: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    v, p = result["verify"], result["plan"]
    gf = v["good_fraction_error"]
    lines = ["| measure | value [95% CI] |", "|---|---|",
             f"| false accept (bad clips accepted) | {_fmt(v['false_accept'])} |",
             f"| false reject (good clips rejected) | {_fmt(v['false_reject'])} |"]
    if gf["mean_abs_error"] is not None:
        lines.append(f"| good_fraction abs. error (bootstrap) | {gf['mean_abs_error']:.3f} [{gf['lo']:.3f}, {gf['hi']:.3f}] (n={gf['n']}) |")
    for kind, entry in v["by_kind"].items():
        lines.append(f"| verdict correct on {kind} clips | {_fmt(entry['correct'])} |")
        if kind != "good":
            lines.append(f"| {kind}: rejected and located (good fraction within tolerance) | {_fmt(entry['located'])} |")
    if p.get("measured", True):
        lines += [f"| plan legal | {_fmt(p['legal'])} |", f"| plan optimal first move | {_fmt(p['optimal'])} |",
                  f"| plan claims completion wrongly | {_fmt(p['wrong_completion'])} |"]
    else:
        lines.append("| plan | not measured (footage has no known optimal move) |")
    lines += [f"| typed failures | {result['typed_failures'] or 0} |",
              f"| VLM calls / tokens in / out | {result['compute']['vlm_calls']} / {result['compute']['input_tokens']} / "
              f"{result['compute']['output_tokens']} |",
              f"| cost (USD) | {result['compute']['usd'] if result['compute']['usd'] is not None else 'unknown'} |"]
    text = "\n".join(lines) + "\n"
    if result.get("prediction"):
        from collabvr.calibrate_predict import markdown

        text += markdown(result["prediction"])
    return text


def write(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``calibration.json``, ``calibration.md`` and (with matplotlib) ``calibration.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "calibration.json", out_dir / "calibration.md"]
    paths[0].write_text(json.dumps(result, indent=2, default=str))
    paths[1].write_text(table(result))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    v, p = result["verify"], result["plan"]
    bars = [("false accept", v["false_accept"]), ("false reject", v["false_reject"]),
            *[(f"correct: {k}", e["correct"]) for k, e in v["by_kind"].items()],
            ("plan legal", p["legal"]), ("plan optimal", p["optimal"]), ("wrong completion", p["wrong_completion"])]
    bars = [(name, r) for name, r in bars if r["rate"] is not None]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(bars) + 1))
    ys = range(len(bars))
    rates = [r["rate"] for _, r in bars]
    err = [[max(0.0, r["rate"] - r["lo"]) for _, r in bars], [max(0.0, r["hi"] - r["rate"]) for _, r in bars]]
    ax.barh(list(ys), rates, xerr=err, color="#4c72b0", capsize=3)
    ax.set_yticks(list(ys), [name for name, _ in bars])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title(f"calibrate {result['vlm']} on {result['suite']} (Wilson 95% CI)")
    fig.tight_layout()
    fig.savefig(out_dir / "calibration.png", dpi=100)
    plt.close(fig)
    return [*paths, out_dir / "calibration.png"]
