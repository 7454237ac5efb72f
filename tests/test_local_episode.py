"""Whole episodes on the local backends, loaded the way users load them: ``collabvr run`` and
``collabvr bench`` with ``diffusers:DIR`` and ``transformers:DIR`` specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("xgrammar")

from typer.testing import CliRunner  # noqa: E402

from collabvr.backends import registry  # noqa: E402
from collabvr.backends.local import runtime  # noqa: E402
from collabvr.cli import app  # noqa: E402
from collabvr.media import Image  # noqa: E402
from collabvr.status import EXIT_INCOMPLETE
from tests.tiny_models import checkpoint  # noqa: E402

VGM_OPTIONS = ["max_area=1024", "num_inference_steps=2", "max_sequence_length=16"]
VLM_OPTIONS = ["max_string_chars=8", "max_new_tokens=96", "frames_per_clip=2"]


def _first_frame(tmp_path: Path) -> Path:
    path = tmp_path / "first.png"
    path.write_bytes(Image(np.full((48, 64, 3), 128, np.uint8)).to_png())
    return path


def _run_args(tmp_path: Path, out: Path, *, constrained: bool) -> list[str]:
    args = ["run", "--image", str(_first_frame(tmp_path)), "--prompt", "slide the red block onto the goal",
            "--vgm", f"diffusers:{checkpoint('wan22_a14b')}", "--vlm", f"transformers:{checkpoint('llava')}",
            "--max-steps", "1", "--max-attempts", "2", "--first-seconds", "0.5", "--fps", "16", "--out", str(out)]
    for option in VGM_OPTIONS:
        args += ["--vgm-option", option]
    for option in VLM_OPTIONS + [f"constrained={str(constrained).lower()}"]:
        args += ["--vlm-option", option]
    return args


def test_collabvr_run_with_constrained_decoding_walks_plan_generate_verify_repair(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "collabvr.cli", *_run_args(tmp_path, out, constrained=True)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == EXIT_INCOMPLETE, proc.stderr[-3000:]  # the episode runs, and ends without completing
    trace = json.loads((out / "trace.json").read_text())
    attempts, repairs = trace["attempts"], trace["repairs"]
    # the tiny model says "false" (see tests/tiny_models.py): not done, then reject, so the loop repairs
    assert [a["status"] for a in attempts] == ["rejected", "rejected"]
    assert all((a.get("generated") or a["clip"])["frames"] == 9 and a["verdict"]["accept"] is False for a in attempts)
    assert all(a["render"]["frames_requested"] == 8 and a["render"]["frames"] == 9 for a in attempts)  # recorded as rendered
    assert len(repairs) == 1 and repairs[0]["strategy"] in {"partial_regeneration", "prompt_evolution", "action_splitting"}
    assert trace["status"] == "attempts_exhausted"
    compute = trace["compute"]
    assert compute["vgm_calls"] == 2 and compute["vlm_calls"] == 3  # plan, verify, verify
    assert compute["input_tokens"] > 100 and compute["output_tokens"] > 10  # token counts, as for the API backends
    assert (out / "final.mp4").exists() or trace["final"] is None


def test_collabvr_run_without_constraints_records_the_typed_failure_and_accepts_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _run_args(tmp_path, out, constrained=False))
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    trace = json.loads((out / "trace.json").read_text())
    assert trace["attempts"] and {a["status"] for a in trace["attempts"]} == {"plan_failed"}
    assert {a["error"]["kind"] for a in trace["attempts"]} == {"invalid_output"}
    assert not trace["steps"] and trace["compute"].get("vgm_calls", 0) == 0


def test_a_bad_local_spec_is_one_line_and_exit_2_before_any_model_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.close_all()
    for vgm, needle in [("diffusers:/no/such/checkpoint", "no such checkpoint directory"),
                        ("diffusers:nobody-here/no-such-model", "nor a hub checkpoint in the Hugging Face cache"),
                        (f"diffusers:{checkpoint('llava')}", "has no model_index.json")]:
        result = CliRunner().invoke(app, ["run", "--image", str(_first_frame(tmp_path)), "--prompt", "p",
                                          "--vlm", f"transformers:{checkpoint('llava')}", "--vgm", vgm,
                                          "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) <= 2
    assert not any(runtime.is_loaded(k) for k in list(runtime.loads))
    assert not (tmp_path / "bad" / "trace.json").exists()


def test_across_episodes_and_two_methods_each_model_is_built_once_and_the_bench_frees_them(tmp_path, monkeypatch):
    import diffusers
    import transformers

    from collabvr.bench.runner import BenchConfig, run_bench

    registry.close_all()
    calls: Counter[str] = Counter()
    for owner, name in ((diffusers, "WanImageToVideoPipeline"), (transformers, "AutoModelForImageTextToText")):
        cls = getattr(owner, name)
        original = cls.from_pretrained

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", counted)
    vgm_options = dict(o.split("=") for o in VGM_OPTIONS)
    vlm_options = {**dict(o.split("=") for o in VLM_OPTIONS), "constrained": True}
    config = BenchConfig(
        out=tmp_path / "bench", suite="sim:maze/easy", methods=["collabvr", "pass@2"], n=2, concurrency=2,
        vgm=f"diffusers:{checkpoint('wan22_a14b')}", vlm=f"transformers:{checkpoint('llava')}",
        vgm_options=vgm_options, vlm_options=vlm_options, cache=False,
        context={"max_steps": 1, "max_attempts": 1, "first_clip_seconds": 0.5},
    )
    cells = run_bench(config)
    results = [json.loads(line) for line in (tmp_path / "bench" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 4 and {r["method"] for r in results} == {"collabvr", "pass@2"}
    assert all(r["status"] != "error" for r in results), [r.get("reason") for r in results]
    assert sum(r["compute"]["vgm_calls"] for r in results) >= 6 and cells
    assert calls == {"WanImageToVideoPipeline": 1, "AutoModelForImageTextToText": 1}
    assert not any(runtime.is_loaded(k) for k in list(runtime.loads))  # closed at the end of the bench


def test_a_model_that_fails_to_load_ends_the_episode_with_one_typed_failure_and_one_load(tmp_path, monkeypatch):
    import shutil

    from diffusers import CogVideoXImageToVideoPipeline

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint("cogvideox"), broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.write_bytes(b"truncated download")  # the configs are intact, so the preflight passes
    loads = []
    original = CogVideoXImageToVideoPipeline.from_pretrained.__func__
    monkeypatch.setattr(CogVideoXImageToVideoPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: (loads.append(1), original(cls, *a, **k))[1]))
    registry.close_all()
    out = tmp_path / "run"
    args = _run_args(tmp_path, out, constrained=True)
    args[args.index("--vgm") + 1] = f"diffusers:{broken}"
    args[args.index("--max-attempts") + 1] = "3"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    trace = json.loads((out / "trace.json").read_text())
    assert trace["status"] == "load_failed" and "cannot load CogVideoXImageToVideoPipeline" in trace["reason"]
    assert [(a["status"], a["error"]["kind"]) for a in trace["attempts"]] == [("generation_failed", "load_failed")]
    assert len(loads) == 1  # not one reload per attempt
    registry.close_all()


def test_a_qwen_vl_vlm_without_torchvision_is_one_line_with_the_install_and_exit_2(tmp_path):
    """Where torchvision imports the processor builds and the preflight passes; in CI it does not."""
    try:
        import torchvision  # noqa: F401
        has_torchvision = True
    except Exception:  # noqa: BLE001 - CI: torchvision does not import beside the CPU torch
        has_torchvision = False
    registry.close_all()
    result = CliRunner().invoke(app, ["run", "--image", str(_first_frame(tmp_path)), "--prompt", "p",
                                      "--vlm", f"transformers:{checkpoint('qwen25_vl')}", "--vgm", "still",
                                      "--max-steps", "1", "--max-attempts", "1", "--vlm-option", "max_new_tokens=4",
                                      "--out", str(tmp_path / "run")])
    if has_torchvision:
        assert result.exit_code != 2, result.output
        return
    assert result.exit_code == 2, result.output
    assert "its processor needs torchvision" in result.output and "pip install 'torchvision==0." in result.output
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert not (tmp_path / "run" / "trace.json").exists()
