"""The bench knows its memory before it runs out: an estimate per episode from the suite's frame size and
the clip lengths, fewer episodes at once (or exit 2 under --strict-memory) when they cannot fit, and
the estimate and the measured peak in summary.json."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collabvr.backends import reference, registry
from collabvr.bench import memory
from collabvr.bench.config import BenchConfig
from collabvr.bench.runner import run_bench
from collabvr.cli import app
from collabvr.context import Context
from collabvr.media import Image, Video
from tests.fakes import FakeGoogle

TASK = "O-47_sliding_puzzle_data-generator"


def vbvr_suite(root: Path, *, size: int, samples: int = 2) -> Path:
    """A VBVR-Bench layout whose frames are ``size`` x ``size`` (flat PNGs, so the files stay small)."""
    entries = []
    for s in range(samples):
        rel = Path("In-Domain_50") / TASK / f"{s:05d}"
        (root / rel).mkdir(parents=True)
        first = Image(np.full((size, size, 3), 40 + s, np.uint8)).to_png()
        (root / rel / "first_frame.png").write_bytes(first)
        (root / rel / "final_frame.png").write_bytes(Image(np.full((size, size, 3), 200, np.uint8)).to_png())
        (root / rel / "ground_truth.mp4").write_bytes(Video(frames=np.full((4, 32, 32, 3), 90, np.uint8), fps=8).mp4)
        (root / rel / "prompt.txt").write_text("slide the tiles\n")
        entries.append({"id": f"{TASK}_{s:05d}", "prompt": "slide the tiles",
                        "first_image": base64.b64encode(first).decode(), "first_frame_path": str(rel / "first_frame.png"),
                        "final_frame_path": str(rel / "final_frame.png"), "prompt_path": str(rel / "prompt.txt"),
                        "ground_truth_video_path": str(rel / "ground_truth.mp4")})
    (root / "VBVR-Bench.json").write_text(json.dumps(entries))
    return root


@pytest.fixture
def gemini():
    with FakeGoogle() as server:
        yield ["--vlm", "gemini:gemini-2.5-pro", "--vlm-option", "api_key=test-google-key-000",
               "--vlm-option", f"base_url={server.url}"]


def test_a_1024_suite_whose_episodes_cannot_fit_is_refused_under_strict_memory_in_one_line(gemini, tmp_path):
    # 126-s clips at 1024x1024 are 6.3 GB each; a thousand at once fit on no machine
    suite = vbvr_suite(tmp_path / "vbvr", size=1024)
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--suite", f"vbvr:{suite}", "--methods", "single", "--vgm", "still", *gemini,
                                      "--first-seconds", "120", "--concurrency", "1000", "--strict-memory", "--out",
                                      str(out), "--yes", "--quiet"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --strict-memory: 1000 episode(s) at once need about"), lines
    assert "2016 frames at 1024x1024" in lines[0] and ("lower --concurrency to" in lines[0] or "shorter clips" in lines[0])
    assert not (out / "results.jsonl").exists()


class InFlight:
    """The ``still`` VGM, slowed down, counting the generations running at once."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def factory(self, role: str, model: str, options: dict) -> object:
        still = reference.make_still(role, model, options)
        if still is None:
            return None
        watch = self

        class Watched:
            name = model = "still"

            def generate(self, *args, **kwargs) -> Video:
                with watch.lock:
                    watch.now += 1
                    watch.most = max(watch.most, watch.now)
                time.sleep(0.3)
                try:
                    return still.generate(*args, **kwargs)
                finally:
                    with watch.lock:
                        watch.now -= 1

        return Watched()


def test_a_1024_suite_that_does_not_fit_runs_fewer_episodes_at_once_and_says_so(gemini, monkeypatch, tmp_path):
    suite = vbvr_suite(tmp_path / "vbvr", size=1024, samples=3)
    per_episode = 2 * 16 * 1024 * 1024 * 3  # two copies of a 1-s clip at 16 fps
    monkeypatch.setattr(memory, "available_bytes", lambda: int(1.5 * per_episode))  # room for one episode
    watch = InFlight()
    out = tmp_path / "bench"
    with registry.overriding({"still": watch.factory}):
        result = CliRunner().invoke(app, ["bench", "--suite", f"vbvr:{suite}", "--methods", "single", "--vgm", "still",
                                          *gemini, "--first-seconds", "1", "--max-steps", "1", "--concurrency", "8",
                                          "--out", str(out), "--yes", "--quiet"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("memory:")]
    assert len(warned) == 1 and "8 episode(s) at once need about 805 MB (101 MB each" in warned[0]
    assert "running 1 at once" in warned[0]
    assert watch.most == 1  # what the runner did, not only what it said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["episodes"] == 3 and summary["totals"]["errors"] == 0
    used = summary["memory"]
    assert (used["concurrency_requested"], used["concurrency"], used["estimate_per_episode_bytes"]) == (8, 1, per_episode)
    assert used["frame"] == [1024, 1024] and used["clip_frames"] == 16 and used["peak_rss_bytes"] > 0


def test_the_sim_suite_fits_without_a_warning_and_records_its_estimate_and_peak(tmp_path):
    warnings: list[str] = []
    run_bench(BenchConfig(out=tmp_path / "sim", suite="sim:maze/easy", n=2, concurrency=8, cache=False,
                          context={"max_steps": 2}), on_warning=warnings.append)
    assert warnings == []
    used = json.loads((tmp_path / "sim" / "summary.json").read_text())["memory"]
    assert used["estimate_per_episode_bytes"] == 2 * 96 * 128 * 128 * 3  # two copies of a 6-s clip at 128 px
    assert used["concurrency"] == used["concurrency_requested"] == 8 and used["checked"]
    assert used["available_bytes"] > 8 * used["estimate_per_episode_bytes"] and used["peak_rss_bytes"] > 0


@pytest.mark.parametrize("method,seconds,at_once", [("collabvr", 6.0, 1), ("upfront_plan", 6.0, 1), ("single", 12.0, 1),
                                                    ("pass@4", 12.0, 4), ("prompt_opt", 12.0, 2),
                                                    ("posthoc_critique", 12.0, 1)])
def test_the_longest_clip_is_a_step_for_stepwise_methods_and_the_horizon_for_the_others(method, seconds, at_once):
    assert memory.longest_clip(method, Context()) == (seconds, at_once)


def test_memory_available_is_read_on_linux():
    available = memory.available_bytes()
    assert available is None or available > 0
    if Path("/proc/meminfo").exists():
        assert available is not None
