"""``collabvr calibrate``: the labelled set is deterministic and agrees with the decoder, the sim
VLM's configured error rates fall inside the reported intervals, and API faults never count as accepts."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from collabvr.backends.sim.families import FAMILIES
from collabvr.calibrate import BAD_KINDS, decoded_label, kind_mix, labelled_set, wilson
from collabvr.cli import app
from tests.fakes import FakeOpenAI, chat_answer, error, openai_options
from tests.fakes.brain import role_of

runner = CliRunner()


def test_wilson_interval_matches_the_textbook_values():
    p, lo, hi = wilson(3, 10)
    assert p == 0.3 and lo == pytest.approx(0.1078, abs=1e-3) and hi == pytest.approx(0.6032, abs=1e-3)
    assert wilson(0, 0) == (None, None, None)
    assert wilson(0, 20)[1] == 0.0 and wilson(20, 20)[2] == 1.0


def test_the_mix_is_half_good_and_the_bad_half_covers_every_kind():
    mix = Counter(kind_mix(20))
    assert mix["good"] == 10 and all(mix[k] == 2 for k in BAD_KINDS)


def test_the_labelled_set_is_deterministic_and_every_label_agrees_with_the_decoder():
    a = labelled_set("sim", 20, seed=3)
    b = labelled_set("sim", 20, seed=3)
    c = labelled_set("sim", 20, seed=4)
    assert [x.label for x in a] == [y.label for y in b]
    assert all(np.array_equal(x.video.frames, y.video.frames) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.video.frames, y.video.frames) for x, y in zip(a, c, strict=True))
    assert {clip.task.family for clip in a} == set(FAMILIES)  # the whole suite, every family
    assert Counter(clip.label.kind for clip in a) == Counter(kind_mix(20))
    for clip in a:  # re-read independently of the builder: the decoder on every frame
        family = FAMILIES[clip.task.family]
        start = family.read(clip.start.array)
        planned = family.parse(clip.instruction)
        ok, bad, done = decoded_label(family, clip.video.frames, start, planned)
        label = clip.label
        assert ok == label.good and bad == label.first_bad_frame and done == label.moves_done
        if label.kind in ("drift", "violation", "wrong"):
            assert bad is not None and label.good_fraction == pytest.approx(bad / clip.video.num_frames, abs=1e-6)
        else:
            assert bad is None and label.good_fraction == 1.0
        if label.kind == "static":
            assert all(family.read(f) == start for f in clip.video.frames)
        if label.kind == "wrong":
            assert done == 0


def calibrate(tmp_path, *args: str) -> dict:
    result = runner.invoke(app, ["calibrate", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name in ("calibration.json", "calibration.md", "calibration.png"):
        assert (tmp_path / name).exists(), name
    return json.loads((tmp_path / "calibration.json").read_text())


@pytest.mark.parametrize(("false_accept", "false_reject", "plan_noise"), [(0.3, 0.1, 0.3), (0.1, 0.25, 0.0)])
def test_the_sim_vlms_configured_rates_fall_inside_the_reported_intervals(tmp_path, false_accept, false_reject, plan_noise):
    report = calibrate(tmp_path, "--vlm", "sim", "--n", "160", "--seed", "1",
                       "--vlm-option", f"false_accept={false_accept}", "--vlm-option", f"false_reject={false_reject}",
                       "--vlm-option", f"plan_noise={plan_noise}")
    fa, fr = report["verify"]["false_accept"], report["verify"]["false_reject"]
    assert fa["n"] == 80 and fr["n"] == 80 and fa["ci"] == "wilson95"
    assert fa["lo"] <= false_accept <= fa["hi"], fa
    assert fr["lo"] <= false_reject <= fr["hi"], fr
    # the sim verifier reports the first bad frame exactly when it rejects an error clip
    assert report["verify"]["good_fraction_error"]["mean_abs_error"] == 0.0
    plan = report["plan"]
    assert plan["legal"]["rate"] == 1.0 and plan["wrong_completion"]["rate"] == 0.0
    # noise is one legal off-path move: the optimal rate is about 1 - plan_noise
    assert plan["optimal"]["lo"] <= 1 - plan_noise <= plan["optimal"]["hi"], plan["optimal"]
    assert report["typed_failures"] == {} and report["compute"]["vlm_calls"] == 160 + 80


def test_an_accurate_verifier_is_not_reported_as_a_noisy_one(tmp_path):
    # the intervals are informative: a 0.3 false-accept rate lies outside the accurate VLM's interval
    report = calibrate(tmp_path, "--vlm", "sim", "--n", "160", "--seed", "1", "--vlm-option", "false_accept=0")
    fa = report["verify"]["false_accept"]
    assert fa["rate"] == 0.0 and fa["hi"] < 0.3
    assert all(entry["located"]["rate"] == 1.0 for kind, entry in report["verify"]["by_kind"].items() if kind != "good")


def test_openai_with_20_percent_injected_faults_runs_to_the_end_and_faults_never_count_as_accepts(tmp_path):
    # the honest fake rejects every clip; every fifth call gets a fault, most of them accept-shaped, that
    # persists through the backend's retries and its one re-ask, so the call ends as a typed failure
    faults = itertools.cycle([
        (2, lambda: chat_answer('{"accept": true, "reason": "ok", "good_fraction": 1.0', fault="truncated_accept")),
        (2, lambda: chat_answer({"accept": True, "reason": "ok", "good_fraction": 7.0}, fault="invalid_accept")),
        (1, lambda: error(400, "bad request")),
        (3, lambda: error(500)),
        (1, lambda: chat_answer(None, refusal="no", fault="refusal")),
    ])
    count = itertools.count(1)
    with FakeOpenAI() as fake:
        def handler(request):
            if next(count) % 5 == 0:
                copies, make = next(faults)
                fake.script("chat", *[make() for _ in range(copies - 1)])  # the retries and re-ask get it too
                return make()
            text, images = fake.decode(request)
            if role_of(text) == "verify":
                return chat_answer({"accept": False, "reason": "wrong", "good_fraction": 0.5, "suggestion": "redo"})
            return chat_answer(fake.brain.answer(role_of(text), text, images))

        fake.defaults["chat"] = handler
        options = [f"--vlm-option={k}={v}" for k, v in openai_options(fake).items()]
        report = calibrate(tmp_path, "--vlm", "openai:gpt-4.1", "--n", "20", *options)
        faulted = {r.fault for r in fake.calls("chat") if r.fault}
    assert {"truncated_accept", "invalid_accept", "http_400", "http_500", "refusal"} <= faulted
    verify = report["verify"]
    rows = report["clips_detail"]
    assert len(rows) == 20 and not any(r["outcome"] == "accept" for r in rows)
    assert verify["false_accept"]["k"] == 0 and verify["by_kind"]["good"]["correct"]["k"] == 0
    assert verify["failed"] >= 3, "the faults did not reach the verify calls"
    assert verify["failed"] + verify["false_accept"]["n"] + verify["false_reject"]["n"] == 20
    failures = sum(report["typed_failures"].values())
    assert failures == verify["failed"] + report["plan"]["failed"]
    assert report["compute"]["vlm_calls"] == 30 and report["compute"]["input_tokens"] > 0
    assert "typed failures" in (tmp_path / "calibration.md").read_text()


@pytest.mark.parametrize("args", [["--suite", "vbvr"], ["--suite", "sim:nope"], ["--n", "0"], ["--vlm-option", "false_accept=2"]])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args):
    result = runner.invoke(app, ["calibrate", "--vlm", "sim", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "calibration.json").exists()


# -- sim:PATH.json presets ---------------------------------------------------------------------------------------


def test_a_preset_file_is_a_sim_vlm_options_override_it_and_a_colon_in_the_path_parses(tmp_path):
    from collabvr.backends import registry
    from collabvr.errors import BadInput

    folder = tmp_path / "a:b"
    folder.mkdir()
    (folder / "p.json").write_text(json.dumps({"false_accept": 0.4, "plan_horizon": "clip"}))
    vlm = registry.resolve_vlm(f"sim:{folder / 'p.json'}", {"false_reject": 0.2})
    assert (vlm.config.false_accept, vlm.config.false_reject, vlm.config.plan_horizon) == (0.4, 0.2, "clip")
    assert vlm.config.plan_noise == 0.05  # the defaults fill the rest
    (tmp_path / "vgm.json").write_text(json.dumps({"violation_rate": 0.5}))
    assert registry.resolve_vgm(f"sim:{tmp_path / 'vgm.json'}").config.violation_rate == 0.5  # VGM presets too
    (tmp_path / "typo.json").write_text(json.dumps({"false_acept": 0.4}))
    (tmp_path / "list.json").write_text("[0.4]")
    (tmp_path / "range.json").write_text(json.dumps({"false_accept": "x"}))
    for name, message in [("missing.json", "no such file"), ("typo.json", "unknown field(s) false_acept; known: critic_false_solved"),
                          ("list.json", "expected a JSON object of VLMConfig fields"), ("range.json", "must be a probability")]:
        with pytest.raises(BadInput, match=re.escape(message)):
            registry.resolve_vlm(f"sim:{tmp_path / name}")
    result = runner.invoke(app, ["calibrate", "--vlm", f"sim:{tmp_path / 'missing.json'}", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no such file" in result.output and "Traceback" not in result.output


# -- --predict ---------------------------------------------------------------------------------------------------


def test_predict_writes_a_preset_that_reproduces_the_rates_and_gains_that_match_the_results(tmp_path):
    from collabvr.bench.stats import paired_methods

    out = tmp_path / "cal"
    report = calibrate(out, "--vlm", "sim", "--vlm-option", "false_accept=0.3", "--vlm-option", "false_reject=0.1",
                       "--vlm-option", "plan_noise=0.2", "--suite", "sim:maze/easy", "--n", "80", "--seed", "2",
                       "--predict", "--predict-n", "2", "--predict-draws", "2")
    preset = json.loads((out / "sim-preset.json").read_text())
    v = report["verify"]
    assert preset["false_accept"] == preset["critic_false_solved"] == round(v["false_accept"]["rate"], 4)
    assert preset["false_reject"] == preset["critic_false_unsolved"] == round(v["false_reject"]["rate"], 4)
    assert preset["plan_noise"] == round(1 - report["plan"]["optimal"]["rate"], 4)
    for kind in ("off_plan", "illegal", "unfinished"):  # the miss rates by kind, each onto its knob
        assert preset[f"false_accept_{kind}"] == round(v["false_accept_by_kind"][kind]["rate"], 4)
    assert preset["locate_error"] == round(v["mislocated"]["rate"], 4) == 0  # the sim verifier locates exactly
    pred = report["prediction"]
    results = [json.loads(line) for line in (out / "predict" / "results.jsonl").read_text().splitlines()]
    assert {r["method"] for r in results} == {"collabvr", "single", "pass@4", "posthoc_critique", "prompt_opt"}
    assert len(results) == 10 and pred["bench"]["episodes"] == 10 and pred["bench"]["budget_seconds"] == 48
    md = (out / "calibration.md").read_text()
    assert "## Prediction (under the simulator's assumptions)" in md and "The prediction assumes" in md
    assert "verify_correlation: not measured" in md and "Cuts for CollabVR" in md  # what it could not measure, and which way
    for gain in pred["gains"]:
        p = paired_methods(results, "collabvr", gain["baseline"], seed=2)
        assert (gain["diff"], gain["ci"], gain["n"]) == (p.diff, list(p.ci), 2)
        assert gain["sentence"].startswith(f"Under the simulator's assumptions, a sim VLM with these measured rates gains "
                                           f"{p.diff:+.3f} over {gain['baseline']} on maze")
        assert "expected to gain" not in gain["sentence"] and gain["draws"] == 2
        assert gain["sentence"] in md
    # a rerun resumes (nothing left to run); other rates cannot resume into the same episodes
    assert calibrate(out, "--vlm", "sim", "--vlm-option", "false_accept=0.3", "--vlm-option", "false_reject=0.1",
                     "--vlm-option", "plan_noise=0.2", "--suite", "sim:maze/easy", "--n", "80", "--seed", "2",
                     "--predict", "--predict-n", "2", "--predict-draws", "2")["prediction"]["gains"] == pred["gains"]
    assert len((out / "predict" / "results.jsonl").read_text().splitlines()) == 10
    other = runner.invoke(app, ["calibrate", "--out", str(out), "--vlm", "sim", "--suite", "sim:maze/easy", "--n", "20",
                                "--seed", "2", "--predict", "--predict-n", "2", "--predict-draws", "2"])
    assert other.exit_code == 2 and "other settings (vlm_options)" in other.output, other.output
    # the preset loads back as a sim VLM and reproduces the rates it was made from, roughly: a fresh
    # measurement (other clips) lies within 0.1 of them, and its interval overlaps the first one's
    again = calibrate(tmp_path / "again", "--vlm", f"sim:{out / 'sim-preset.json'}", "--n", "160", "--seed", "5")
    pairs = [(again["verify"][k], v[k], preset[k]) for k in ("false_accept", "false_reject")]
    pairs.append((again["plan"]["optimal"], report["plan"]["optimal"], 1 - preset["plan_noise"]))
    for new, first, value in pairs:
        assert abs(new["rate"] - value) < 0.1 and new["lo"] <= first["hi"] and first["lo"] <= new["hi"], (new, first, value)


def _calibrated(rate: float, n: int) -> dict:
    """A calibration result whose every rate is ``rate``, measured on ``n`` clips (and n plans)."""
    def r(k: int, total: int) -> dict:
        return {"rate": k / total, "k": k, "n": total}

    k = round(rate * n)
    kinds = {kind: r(round(rate * n / 3), n // 3) for kind in ("off_plan", "illegal", "unfinished")}
    return {"suite": "sim:maze/hard", "verify": {"false_accept": r(k, n), "false_reject": r(k, n), "mislocated": r(0, n),
                                                  "false_accept_by_kind": kinds},
            "plan": {"optimal": r(n - k, n), "errors": {"illegal": r(0, max(k, 1)), "multi": r(0, max(k, 1))}}}


def test_predict_intervals_widen_when_the_calibration_n_shrinks(tmp_path):
    """The same measured rates from 12 clips or from 12,000: the posterior draws spread, and the predictive
    interval with them; the point estimates, and so their benchmark, are the same."""
    from collabvr.calibrate.predict import posterior_presets, predict

    few, many = _calibrated(0.25, 12), _calibrated(0.25, 12_000)
    spread = {name: np.std([c.false_accept for c in posterior_presets(r, 200)]) for name, r in (("few", few), ("many", many))}
    assert spread["few"] > 10 * spread["many"]
    widths = {}
    for name, result in (("few", few), ("many", many)):
        pred = predict(result, tmp_path / name, n=3, seed=0, draws=3, concurrency=2)
        gain = next(g for g in pred["gains"] if g["baseline"] == "pass@4")
        widths[name] = gain["predictive_ci"][1] - gain["predictive_ci"][0]
        point = gain["diff"]
    assert widths["few"] > widths["many"], widths
    assert point == next(g for g in predict(few, tmp_path / "few", n=3, seed=0, draws=3)["gains"]
                         if g["baseline"] == "pass@4")["diff"]  # a rerun resumes every bench


@pytest.mark.parametrize("args", [["--predict", "--from", "vbvr:x"], ["--predict", "--predict-vgm", "sim:nope"],
                                  ["--predict", "--predict-draws", "-1"],
                                  ["--from", "vbvr:/no/such/dir"], ["--from", "genvire:x"]])
def test_bad_predict_or_from_arguments_are_one_line_and_exit_code_2(tmp_path, args):
    result = runner.invoke(app, ["calibrate", "--vlm", "sim", "--n", "4", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "calibration.json").exists()


# -- --from vbvr:DIR ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_footage(tmp_path_factory):
    """Sim tasks in VBVR-Bench's layout (the optimal solutions as ground truth), which the sim VLM can read."""
    from collabvr.bench.suites.vbvr import export_sim_suite

    root = tmp_path_factory.mktemp("simvbvr")
    export_sim_suite(root, spec="sim:maze/easy", n=4, size=128)
    return root


