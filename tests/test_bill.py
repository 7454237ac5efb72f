"""The bill before paying: the estimate, the confirmation, and --max-cost."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from collabvr.cli import app
from collabvr.context import Context
from collabvr.graph import METHODS, worst_case
from collabvr.prices import estimate, load_prices
from collabvr.runner import bill
from collabvr.status import EXIT_BAD_INPUT, EXIT_INCOMPLETE
from tests.fakes import FAST, Brain, FakeGoogle, FakeOpenAI

cli = CliRunner()


def veo_run(google: FakeGoogle, image: str, out: str, *extra: str) -> list[str]:
    return ["run", "--image", image, "--prompt", "reach the goal", "--out", out,
            "--vlm", "gemini:gemini-2.5-pro", "--vgm", "veo:veo-3.1-generate-001",
            "--vlm-option", f"base_url={google.url}", "--vlm-option", "api_key=test-google-key-000",
            "--vgm-option", f"base_url={google.url}", "--vgm-option", "api_key=test-google-key-000",
            "--vgm-option", "poll_s=0.01", *[f"--vlm-option={k}={v}" for k, v in FAST.items()], *extra]


def test_worst_case_clip_seconds_are_what_the_method_can_generate_at_most():
    ctx = Context()  # 6 s + 2 x 3 s, 3 attempts, k 4, rounds 3
    assert worst_case("collabvr", ctx).clip_seconds == 36
    assert worst_case("single", ctx).clip_seconds == 12
    assert worst_case("pass_at_k", ctx).clip_seconds == 48
    assert worst_case("prompt_opt", Context(budget_seconds=30)).clip_seconds == 30  # capped by the budget
    assert {m: worst_case(m, ctx).vlm_calls for m in METHODS} == {
        "collabvr": 18, "single": 0, "pass_at_k": 1, "upfront_plan": 1, "posthoc_critique": 2, "prompt_opt": 5}


def test_the_estimate_prices_veo_seconds_as_billed_and_gemini_tokens():
    ctx = Context(vlm="gemini:gemini-2.5-pro", vgm="veo:veo-3.1-generate-001",
                  vlm_options={"api_key": "x-key-123456"}, vgm_options={"api_key": "x-key-123456"})
    single = bill("single", ctx)
    assert single.vlm_calls == 0 and single.clip_seconds == pytest.approx(12 * 4 / 3)  # Veo bills 3 s as 4 s
    assert single.usd == pytest.approx(16 * 0.20)
    gemini_only = estimate(worst_case("upfront_plan", ctx), vgm="sim", vlm="gemini:gemini-2.5-pro", prices=load_prices())
    assert gemini_only.usd == pytest.approx((2000 + 300) * 1.25 / 1e6 + 2000 * 10.0 / 1e6)
    assert bill("collabvr", Context()).usd == 0 and not bill("collabvr", Context()).paid  # the sim is free


def test_an_unpriced_model_is_unknown_not_free():
    local = estimate(worst_case("single", Context()), vgm="somelocal:model", vlm="sim", prices=load_prices())
    assert local.usd is None and local.paid and "somelocal:model" in local.describe()


def test_a_paid_run_above_the_threshold_asks_and_without_a_terminal_refuses_before_any_call(user_task, tmp_path):
    with FakeGoogle(Brain(steps=1)) as google:
        result = cli.invoke(app, veo_run(google, user_task.image_path, str(tmp_path / "r")))
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        assert "estimated cost: $" in result.output and "--yes" in result.output
        assert google.requests == []  # nothing was called, nothing was paid
        result = cli.invoke(app, veo_run(google, user_task.image_path, str(tmp_path / "r"), "--yes"))
        assert result.exit_code == 0, result.output
        assert google.requests
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["status"] == "complete"


def test_a_run_under_the_threshold_goes_ahead_and_shows_its_bill(user_task, tmp_path):
    with FakeGoogle(Brain(steps=1)) as google:
        result = cli.invoke(app, veo_run(google, user_task.image_path, str(tmp_path / "r"), "--confirm-above", "100"))
    assert result.exit_code == 0, result.output
    assert "estimated cost: $" in result.output and "clip-seconds" in result.output


def test_max_cost_stops_starting_episodes_and_the_summary_says_so(tmp_path):
    out = tmp_path / "b"
    with FakeOpenAI(Brain(steps=1, verdict=lambda media: True)) as openai:
        args = ["bench", "--suite", "sim:maze/easy", "--n", "3", "--concurrency", "1", "--out", str(out), "--vgm", "sim:weak",
                "--vlm", "openai:gpt-4.1", "--vlm-option", f"base_url={openai.url}/v1", "--vlm-option", "api_key=sk-test-0001",
                "--max-cost", "0.000001", "--yes", "--quiet"]
        result = cli.invoke(app, args)
        assert result.exit_code == EXIT_INCOMPLETE, result.output
        summary = json.loads((out / "summary.json").read_text())
        assert summary["stopped"]["not_started"] == 2 and summary["totals"]["episodes"] == 1
        assert "Stopped early" in (out / "results.md").read_text()
        result = cli.invoke(app, [*args[:-4], "--yes", "--quiet"])  # the same command without the cap continues
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] is None and summary["totals"]["episodes"] == 3
