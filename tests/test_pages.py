"""The pages a run and a benchmark leave read right: the episode page of a whole-video method, a split
step's plans, contact-sheet captions that stay on the sheet, plot legends that cover nothing and
say which way is better."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from typer.testing import CliRunner

from collabvr.bench.report import plot_score_by_difficulty
from collabvr.bench.stats import summarize
from collabvr.cli import app
from collabvr.media import Image, contact_sheet

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def saved_figures(monkeypatch) -> list[Figure]:
    """Every matplotlib figure saved while the test runs (saved as usual, and kept to look at)."""
    saved: list[Figure] = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def _run(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", *args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_a_pass_at_k_page_shows_the_selected_candidate_as_good_and_no_step_not_accepted(tmp_path):
    out = _run(tmp_path, "--task", "sim:maze/hard", "--seed", "7", "--method", "pass@4")
    page = (out / "episode.html").read_text()
    assert "not accepted" not in page
    assert re.search(r'<span class="ok">selected</span>', page) and 'class="bad">selected' not in page
    assert page.count('<span class="muted">not_selected</span>') == 3
    assert "best-looking candidate" in page  # the selector's reason is on the page


def test_a_pass_at_k_contact_sheet_shows_every_candidate(tmp_path):
    out = _run(tmp_path, "--task", "sim:maze/hard", "--seed", "7", "--method", "pass@4")
    sheet = np.asarray(PILImage.open(out / "contact_sheet.png").convert("RGB"))
    assert sheet.shape[0] == 4 * 192  # one row per candidate
    thumbs = sheet[:, : 2 * 192]
    assert (thumbs < 200).any(axis=2).mean() > 0.2  # frames, not a blank sheet


def test_a_split_step_says_which_plan_its_first_attempts_used(tmp_path):
    out = _run(tmp_path, "--task", "sim:maze/hard", "--seed", "10", "--vgm", "sim:weak")
    trace = json.loads((out / "trace.json").read_text())
    split = next(r for r in trace["repairs"] if r["strategy"] == "action_splitting")
    page = (out / "episode.html").read_text()
    step = page.split(f"<h2>Step {split['step'] + 1}:", 1)[1].split("<h2>", 1)[0]
    assert (f"Attempt 1 used the plan <q>{split['from']}</q>; the action was then split, and from attempt 2 on "
            f"the step used this plan:") in step
    assert split["to"] in step.split("</p>", 1)[1]  # the table below is the split plan


def test_contact_sheet_captions_are_wrapped_inside_the_sheet():
    frame = Image(np.full((64, 64, 3), 90, np.uint8))
    caption = "step 1: rejected x3\n" + "frame 19: the world moved off the plan (wanted: right) " * 6
    sheet = contact_sheet([(frame, frame, caption)], thumb=192).array
    assert (sheet[:, -12:] > 240).all()  # nothing drawn at the right edge: the text wrapped before it
    caption_area = sheet[:, 2 * 192:]
    rows_with_text = np.flatnonzero((caption_area < 200).any(axis=(1, 2)))
    assert rows_with_text.max() - rows_with_text.min() > 40  # on several lines


def test_the_difficulty_plot_legend_covers_no_bar(tmp_path, saved_figures):
    """Six methods that score high everywhere: no corner of the axes is free for a legend inside them."""
    methods = ["single", "pass@4", "collabvr", "upfront_plan", "posthoc_critique", "prompt_opt"]
    results = [{"method": m, "family": "maze", "difficulty": d, "seed": seed, "score": 0.9 + 0.02 * (seed % 5),
                "solved": True, "status": "complete", "compute": {"clip_seconds": 12.0}, "cost": 0.0}
               for m in methods for d in ("easy", "medium", "hard") for seed in range(5)]
    plot_score_by_difficulty(summarize(results), tmp_path / "by_difficulty.png")
    (figure,) = saved_figures
    renderer = FigureCanvasAgg(figure).get_renderer()
    (ax,) = figure.axes
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [patch.get_window_extent(renderer) for patch in ax.patches]
    assert len(bars) >= 15
    assert not any(legend.overlaps(bar) for bar in bars)


def test_the_calibration_plot_tells_error_rates_from_rates_of_getting_it_right(tmp_path, saved_figures):
    result = runner.invoke(app, ["calibrate", "--vlm", "sim:noisy", "--n", "8", "--out", str(tmp_path / "cal")])
    assert result.exit_code == 0, result.output
    (figure,) = saved_figures
    texts = [t.get_text() for legend in [*figure.legends, *(a.get_legend() for a in figure.axes)] if legend for t in legend.get_texts()]
    assert any("lower is better" in t for t in texts) and any("higher is better" in t for t in texts), texts
    (ax,) = figure.axes
    colours = {label.get_text(): patch.get_facecolor() for label, patch in zip(ax.get_yticklabels(), ax.patches, strict=True)}
    assert colours["false accept"] == colours["false reject"] == colours["wrong completion"]
    assert colours["plan legal"] == colours["correct: good"] != colours["false accept"]
