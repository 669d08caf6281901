"""Real child processes for the crash tests: start a program, wait for its marker, SIGKILL it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).parent / "programs"


def spawn(program: str, *args: object) -> subprocess.Popen[str]:
    """Start ``tests/programs/<program>`` with ``args``, its output piped as text."""
    return subprocess.Popen(
        [sys.executable, str(PROGRAMS / program), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(proc: subprocess.Popen[str], marker: str) -> None:
    """Wait for the child's next line and check it is ``marker`` (else show its stderr)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == marker, proc.stderr.read() if proc.stderr else line


def sigkill(proc: subprocess.Popen[str]) -> int:
    """Kill the child with SIGKILL, reap it, close its pipes; return its exit status.

    The status is ``-SIGKILL`` unless the child had already exited by itself.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    return proc.returncode
