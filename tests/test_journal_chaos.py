"""Damaged copies of a journal, seeded: every read path works or raises JournalError.

Runs ``benchmarks/chaos_journal.py`` (see its docstring) with a few seeded
cases in a child process, so a hang is bounded (the script exits when one
case takes too long) rather than stalling the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "chaos_journal.py"


@pytest.mark.parametrize("seed", [1, 2])
def test_damaged_copies_of_a_journal_read_or_raise_journal_error(seed: int) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cases", "40", "--seed", str(seed), "--timeout", "15"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert ", 0 failures" in result.stdout, result.stdout
