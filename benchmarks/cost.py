"""What each method would cost in dollars with real backends: video and VLM calls priced at list prices.

    python benchmarks/cost.py runs/bench-weak-accurate [--vgm veo-3.1-generate-001] [--vlm gemini-2.5-pro] [--thinking-tokens N]

The bench's "budget" caps VGM clip-seconds only; VLM calls are free in it, and CollabVR makes
several times more of them than the baselines. This prices both from the price table that the
backends use (``collabvr.backends.api.PRICES``: USD list prices collected from the providers'
public pages in 2025, standard tier; they change), so the comparison can be read at matched
dollars too. The sim reports no tokens, so each VLM call's tokens are estimated from what the call
is shown, with the assumptions in ``TOKENS`` (stated on docs/results-sim.md):

* a frame costs 258 input tokens (Gemini's count for an image of up to 384 px a side), and a
  video is sent at 4 frames per second (the gemini backend's ``video_fps`` default);
* ``plan`` sees one frame; ``verify`` the clip it judges and its start frame (over an episode:
  every clip-second generated, plus one frame per call); ``select`` every candidate (every
  clip-second generated); ``critique`` one whole video of the horizon H (12 s);
* every call adds ``text_in`` tokens of prompt and returns ``out`` tokens (per role, below), plus
  the VLM's thinking tokens, billed as output: ``--thinking-tokens`` per call, by default the
  model's assumed count (:func:`collabvr.prices.thinking_tokens`: 1,000 for Gemini 2.5 Pro and
  Flash, which think by default; 0 for models that do not). The thinking a model spends on these
  short structured answers is not documented, and it decides the VLM bill: the second table
  reprices the VLM calls at several counts.

Prints, per method, the mean clip-seconds and VLM calls per episode, the dollars of each, the
score, and CollabVR's paired score difference and dollar difference against each method on the same
instances: a method that spends at least CollabVR's dollars and scores lower is beaten at matched
(or lower) cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from collabvr.backends.api import PRICES, estimated_cost
from collabvr.bench.results import read_run
from collabvr.bench.stats import bootstrap_ci, episode_score, method_scores, paired
from collabvr.prices import thinking_tokens

FRAME_TOKENS = 258
VIDEO_FPS = 4.0
HORIZON_S = 12.0
TOKENS = {  # per call: prompt text in, record out
    "plan": {"text_in": 500, "out": 150},
    "verify": {"text_in": 500, "out": 200},
    "select": {"text_in": 300, "out": 80},
    "critique": {"text_in": 400, "out": 250},
    "judge": {"text_in": 300, "out": 80},
}


THINKING_SWEEP = (0, 250, 500, 1000, 2000)  # thinking tokens per call the second table reprices at


def vlm_tokens(compute: dict[str, Any], thinking: float = 0.0) -> tuple[float, float]:
    """(input, output) tokens an episode's VLM calls would use with a real VLM that thinks ``thinking``
    tokens a call (see the module doc)."""
    calls = {role: compute.get(f"vlm_{role}_calls", 0) for role in TOKENS}
    frames = calls["plan"] + calls["verify"]  # the current frame; a verified clip's start frame
    seconds = 0.0
    if calls["verify"]:
        seconds += compute.get("clip_seconds", 0.0)  # every generated clip is verified once
    if calls["select"]:
        seconds += compute.get("clip_seconds", 0.0)  # every candidate is shown to the selector
    seconds += calls["critique"] * HORIZON_S
    tokens_in = FRAME_TOKENS * (frames + seconds * VIDEO_FPS) + sum(calls[r] * TOKENS[r]["text_in"] for r in TOKENS)
    tokens_out = sum(calls[r] * (TOKENS[r]["out"] + thinking) for r in TOKENS)
    return tokens_in, tokens_out


def dollars(result: dict[str, Any], vgm: str, vlm: str, thinking: float | None = None) -> tuple[float, float]:
    """(video $, VLM $) of one episode at list prices; ``thinking`` tokens per VLM call (None: the model's
    assumed count)."""
    compute = result.get("compute") or {}
    tokens_in, tokens_out = vlm_tokens(compute, thinking_tokens(vlm) if thinking is None else thinking)
    video = estimated_cost(vgm, {"clip_seconds": compute.get("clip_seconds", 0.0)}) or 0.0
    words = estimated_cost(vlm, {"input_tokens": tokens_in, "output_tokens": tokens_out}) or 0.0
    return video, words


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([(r.get("compute") or {}).get(key, 0.0) for r in rows]))


def assumed(vgm: str, vlm: str, thinking: float) -> str:
    """What a dollar figure assumed, in one sentence."""
    source = "the default assumed for it" if thinking == thinking_tokens(vlm) else "set"
    return (f"VGM `{vgm}` at ${PRICES[vgm]['per_second']:.2f}/s; VLM `{vlm}` at ${PRICES[vlm]['input_per_mtok']:.2f} / "
            f"${PRICES[vlm]['output_per_mtok']:.2f} per million input / output tokens (list prices, 2025), with "
            f"{thinking:,.0f} thinking tokens per VLM call ({source}) billed as output, and the token estimate of "
            f"benchmarks/cost.py.")


def table(results: list[dict[str, Any]], vgm: str, vlm: str, reference: str = "collabvr", thinking: float | None = None) -> str:
    for model in (vgm, vlm):
        if model not in PRICES:
            raise SystemExit(f"error: no list price for {model!r}; priced: {', '.join(PRICES)}")
    thinking = thinking_tokens(vlm) if thinking is None else thinking
    methods = list(dict.fromkeys(r["method"] for r in sorted(results, key=lambda r: r["method"])))
    cost = {m: method_scores(results, m, lambda r: sum(dollars(r, vgm, vlm, thinking))) for m in methods}
    lines = [assumed(vgm, vlm, thinking) + "\n",
             f"| method | n | score [95% CI] | clip-s | VLM calls | video $ | VLM $ | total $ | {reference} − method: score "
             f"[95% CI] | {reference} − method: $ |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        rows = [r for r in results if r["method"] == m]
        scores = [episode_score(r) for r in rows]
        lo, hi = bootstrap_ci(scores)
        parts = np.array([dollars(r, vgm, vlm, thinking) for r in rows])
        diff = dcost = "—"
        if m != reference and reference in methods:
            p = paired(method_scores(results, reference), method_scores(results, m))
            c = paired(cost[reference], cost[m])
            diff, dcost = p.text(), f"{c.diff:+.2f}"
        lines.append(f"| {m} | {len(rows)} | {np.mean(scores):.3f} [{lo:.3f}, {hi:.3f}] | {_mean(rows, 'clip_seconds'):.1f} | "
                     f"{_mean(rows, 'vlm_calls'):.1f} | {parts[:, 0].mean():.2f} | {parts[:, 1].mean():.3f} | {parts.sum(1).mean():.2f} | "
                     f"{diff} | {dcost} |")
    lines += ["", f"VLM $ per episode by thinking tokens per call (`{vlm}`; the rest as above):", "",
              "| method | " + " | ".join(f"{t:,}" for t in THINKING_SWEEP) + " |", "|---|" + "---|" * len(THINKING_SWEEP)]
    for m in methods:
        rows = [r for r in results if r["method"] == m]
        lines.append(f"| {m} | " + " | ".join(f"{np.mean([dollars(r, vgm, vlm, t)[1] for r in rows]):.3f}" for t in THINKING_SWEEP)
                     + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a bench directory, or a results file (.jsonl or .jsonl.gz)")
    parser.add_argument("--vgm", default="veo-3.1-generate-001", help="a VGM in the price table")
    parser.add_argument("--vlm", default="gemini-2.5-pro", help="a VLM in the price table")
    parser.add_argument("--against", default="collabvr")
    parser.add_argument("--thinking-tokens", type=float, default=None,
                        help="thinking tokens per VLM call, billed as output (default: the VLM's assumed count, "
                             "collabvr.prices.thinking_tokens)")
    args = parser.parse_args()
    results = read_run(args.dir) or parser.error(f"no results in {args.dir}")
    print(table(results, args.vgm, args.vlm, args.against, args.thinking_tokens), end="")


if __name__ == "__main__":
    main()
