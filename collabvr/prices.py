"""What an episode's compute would cost.

One price table serves the backends and the bench: :data:`collabvr.backends.api.PRICES`, keyed by
model name, in USD per million input and output tokens and per generated second of video (dated
there and in docs/backends.md: prices change, check current pricing). The simulator is free.
``collabvr bench --prices FILE.json`` merges entries of the same shape over it:
``{"MODEL": {"input_per_mtok": .., "output_per_mtok": ..}}`` or ``{"MODEL": {"per_second": ..}}``,
and ``{"MODEL": {"thinking_tokens": ..}}`` sets the thinking assumed for a model (below).

Thinking tokens are billed as output tokens. A run with a real VLM records them (the backends count
them into ``output_tokens``); an estimate made without the model's own counts (a sim run priced as if
a real VLM had made its calls: ``benchmarks/cost.py``) adds :func:`thinking_tokens` per call.

Cache hits are priced like fresh calls: the cost is what the method's compute costs, so methods
compare fairly whatever the cache held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from collabvr.backends import registry
from collabvr.backends.api import PRICES, estimated_cost
from collabvr.errors import BadInput

PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "per_second", "thinking_tokens")

# Thinking tokens per VLM call, assumed where a run's own counts are not known. What the providers'
# documentation says: Gemini 2.5 Pro always thinks (budget 128 to 32,768 tokens, dynamic by default,
# it cannot be turned off); 2.5 Flash thinks by default (0 to 24,576, dynamic); 2.5 Flash-Lite does
# not unless a budget is set (ai.google.dev/gemini-api/docs/thinking); OpenAI's gpt-5 models reason
# by default (reasoning effort "medium"), gpt-4o and gpt-4.1 are not reasoning models. The
# documentation gives budgets, not typical counts: for a model that thinks by default we assume
# 1,000 tokens a call (as docs/calibrate.md does), and every dollar figure made with it says so.
THINKING_TOKENS: dict[str, int] = {
    "gemini-2.5-pro": 1000, "gemini-2.5-flash": 1000, "gemini-2.5-flash-lite": 0,
    "gpt-4o": 0, "gpt-4o-mini": 0, "gpt-4.1": 0, "gpt-4.1-mini": 0, "gpt-5": 1000, "gpt-5-mini": 1000,
}


def thinking_tokens(model: str, prices: dict[str, dict[str, Any]] | None = None) -> int:
    """Thinking tokens per call assumed for ``model``: a price table's ``thinking_tokens`` entry, else
    :data:`THINKING_TOKENS`; a name that extends an entry (``gemini-2.5-pro-preview-...``) takes its
    value; 0 for a model neither names."""
    for table in ({k: v["thinking_tokens"] for k, v in (prices or {}).items() if "thinking_tokens" in v}, THINKING_TOKENS):
        stems = [name for name in table if model == name or model.startswith(name)]
        if stems:
            return int(table[max(stems, key=len)])
    return 0
FREE = {"sim", "still", "groundtruth", "diffusers", "transformers"}  # the simulator, the reference VGMs, and
# local models (GPU time, not dollars) have no per-call price


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The built-in table, with the entries of a JSON file (if given) merged over it."""
    table = {k: dict(v) for k, v in PRICES.items()}
    if path is None:
        return table
    try:
        extra = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read price table {str(path)!r}: {exc}") from exc
    if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
        raise BadInput(f"price table {str(path)!r} must map model -> {{{', '.join(PRICE_KEYS)}}}")
    for key, entry in extra.items():
        for name, value in entry.items():
            if name not in PRICE_KEYS or not isinstance(value, int | float) or value < 0:
                raise BadInput(f"price {key}.{name} must be one of {', '.join(PRICE_KEYS)} with a number >= 0, got {value!r}")
        table[key] = {**table.get(key, {}), **entry}
    return table


def cost(compute: dict[str, float], *, vgm: str, vlm: str, prices: dict[str, dict[str, Any]]) -> float | None:
    """Estimated USD cost of an episode's compute; None when a backend it used has no price."""
    video = {"clip_seconds": compute.get("clip_seconds", 0.0)}
    tokens = {"input_tokens": compute.get("input_tokens", 0.0), "output_tokens": compute.get("output_tokens", 0.0)}
    usd, unpriced = _price(((vgm, video), (vlm, tokens)), prices)
    return None if unpriced else round(usd, 6)


