"""benchmarks/local_gpu.py's real-size code path, run end to end at toy width (``--smoke``), so the
script is known to work before a GPU runs it at real size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("diffusers")


def test_the_real_size_benchmark_runs_at_toy_width_and_prints_one_row_per_setting(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "local_gpu.py"
    spec = importlib.util.spec_from_file_location("local_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--scale", "wan", "--smoke", "--device", "cpu", "--episodes", "1", "--methods", "1",
                        "--resolutions", "720p", "--vlm-sizes", "tiny,7b"])
    assert [(r["resolution"], r["offload"], r["vlm"]) for r in rows] == [("720p (toy)", "none", "tiny"),
                                                                           ("720p (toy)", "none", "7b")]
    for row in rows:
        assert row["clips"] >= 1 and row["frames"] == 9 and row["s_per_clip"] > 0 and row["s_per_vlm_call"] > 0
        assert row["vgm_loads"] == 1 and row["vlm_loads"] == 1  # each model built once for the row's episodes
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| resolution | offload | vlm | clips | frames | s_per_clip") and len(table) == 2 + len(rows)
