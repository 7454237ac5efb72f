"""What the ``collabvr`` command does with a failure a user can fix, and with Ctrl-C.

Every command runs inside :class:`Guarded`, the command group, so this is decided once, here, and
not in a try/except per command:

* a mistake (:class:`~collabvr.errors.BadInput`, a bad option value or an out-of-range number, an
  output path that cannot be written, a damaged checkpoint file, a server that does not answer)
  prints one line, ``error: <what> ; <the fix>``, and exits 2, with no traceback;
* Ctrl-C prints how to resume (the command a command registered with :func:`working_in`) and exits 130.

Anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from collabvr.errors import BadInput, redact
from collabvr.rundir import CHECKPOINTS
from collabvr.status import EXIT_BAD_INPUT

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

errors = Console(stderr=True)


@dataclass(frozen=True)
class Work:
    """Where a long-running command writes, and how a user picks it up again."""

    directory: Path
    # the command that resumes it ("": the same command again), asked when needed: a run directory
    # may not hold anything to resume yet
    resume: Callable[[], str]
    kept: str = ""  # what is safe whatever happens, e.g. "the finished episodes in DIR/results.jsonl"

    def again(self) -> str:
        command = self.resume()
        return f"`{command}`" if command else "the same command again"


_work: ContextVar[Work | None] = ContextVar("collabvr_work", default=None)  # the running command's


def working_in(directory: Path, resume: str | Callable[[], str] = "", *, kept: str = "") -> None:
    """Tell the guard where the running command writes and how to resume it (default: the same
    command again); the Ctrl-C line and the damaged-checkpoint line say so."""
    _work.set(Work(Path(directory), resume if callable(resume) else lambda: resume, kept))


def fail(message: str) -> NoReturn:
    """One line on stderr, redacted, never wrapped; exit 2."""
    errors.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def writable(directory: Path) -> None:
    """Make ``directory`` and write a file in it, or raise the OSError (one line, through the guard):
    for a command that writes only at the end of long work."""
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / ".collabvr-write-probe"
    probe.write_bytes(b"")
    probe.unlink()


class Guarded(TyperGroup):
    """The command group: runs the command and turns what a user can fix into one line (see the module)."""

    def invoke(self, ctx: Any) -> Any:
        started = _work.set(None)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            errors.print(interrupted(_work.get()), highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except typer.TyperException as exc:  # a bad option or value, found while parsing: nothing has run
            command = getattr(getattr(exc, "ctx", None), "command_path", None) or ctx.command_path
            fail(f"{exc.format_message()} (see {command} --help)")
        except Exception as exc:
            line = explain(exc, _work.get())
            if line is None:
                raise
            fail(line)
        finally:
            _work.reset(started)


def interrupted(work: Work | None) -> str:
    if work is None:
        return "interrupted"
    kept = f" ({work.kept} are kept)" if work.kept else ""
    return f"interrupted; run {work.again()} to resume{kept}"


def explain(exc: BaseException, work: Work | None) -> str | None:
    """The one line for a failure a user can fix, or None for a bug."""
    if isinstance(exc, BadInput):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return _damaged(exc, work)
    if isinstance(exc, ConnectionError):  # before OSError: a ConnectionError is one
        return f"{_first_line(exc)}; check the address and that the server is running (a Ray head: ray start --head)"
    if isinstance(exc, OSError) and exc.errno != errno.EPIPE:
        return _os_line(exc)
    if isinstance(exc, OverflowError):
        return f"a number is out of range ({exc}); give a smaller value"
    return None


def _damaged(exc: sqlite3.DatabaseError, work: Work | None) -> str:
    if work is None:
        return f"a checkpoint database cannot be read ({exc}): move it aside and run the same command again"
    path = work.directory / CHECKPOINTS
    kept = f"; {work.kept} are intact" if work.kept else ""
    return (f"the checkpoint file {path} is damaged ({exc}): move it aside (mv {path} {path}.damaged) and run "
            f"{work.again()}; what it checkpointed starts over{kept}")


# the fix for each kind of file-system failure
_FIXES = {
    errno.EACCES: "choose a place you can write to, or change its permissions",
    errno.EPERM: "choose a place you can write to, or change its permissions",
    errno.EROFS: "the file system is read-only: choose a place on another one",
    errno.EEXIST: "a file stands where a directory belongs: give a directory (or move the file)",
    errno.ENOTDIR: "a file stands where a directory belongs: give a directory (or move the file)",
    errno.EISDIR: "a directory stands where a file belongs: give a file",
    errno.ENOENT: "check the path",
    errno.ENOSPC: "the disk is full: free some space and run the same command again to resume",
    errno.EDQUOT: "the disk quota is spent: free some space and run the same command again to resume",
    errno.EMFILE: "too many open files: lower --concurrency or raise the limit (ulimit -n)",
    errno.ENAMETOOLONG: "give a shorter path",
}


def _os_line(exc: OSError) -> str:
    what = f"cannot use {exc.filename}" if exc.filename else "a file operation failed"
    reason = exc.strerror or type(exc).__name__
    return f"{what}: {reason}; {_FIXES.get(exc.errno or 0, 'check the path and its permissions')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
