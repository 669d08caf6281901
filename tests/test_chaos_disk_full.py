"""A journal on a disk that fills up: a clear JournalError, nothing committed lost, a clean resume.

Bounded chaos on a real, tiny file system: a tmpfs of 64 MiB mounted for the
test (it needs root, as CI has; elsewhere it is skipped, with the reason).
A run writes more than fits; the journal fails with ``af.JournalError`` (no
other exception); once space is freed, a new runtime reads every committed
entry, contiguous, and resumes the run to its end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import actorflow as af

ENTRIES = 4000
VALUE = "x" * 1000


@af.step(retries=3)
async def dk_fill(ctx: af.StepContext, n: int) -> int:
    start = ctx.checkpoint or 0
    for i in range(start, n):
        await ctx.write_stream("data", VALUE)
        if i % 100 == 99:
            await ctx.save_checkpoint(i + 1)
    return n


@af.workflow
async def dk_flow(ctx: af.WorkflowContext, n: int) -> int:
    return await ctx.step(dk_fill, n)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_the_journal_cleanly_and_the_run_resumes(tiny_disk: Path) -> None:
    db, filler = tiny_disk / "j.db", tiny_disk / "filler"
    filler.write_bytes(b"\0" * (62 * 1024 * 1024))  # leave ~2 MiB: less than the run needs

    async def first_life() -> BaseException | None:
        try:
            async with af.Runtime(db) as rt:
                handle = await rt.start(dk_flow, ENTRIES, run_id="fill")
                with anyio.fail_after(60):
                    await handle.result()
        except Exception as exc:
            return exc
        return None

    error = anyio.run(first_life)
    assert error is not None, "the disk did not fill up"
    errors = error.exceptions if isinstance(error, ExceptionGroup) else [error]
    assert all(isinstance(e, af.JournalError) for e in errors), repr(error)
    assert any("full" in str(e).lower() for e in errors), repr(error)

    filler.unlink()  # free the space

    async def second_life() -> tuple[int, list[int]]:
        async with af.Runtime(db) as rt:
            before = [e.offset async for e in _committed(rt)]
            with anyio.fail_after(60):
                total = await rt.handle("fill").result()
            return total, before

    total, before = anyio.run(second_life)
    assert total == ENTRIES
    assert before == list(range(len(before)))  # what was committed is all there, contiguous

    async def read_all() -> list[af.StreamEntry]:
        async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
            return [e async for e in rt.read_stream_entries("fill", "data")]

    entries = anyio.run(read_all)
    assert [e.offset for e in entries] == list(range(len(entries)))
    assert len(entries) >= ENTRIES


async def _committed(rt: af.Runtime) -> object:
    page = await rt.journal.read_stream("fill", "data", 0, 10**6)
    for entry in page.entries:
        yield entry
