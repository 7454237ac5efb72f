"""What an episode's compute would cost.

One price table serves the backends and the bench: :data:`collabvr.backends.api.PRICES`, keyed by
model name, in USD per million input and output tokens and per generated second of video (dated
there and in docs/backends.md: prices change, check current pricing). The simulator is free.
``collabvr bench --prices FILE.json`` merges entries of the same shape over it:
``{"MODEL": {"input_per_mtok": .., "output_per_mtok": ..}}`` or ``{"MODEL": {"per_second": ..}}``.

Cache hits are priced like fresh calls: the cost is what the method's compute costs, so methods
compare fairly whatever the cache held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collabvr.backends import registry
from collabvr.backends.api import PRICES, estimated_cost
from collabvr.errors import BadInput

PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "per_second")
FREE = {"sim"}


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
    usd = 0.0
    video = {"clip_seconds": compute.get("clip_seconds", 0.0)}
    tokens = {"input_tokens": compute.get("input_tokens", 0.0), "output_tokens": compute.get("output_tokens", 0.0)}
    for spec, usage in ((vgm, video), (vlm, tokens)):
        provider, model = registry.parse_spec(spec)
        if provider in FREE:
            continue
        part = estimated_cost(model or provider, usage, prices)
        if part is None:
            return None
        usd += part
    return round(usd, 6)