def test_footage_labels_are_deterministic_and_each_corruption_is_what_it_says(sim_footage):
    from collabvr.calibrate.footage import CORRUPTIONS, departure, footage_set
    from collabvr.media import Video

    a, b = footage_set(f"vbvr:{sim_footage}", 20, seed=1), footage_set(f"vbvr:{sim_footage}", 20, seed=1)
    assert [x.label for x in a] == [y.label for y in b]
    assert all(np.array_equal(x.video.frames, y.video.frames) for x, y in zip(a, b, strict=True))
    assert Counter(c.label.kind for c in a) == Counter(kind_mix(20, CORRUPTIONS))
    for clip in a:
        truth = Video.open(clip.task.meta["reference_video"]).frames
        frames, label = clip.video.frames, clip.label
        assert clip.instruction == clip.task.prompt and label.moves_done is None
        if label.kind == "good":
            assert np.array_equal(frames, truth) and label.first_bad_frame is None
        elif label.kind == "cut":
            assert len(frames) < len(truth) and np.array_equal(frames, truth[: len(frames)]) and label.good_fraction == 1.0
        elif label.kind == "freeze":
            assert len(frames) == len(truth) and (frames[-1] == frames[-2]).all() and label.first_bad_frame is None
        else:
            assert label.first_bad_frame == departure(frames, truth) is not None
            assert label.good_fraction == pytest.approx(label.first_bad_frame / len(frames), abs=1e-6)
        if label.kind == "reverse":
            assert np.array_equal(frames, truth[::-1])


