"""What each method would cost in dollars with real backends: video and VLM calls priced at list prices.

    python benchmarks/cost.py runs/bench-weak-accurate [--vgm veo-3.1-generate-001] [--vlm gemini-2.5-pro]

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
* every call adds ``text_in`` tokens of prompt and returns ``out`` tokens (per role, below).

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


def vlm_tokens(compute: dict[str, Any]) -> tuple[float, float]:
    """(input, output) tokens an episode's VLM calls would use with a real VLM (see the module doc)."""
    calls = {role: compute.get(f"vlm_{role}_calls", 0) for role in TOKENS}
    frames = calls["plan"] + calls["verify"]  # the current frame; a verified clip's start frame
    seconds = 0.0
    if calls["verify"]:
        seconds += compute.get("clip_seconds", 0.0)  # every generated clip is verified once
    if calls["select"]:
        seconds += compute.get("clip_seconds", 0.0)  # every candidate is shown to the selector
    seconds += calls["critique"] * HORIZON_S
    tokens_in = FRAME_TOKENS * (frames + seconds * VIDEO_FPS) + sum(calls[r] * TOKENS[r]["text_in"] for r in TOKENS)
    tokens_out = sum(calls[r] * TOKENS[r]["out"] for r in TOKENS)
    return tokens_in, tokens_out


def dollars(result: dict[str, Any], vgm: str, vlm: str) -> tuple[float, float]:
    """(video $, VLM $) of one episode at list prices."""
    compute = result.get("compute") or {}
    tokens_in, tokens_out = vlm_tokens(compute)
    video = estimated_cost(vgm, {"clip_seconds": compute.get("clip_seconds", 0.0)}) or 0.0
    words = estimated_cost(vlm, {"input_tokens": tokens_in, "output_tokens": tokens_out}) or 0.0
    return video, words


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([(r.get("compute") or {}).get(key, 0.0) for r in rows]))


def table(results: list[dict[str, Any]], vgm: str, vlm: str, reference: str = "collabvr") -> str:
    for model in (vgm, vlm):
        if model not in PRICES:
            raise SystemExit(f"error: no list price for {model!r}; priced: {', '.join(PRICES)}")
    methods = list(dict.fromkeys(r["method"] for r in sorted(results, key=lambda r: r["method"])))
    cost = {m: method_scores(results, m, lambda r: sum(dollars(r, vgm, vlm))) for m in methods}
    lines = [f"VGM `{vgm}` at ${PRICES[vgm]['per_second']:.2f}/s; VLM `{vlm}` at ${PRICES[vlm]['input_per_mtok']:.2f} / "
             f"${PRICES[vlm]['output_per_mtok']:.2f} per million input / output tokens (list prices, 2025).\n",
             f"| method | n | score [95% CI] | clip-s | VLM calls | video $ | VLM $ | total $ | {reference} − method: score "
             f"[95% CI] | {reference} − method: $ |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        rows = [r for r in results if r["method"] == m]
        scores = [episode_score(r) for r in rows]
        lo, hi = bootstrap_ci(scores)
        parts = np.array([dollars(r, vgm, vlm) for r in rows])
        diff = dcost = "—"
        if m != reference and reference in methods:
            p = paired(method_scores(results, reference), method_scores(results, m))
            c = paired(cost[reference], cost[m])
            diff, dcost = p.text(), f"{c.diff:+.2f}"
        lines.append(f"| {m} | {len(rows)} | {np.mean(scores):.3f} [{lo:.3f}, {hi:.3f}] | {_mean(rows, 'clip_seconds'):.1f} | "
                     f"{_mean(rows, 'vlm_calls'):.1f} | {parts[:, 0].mean():.2f} | {parts[:, 1].mean():.3f} | {parts.sum(1).mean():.2f} | "
                     f"{diff} | {dcost} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a bench directory, or a results file (.jsonl or .jsonl.gz)")
    parser.add_argument("--vgm", default="veo-3.1-generate-001", help="a VGM in the price table")
    parser.add_argument("--vlm", default="gemini-2.5-pro", help="a VLM in the price table")
    parser.add_argument("--against", default="collabvr")
    args = parser.parse_args()
    results = read_run(args.dir) or parser.error(f"no results in {args.dir}")
    print(table(results, args.vgm, args.vlm, args.against), end="")


if __name__ == "__main__":
    main()
