"""What an episode's compute would cost, from a price table per backend provider.

The table maps a provider (or a full "provider:model" spec, which wins over its provider) to
USD prices per clip-second of video and per 1,000 input and output tokens. Prices change: the
entries below carry the date they were taken from the providers' public price pages, and are
estimates only. Override them with ``collabvr bench --prices FILE.json`` (same shape; entries
replace or add to these, key by key).

Cache hits are priced like fresh calls: the cost is what the method's compute costs, so methods
compare fairly whatever the cache held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collabvr.backends import registry
from collabvr.errors import BadInput

PRICE_KEYS = ("per_clip_second", "per_1k_input_tokens", "per_1k_output_tokens")
_NOTE = "estimate as of the date given; check current pricing on the provider's price page"

PRICES: dict[str, dict[str, Any]] = {
    "sim": {"per_clip_second": 0.0, "per_1k_input_tokens": 0.0, "per_1k_output_tokens": 0.0, "as_of": "-", "note": "offline simulator: free"},
    # Veo 3.1 (standard) via the Gemini API; Veo 3.1 Fast was $0.15/s.
    "veo": {"per_clip_second": 0.40, "per_1k_input_tokens": 0.0, "per_1k_output_tokens": 0.0, "as_of": "2025-10-15", "note": _NOTE},
    "veo:veo-3.1-fast-generate-preview": {"per_clip_second": 0.15, "per_1k_input_tokens": 0.0, "per_1k_output_tokens": 0.0,
                                          "as_of": "2025-10-15", "note": _NOTE},
    # Gemini 2.5 Pro, prompts up to 200k tokens.
    "gemini": {"per_clip_second": 0.0, "per_1k_input_tokens": 0.00125, "per_1k_output_tokens": 0.010, "as_of": "2025-10-15", "note": _NOTE},
    # GPT-4o.
    "openai": {"per_clip_second": 0.0, "per_1k_input_tokens": 0.0025, "per_1k_output_tokens": 0.010, "as_of": "2025-10-15", "note": _NOTE},
}


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
        raise BadInput(f"price table {str(path)!r} must map provider -> {{{', '.join(PRICE_KEYS)}}}")
    for key, entry in extra.items():
        for name in PRICE_KEYS:
            if name in entry and (not isinstance(entry[name], int | float) or entry[name] < 0):
                raise BadInput(f"price {key}.{name} must be a number >= 0, got {entry[name]!r}")
        table[key] = {**table.get(key, {}), **entry}
    return table


def price_of(spec: str, prices: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The entry for a backend spec: the exact "provider:model", else its provider; None if unpriced."""
    provider, _ = registry.parse_spec(spec)
    return prices.get(spec.strip()) or prices.get(provider)


def cost(compute: dict[str, float], *, vgm: str, vlm: str, prices: dict[str, dict[str, Any]]) -> float | None:
    """Estimated USD cost of an episode's compute; None when a backend it used has no price."""
    vgm_price, vlm_price = price_of(vgm, prices), price_of(vlm, prices)
    if vgm_price is None or vlm_price is None:
        return None
    usd = compute.get("clip_seconds", 0.0) * vgm_price.get("per_clip_second", 0.0)
    usd += compute.get("input_tokens", 0.0) / 1000 * vlm_price.get("per_1k_input_tokens", 0.0)
    usd += compute.get("output_tokens", 0.0) / 1000 * vlm_price.get("per_1k_output_tokens", 0.0)
    return round(usd, 6)
