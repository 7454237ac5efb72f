"""Kill a child process in exactly the state a test has read."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], *, within: float, every: float = 0.05) -> None:
    """SIGKILL ``proc`` once ``ready()`` holds, checking every ``every`` seconds for ``within`` seconds.

    ``ready()`` reads the process's files while the process is frozen (SIGSTOP), so the process dies in
    the state that was read: on a loaded machine it could otherwise run on between the read and the
    kill, and finish the episode (or the bench) the test meant to kill midway. The caller collects the
    process (``communicate``) and asserts on its return code.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        proc.send_signal(signal.SIGSTOP)
        try:
            if ready():
                proc.send_signal(signal.SIGKILL)
                return
        except BaseException:
            proc.send_signal(signal.SIGKILL)  # never leave a frozen process behind
            raise
        proc.send_signal(signal.SIGCONT)
        time.sleep(every)
