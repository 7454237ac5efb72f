"""The README's Python example runs, as written, the episode of the command line it names, and the
README says what each command it shows needs installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from collabvr.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_example() -> str:
    """The README's first Python block, up to the user-task part (which needs an image on disk)."""
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    return block.split("\n# your own task", 1)[0]


def test_the_readme_python_example_runs_the_episode_of_the_cli_command_it_names(tmp_path):
    code = python_example()
    assert 'Task.sim("maze/hard", seed=7)' in code and "collabvr run --task sim:maze/hard --seed 7" in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    cli = CliRunner().invoke(app, ["run", "--task", "sim:maze/hard", "--seed", "7", "--out", str(tmp_path / "cli"), "--quiet"])
    assert cli.exit_code == 0, cli.output
    library, command = (json.loads((tmp_path / d / "trace.json").read_text()) for d in ("runs/maze7", "cli"))

    def episode(trace: dict) -> tuple:
        attempts = [(a["step"], a["index"], a["prompt"], a["seed"], a["status"]) for a in trace["attempts"]]
        return trace["status"], trace["compute"]["vgm_calls"], trace["compute"]["vlm_calls"], attempts

    assert episode(library) == episode(command)
    assert library["context"]["seed"] == command["context"]["seed"] == 7


def test_the_readme_names_the_extra_that_collabvr_report_needs_before_using_it():
    bench_block = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if "collabvr report" in b)
    install = bench_block.index('pip install -e ".[report]"')
    assert install < bench_block.index("collabvr report")
