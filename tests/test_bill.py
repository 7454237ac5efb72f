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


def test_the_bench_bill_adds_the_judges_priced_bound_per_judged_episode(tmp_path):
    from collabvr.bench.config import BenchConfig
    from collabvr.bench.runner import bench_bill
    from collabvr.graph import Compute
    from collabvr.nodes.baseline import horizon
    from tests.test_benchmarks import make_vbvr

    key = {"api_key": "x-key-123456"}
    base = dict(suite=f"vbvr:{make_vbvr(tmp_path / 'vbvr')}", methods=["single", "upfront_plan"], vgm="still",
                vlm="openai:gpt-4.1", vlm_options=key, size=64, context={"max_steps": 2}, judge_repeats=3)
    plain = bench_bill(BenchConfig(out=tmp_path / "a", **base))  # VBVR has no rubric: nobody judges
    judged = bench_bill(BenchConfig(out=tmp_path / "b", judge_vlm="gemini:gemini-2.5-pro", judge_vlm_options=key, **base))
    bound = Compute(vlm_calls=3, vlm_images=3, vlm_video_seconds=3 * horizon(Context(max_steps=2)))  # 3 calls, each sees it all
    one = estimate(bound, vgm="sim", vlm="gemini:gemini-2.5-pro", prices=load_prices()).usd
    episodes = 2 * 5  # two methods, five samples
    assert plain.usd > 0 and one > 0
    assert judged.usd == pytest.approx(plain.usd + episodes * one, abs=1e-6)
    assert dict(judged.parts) == pytest.approx({"method": plain.usd, "judge": episodes * one}, abs=1e-6)
    assert judged.vlm_calls == plain.vlm_calls + episodes * 3
    assert f"judge ${episodes * one:,.2f}" in judged.describe() and f"method ${plain.usd:,.2f}" in judged.describe()


def test_a_run_with_a_rubric_shows_the_judge_in_its_bill(user_task, tmp_path):
    ctx = Context(vlm="gemini:gemini-2.5-pro", vlm_options={"api_key": "x-key-123456"})
    from collabvr.runner import judge_for
    from collabvr.scoring import JudgeSpec

    judged = user_task.with_rubric("score 0-5")
    assert judge_for(judged, ctx).vlm == "gemini:gemini-2.5-pro" and judge_for(user_task, ctx) is None
    own = bill("upfront_plan", ctx)
    both = bill("upfront_plan", ctx, judge=JudgeSpec("gemini:gemini-2.5-pro", {"api_key": "x-key-123456"}, repeats=2))
    assert both.usd > own.usd and both.vlm_calls == own.vlm_calls + 2
    with_ref = bill("upfront_plan", ctx, judge=JudgeSpec("gemini:gemini-2.5-pro", {"api_key": "x-key-123456"}, repeats=2),
                    references=1)  # a Gen-ViRe ground-truth image is one more image in each call
    assert with_ref.input_tokens == both.input_tokens + 2 * 300 and with_ref.usd > both.usd
