"""``--help`` works for every command and subcommand, and says what the command accepts."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from collabvr.cli import app

runner = CliRunner()


def command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as the words a user types after ``collabvr``."""
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += command_paths(sub, (*path, name))
    return found


PATHS = command_paths(typer.main.get_command(app))


def test_the_walk_finds_every_command():
    names = {path[0] for path in PATHS if path}
    assert {"run", "bench", "report", "graph", "export", "export-suite", "score", "calibrate"} <= names, names


def test_help_of_every_command_and_subcommand_renders():
    for path in PATHS:
        result = runner.invoke(app, [*path, "--help"], prog_name="collabvr", env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), (path, repr(result.exception))
        assert "Usage: collabvr" in result.output, (path, result.output)


def test_help_shows_bracketed_forms_as_written():
    """Rich markup must not eat ``[...]``: the calibrate --from form crashed the help, others vanished."""
    calibrate = runner.invoke(app, ["calibrate", "--help"], env={"COLUMNS": "200"}).output
    assert "vbvr:DIR[:SPLIT[/TASK]]" in calibrate
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"}).output
    assert "vbvr:DIR[:SPLIT[/TASK]]" in bench and "genvire:DIR[:CATEGORY[/SUBTASK]]" in bench