def test_footage_verified_by_the_sim_vlm_locates_every_corruption_it_reads(tmp_path, sim_footage):
    report = calibrate(tmp_path, "--vlm", "sim", "--vlm-option", "false_accept=0", "--vlm-option", "false_reject=0",
                       "--vlm-option", "goal_only_verify=task", "--from", f"vbvr:{sim_footage}", "--n", "40")
    assert report["suite"] == f"vbvr:{sim_footage}" and report["plan"]["measured"] is False
    assert report["plan"]["frames"] == 0 and report["compute"]["vlm_calls"] == 40 and report["typed_failures"] == {}
    assert "plan | not measured" in (tmp_path / "calibration.md").read_text()
    by_kind = report["verify"]["by_kind"]
    assert by_kind["good"]["correct"]["rate"] == 1.0
    # the sim decoder agrees with every label of these: the first bad frame it reports is the labelled one
    for kind in ("reverse", "freeze", "cut", "splice"):
        assert by_kind[kind]["correct"]["rate"] == 1.0 and by_kind[kind]["located"]["rate"] == 1.0, (kind, by_kind[kind])
    for row in report["clips_detail"]:
        if row["outcome"] == "reject":
            assert row["good_fraction_said"] == pytest.approx(row["good_fraction"], abs=1e-6), row
    # by default (the published behaviour) a move-less instruction plans no move: every good clip moves off it
    default = calibrate(tmp_path / "default", "--vlm", "sim", "--vlm-option", "false_reject=0",
                        "--from", f"vbvr:{sim_footage}", "--n", "4")
    assert default["verify"]["false_reject"]["rate"] == 1.0