def _price(parts: Any, prices: dict[str, dict[str, Any]], *, skip_idle: bool = False) -> tuple[float, list[str]]:
    """(USD, specs without a price) of ``(spec, usage)`` parts; free providers cost nothing, and with
    ``skip_idle`` a part that used nothing is not priced (so an unpriced idle backend stays known)."""
    usd, unpriced = 0.0, []
    for spec, usage in parts:
        provider, model = registry.parse_spec(spec)
        if provider in FREE or (skip_idle and not any(usage.values())):
            continue
        part = estimated_cost(model or provider, usage, prices)
        if part is None:
            unpriced.append(spec)
        else:
            usd += part
    return usd, unpriced


# -- the bill before paying --------------------------------------------------------------------
# Tokens one VLM call is assumed to use at most, for the estimate only (the traces record the real
# counts): the role prompt and its answer with thinking, an image, and a second of video at the
# Gemini backend's default 4 frames per second (258 tokens a frame, plus audio).
PROMPT_TOKENS = 2_000
ANSWER_TOKENS = 2_000
IMAGE_TOKENS = 300
VIDEO_TOKENS_PER_SECOND = 1_100


@dataclass(frozen=True)
class Estimate:
    """The most one episode (or a benchmark of them) can cost, with what the figure counts."""

    usd: float | None  # None when a paid backend has no price
    clip_seconds: float
    vlm_calls: int
    input_tokens: int
    output_tokens: int
    unpriced: tuple[str, ...] = ()
    parts: tuple[tuple[str, float | None], ...] = ()  # (label, usd): what makes up the total, e.g. method and judge

    @property
    def paid(self) -> bool:
        return self.usd is None or self.usd > 0

    def times(self, n: int) -> Estimate:
        usd = None if self.usd is None else round(self.usd * n, 6)
        return Estimate(usd, self.clip_seconds * n, self.vlm_calls * n, self.input_tokens * n, self.output_tokens * n,
                        self.unpriced, tuple((k, None if v is None else round(v * n, 6)) for k, v in self.parts))

    def labelled(self, label: str) -> Estimate:
        """This estimate as one named part of a total (:meth:`plus` keeps the parts apart)."""
        return replace(self, parts=((label, self.usd),))

    def plus(self, other: Estimate) -> Estimate:
        usd = None if self.usd is None or other.usd is None else round(self.usd + other.usd, 6)
        return Estimate(usd, self.clip_seconds + other.clip_seconds, self.vlm_calls + other.vlm_calls,
                        self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                        tuple(dict.fromkeys(self.unpriced + other.unpriced)), _merge(self.parts, other.parts))

    def describe(self) -> str:
        usd = f"${self.usd:,.2f}" if self.usd is not None else f"unknown (no price for {', '.join(self.unpriced)})"
        parts = ""
        if len(self.parts) > 1:
            parts = " (" + ", ".join(f"{k} " + ("unknown" if v is None else f"${v:,.2f}") for k, v in self.parts) + ")"
        return (f"{usd} at most{parts}: {self.clip_seconds:,.0f} clip-seconds, {self.vlm_calls:,} VLM calls, "
                f"~{self.input_tokens:,} input and ~{self.output_tokens:,} output tokens")


def _merge(a: tuple[tuple[str, float | None], ...], b: tuple[tuple[str, float | None], ...]) -> tuple[tuple[str, float | None], ...]:
    merged: dict[str, float | None] = dict(a)
    for k, v in b:
        if k not in merged:
            merged[k] = v
        else:
            merged[k] = None if merged[k] is None or v is None else round(merged[k] + v, 6)
    return tuple(merged.items())


NOTHING = Estimate(0.0, 0.0, 0, 0, 0)


def estimate(bound: Any, *, vgm: str, vlm: str, prices: dict[str, dict[str, Any]], billed_ratio: float = 1.0) -> Estimate:
    """Price a method's worst case (:func:`collabvr.graph.worst_case`) with the price table.

    ``billed_ratio`` is the most a VGM bills per requested second (Veo rounds 3 s up to 4 s: 4/3).
    """
    inputs = (bound.vlm_calls * PROMPT_TOKENS + bound.vlm_images * IMAGE_TOKENS
              + round(bound.vlm_video_seconds * VIDEO_TOKENS_PER_SECOND))
    outputs = bound.vlm_calls * ANSWER_TOKENS
    seconds = bound.clip_seconds * billed_ratio
    usd, unpriced = _price(((vgm, {"clip_seconds": seconds}), (vlm, {"input_tokens": inputs, "output_tokens": outputs})),
                           prices, skip_idle=True)
    return Estimate(None if unpriced else round(usd, 6), seconds, bound.vlm_calls, inputs, outputs, tuple(unpriced))
