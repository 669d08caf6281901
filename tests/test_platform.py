"""Where actorflow runs: Linux and macOS; elsewhere it imports, and only writing a SQLite
journal fails, with a one-sentence error (simulated here by hiding POSIX-only modules)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Modules Windows lacks: hidden, `import` of them raises ImportError.
HIDE = (
    "import sys\n"
    "for m in ('fcntl', 'termios', 'pty', 'resource', 'grp', 'pwd', 'tty'):\n"
    "    sys.modules[m] = None\n"
)


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE + textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_actorflow_does_not_import_fcntl(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, actorflow; print('fcntl' in sys.modules)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, "False\n"), proc.stderr


def test_without_posix_modules_it_imports_and_only_a_writing_journal_fails(
    tmp_path: Path,
) -> None:
    # A journal written here (with fcntl), read there.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import anyio, actorflow as af\n"
            "async def main():\n"
            "    async with af.Runtime('runs.db'): pass\n"
            "anyio.run(main)",
        ],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    proc = run(
        """
        import anyio
        import actorflow as af
        import actorflow.testing, actorflow.web

        async def main():
            async with af.Runtime() as rt:  # in memory: fine
                print("memory", len(await rt.list_runs()))
            async with af.Runtime(af.SQLiteJournal("runs.db", readonly=True)) as rt:
                print("readonly", len(await rt.list_runs()))
            try:
                async with af.Runtime("runs.db"):
                    pass
            except af.JournalError as exc:
                print("writing:", exc)

        anyio.run(main)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["memory 0", "readonly 0"]
    assert lines[2].startswith("writing: cannot open ")
    assert "needs POSIX file locks (fcntl)" in lines[2]
    assert "Linux or macOS" in lines[2]
