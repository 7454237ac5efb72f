"""Reports: the benchmark report folder and the per-episode timeline page."""

from __future__ import annotations

import json
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from collabvr.bench.config import BenchConfig
from collabvr.bench.runner import run_bench
from collabvr.cli import app
from collabvr.rundir import write_timeline
from collabvr.runner import run
from collabvr.task import Task

FAST = {"first_clip_seconds": 2.0, "clip_seconds": 1.0}


class Links(HTMLParser):
    """Every href and src of a page; fails on markup the parser rejects."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("href", "src") and v is not None]


def links_of(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    parser.close()
    assert "html" in parser.tags and "body" in parser.tags
    return parser.links


def assert_links_resolve_inside(page: Path, root: Path) -> list[Path]:
    """Every link of ``page`` is relative and names an existing file inside ``root``."""
    targets = []
    for link in links_of(page):
        url = urlparse(link)
        assert not url.scheme and not url.netloc and not link.startswith("/"), f"{page}: absolute link {link!r}"
        target = (page.parent / unquote(url.path)).resolve()
        assert target.is_file(), f"{page}: {link!r} does not resolve"
        assert target.is_relative_to(root.resolve()), f"{page}: {link!r} leaves {root}"
        targets.append(target)
    return targets


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    run_bench(BenchConfig(out=out, suite="sim:tiles/easy", n=2, concurrency=2, context=FAST))
    return out


def test_report_folder_is_self_contained_with_valid_html_links_and_pngs(bench_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", str(bench_dir)])
    assert result.exit_code == 0, result.output
    # moved away from the benchmark directory, the folder still holds everything it links
    report = shutil.copytree(bench_dir / "report", tmp_path / "moved")
    index = report / "index.html"
    targets = assert_links_resolve_inside(index, report)
    timelines = [t for t in targets if t.name == "episode.html"]
    assert len(timelines) == 2
    assert sum(t.name == "final.mp4" for t in targets) == 2
    assert sum(t.name == "contact_sheet.png" for t in targets) == 2
    for page in timelines:
        media = assert_links_resolve_inside(page, page.parent)
        assert any(t.parent.name == "clips" for t in media)
        assert "<video controls" in page.read_text()
    pngs = [t for t in targets if t.suffix == ".png" and t.parent == report]
    assert {p.name for p in pngs} == {"score_vs_compute.png", "score_by_difficulty.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with PILImage.open(png) as im:
            im.verify()
    assert "tiles" in index.read_text() and "score [95% CI]" in index.read_text()


def test_bench_writes_markdown_and_json_summaries(bench_dir):
    summary = json.loads((bench_dir / "summary.json").read_text())
    (cell,) = summary["cells"]
    assert cell["n"] == 2 and cell["ci"][0] <= cell["mean_score"] <= cell["ci"][1]
    assert summary["config"]["seeds"] == [0, 1]
    assert "| collabvr | tiles | easy | 2 |" in (bench_dir / "results.md").read_text()


def test_collabvr_run_writes_the_timeline_page_with_relative_links(tmp_path):
    out = tmp_path / "run"
    run(Task.sim("maze/easy", seed=0, size=128), out_dir=str(out), **FAST)
    page = out / "episode.html"
    targets = assert_links_resolve_inside(page, out)
    trace = json.loads((out / "trace.json").read_text())
    clips = {str(t.relative_to(out.resolve())) for t in targets if t.parent.name == "clips"}
    assert clips == set(trace["files"]["clips"])
    assert escape(trace["attempts"][0]["prompt"]) in page.read_text()


def test_timeline_escapes_every_text_from_the_trace(tmp_path):
    evil = '<script>alert("x")</script>'
    trace = {
        "task": {"id": evil, "prompt": evil}, "status": "complete", "reason": evil, "score": None,
        "compute": {}, "wall_s": 1.0,
        "steps": [{"step": 0, "attempts": 1, "plan": {"instruction": evil, "observation": evil}}],
        "attempts": [{"step": 0, "index": 0, "status": evil, "prompt": evil, "verdict": {"accept": False, "reason": evil}}],
        "repairs": [{"step": 0, "after_attempt": 0, "strategy": evil, "prompt": evil}],
    }
    (tmp_path / "trace.json").write_text(json.dumps(trace))
    page = write_timeline(tmp_path).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert links_of(tmp_path / "episode.html") == []  # no clip files exist, so none is linked


def test_the_html_report_shows_the_paired_differences_with_verdicts_and_says_when_a_bench_is_partial(tmp_path):
    from collabvr.bench.report import write_report
    from collabvr.bench.runner import write_summary

    config = BenchConfig(out=tmp_path / "b", suite="sim:maze/easy", methods=["single", "collabvr"], n=2, concurrency=2,
                         context=FAST, cache=False)
    run_bench(config)
    html = write_report(config.out).read_text()
    assert "Partial bench" not in html
    (pair,) = [p for p in json.loads((config.out / "summary.json").read_text())["paired"] if p["difficulty"] == "all"]
    assert "<h2>Paired differences</h2>" in html and "(family, difficulty, seed)" in html
    row = (f"<td>single</td><td>all</td><td>{pair['n']}</td><td>{pair['mean_a']:.3f}</td><td>{pair['mean_b']:.3f}</td>"
           f"<td>{pair['diff']:+.3f} [{pair['ci'][0]:+.3f}, {pair['ci'][1]:+.3f}]</td>"
           f"<td>{pair['wins']} / {pair['losses']} / {pair['ties']}</td><td>{pair['verdict']}</td>")
    assert row in html  # the same pairs and verdict as results.md, recomputed from results.jsonl
    bigger = BenchConfig(**{**config.__dict__, "n": 3})  # the run as if killed before seed 2: 4 of 6 episodes
    write_summary(bigger)
    assert "**Partial bench:** 4 of 6 planned episodes finished" in (config.out / "results.md").read_text()
    assert "<strong>Partial bench:</strong> 4 of 6 planned episodes finished" in write_report(config.out).read_text()
