"""benchmarks/sweep.py: the gain per grid cell with its verdict, Holm-adjusted over the grid, stored and recomputed."""

from __future__ import annotations

from benchmarks.sweep import main


def test_a_stored_sweep_recomputes_the_same_table_with_its_adjusted_verdicts(tmp_path):
    args = ["--drift-growth", "0,0.06", "--false-accept", "0", "--suite", "sim:maze/easy", "--n", "1", "--budget", "48",
            "--concurrency", "2"]
    cells = main([*args, "--out", str(tmp_path / "run")])
    assert [c["verdict"] for c in cells] == ["too few pairs", "too few pairs"]  # one pair per cell
    assert all(c["p_holm"] >= c["p"] for c in cells)
    again = main([*args, "--from", str(tmp_path / "run" / "results.jsonl.gz"), "--out", str(tmp_path / "again")])
    assert [c["gain"] for c in again] == [c["gain"] for c in cells]
    table = (tmp_path / "again" / "gain.md").read_text()
    assert "p (raw / Holm over 2)" in table and (tmp_path / "run" / "gain.md").read_text().splitlines()[4:] == table.splitlines()[4:]
