"""benchmarks/cost.py: episodes priced at list prices, video and VLM calls both."""

from __future__ import annotations

import pytest

from benchmarks.cost import FRAME_TOKENS, TOKENS, VIDEO_FPS, dollars, table, vlm_tokens
from collabvr.backends.api import PRICES
from collabvr.prices import load_prices, thinking_tokens


def test_vlm_tokens_count_what_each_call_is_shown():
    compute = {"clip_seconds": 12.0, "vlm_plan_calls": 2, "vlm_verify_calls": 3}
    tokens_in, tokens_out = vlm_tokens(compute)
    frames = 2 + 3 + 12.0 * VIDEO_FPS
    assert tokens_in == FRAME_TOKENS * frames + 2 * TOKENS["plan"]["text_in"] + 3 * TOKENS["verify"]["text_in"]
    assert tokens_out == 2 * TOKENS["plan"]["out"] + 3 * TOKENS["verify"]["out"]
    assert vlm_tokens({"clip_seconds": 48.0}) == (0, 0)  # no VLM call, no VLM tokens


def test_an_episode_costs_its_clip_seconds_and_its_vlm_tokens_at_list_prices():
    result = {"compute": {"clip_seconds": 10.0, "vlm_critique_calls": 1}}
    video, words = dollars(result, "veo-3.1-generate-001", "gemini-2.5-pro")  # with the thinking assumed for Gemini 2.5 Pro
    assert video == pytest.approx(10.0 * PRICES["veo-3.1-generate-001"]["per_second"])
    tokens_in, tokens_out = vlm_tokens(result["compute"], thinking_tokens("gemini-2.5-pro"))  # its thinking, as output
    assert words == pytest.approx(tokens_in * 1.25e-6 + tokens_out * 10e-6, abs=1e-6)


def test_the_table_pairs_collabvr_with_each_method_in_score_and_dollars():
    rows = [{"method": m, "family": "maze", "difficulty": "easy", "seed": s, "score": score,
             "compute": {"clip_seconds": secs, "vlm_calls": 1, "vlm_select_calls": 1}}
            for s in range(12) for m, score, secs in (("collabvr", 1.0, 12.0), ("pass@4", 0.5, 48.0))]
    text = table(rows, "veo-3.1-generate-001", "gemini-2.5-pro")
    assert "| pass@4 | 12 | 0.500" in text and "+0.500 [+0.500, +0.500] | -7.2" in text


def test_thinking_tokens_are_billed_as_output_per_call_with_a_default_per_model():
    compute = {"clip_seconds": 12.0, "vlm_plan_calls": 2, "vlm_verify_calls": 3}
    plain_in, plain_out = vlm_tokens(compute)
    think_in, think_out = vlm_tokens(compute, 700)
    assert think_in == plain_in and think_out == plain_out + 5 * 700
    assert thinking_tokens("gemini-2.5-pro") == 1000 and thinking_tokens("gemini-2.5-pro-preview-06-05") == 1000
    assert thinking_tokens("gemini-2.5-flash-lite") == 0 and thinking_tokens("gpt-4o") == 0 and thinking_tokens("unknown") == 0
    result = {"compute": compute}
    default = dollars(result, "veo-3.1-generate-001", "gemini-2.5-pro")[1]
    assert default == pytest.approx(dollars(result, "veo-3.1-generate-001", "gemini-2.5-pro", 1000)[1])
    assert default > dollars(result, "veo-3.1-generate-001", "gemini-2.5-pro", 0)[1]


def test_a_price_file_sets_the_thinking_assumed(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"gemini-2.5-pro": {"thinking_tokens": 250}}')
    table = load_prices(path)
    assert thinking_tokens("gemini-2.5-pro", table) == 250 and table["gemini-2.5-pro"]["input_per_mtok"] == 1.25


def test_every_dollar_table_says_what_it_assumed_and_reprices_the_vlm_by_thinking():
    rows = [{"method": m, "family": "maze", "difficulty": "easy", "seed": s, "score": 1.0,
             "compute": {"clip_seconds": 12.0, "vlm_calls": calls, "vlm_verify_calls": calls}}
            for s in range(3) for m, calls in (("collabvr", 6), ("pass@4", 0))]
    text = table(rows, "veo-3.1-generate-001", "gemini-2.5-pro", thinking=500)
    assert "with 500 thinking tokens per VLM call (set) billed as output" in text
    assert "| method | 0 | 250 | 500 | 1,000 | 2,000 |" in text
    assert "thinking tokens per VLM call (the default assumed for it)" in table(rows, "veo-3.1-generate-001", "gemini-2.5-pro")