def test_footage_recovers_a_configured_false_reject_rate(tmp_path, sim_footage):
    report = calibrate(tmp_path, "--vlm", "sim", "--vlm-option", "false_reject=0.3", "--vlm-option", "goal_only_verify=task",
                       "--from", f"vbvr:{sim_footage}", "--n", "120", "--seed", "3")
    fr = report["verify"]["false_reject"]
    assert fr["n"] == 60 and fr["lo"] <= 0.3 <= fr["hi"], fr


def test_footage_the_sim_vlm_cannot_read_is_counted_as_typed_failures_apart(tmp_path):
    from tests.test_benchmarks import make_vbvr

    root = make_vbvr(tmp_path / "vbvr")
    report = calibrate(tmp_path / "out", "--vlm", "sim", "--from", f"vbvr:{root}", "--n", "10")
    verify = report["verify"]
    assert verify["failed"] == 10 and verify["false_accept"]["n"] == verify["false_reject"]["n"] == 0
    assert report["typed_failures"] == {"unsupported_task": 10}
    assert {r["kind"] for r in report["clips_detail"]} == {"good", "reverse", "freeze", "cut", "shuffle", "splice"}
    assert "typed failures | {'unsupported_task': 10}" in (tmp_path / "out" / "calibration.md").read_text()
