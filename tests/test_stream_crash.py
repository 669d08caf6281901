"""Durable streams across SIGKILL, and read by another process while a runtime writes them."""

from __future__ import annotations

import subprocess
import sys
import time
from itertools import groupby
from pathlib import Path
from typing import Any

import anyio
import pytest
from _processes import PROGRAMS, expect_line, sigkill, spawn
from hypothesis import given, settings
from hypothesis import strategies as st

import actorflow as af

CHILD = "durable_stream_child.py"
STEPS, VALUES = 3, 20  # as in the child


def start_child(db: Path, backend: str, mode: str) -> subprocess.Popen[str]:
    return spawn(CHILD, db, backend, mode)


async def committed_log(db: Path, run_id: str) -> list[af.StreamEntry]:
    """What a reader in this process sees, through a read-only journal."""
    async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
        if not any(info.run_id == run_id for info in await rt.list_runs()):
            return []
        page = await rt.journal.read_stream(run_id, "out", 0, limit=10_000)
        return page.entries


def check_log(entries: list[af.StreamEntry]) -> None:
    """The invariants of a finished run's stream, however often its process was killed."""
    assert [e.offset for e in entries] == list(range(len(entries)))  # contiguous
    pairs = [(tuple(e.value), e.attempt) for e in entries]  # type: ignore[arg-type]
    assert len(set(pairs)) == len(pairs), pairs  # each (value, attempt) once
    body = [e.value for e in entries if e.step_id == "main"]
    assert body == [["body", k] for k in range(STEPS + 1)]  # never repeated by recovery
    # Program order: body k, then step k's attempts, then body k + 1.
    for k in range(STEPS):
        start = next(i for i, e in enumerate(entries) if e.value == ["body", k])
        stop = next(i for i, e in enumerate(entries) if e.value == ["body", k + 1])
        written = entries[start + 1 : stop]
        step_id = "emit" if k == 0 else f"emit-{k + 1}"
        assert all(e.step_id == step_id and e.value[1] == k for e in written)  # type: ignore[index]
        attempts = [list(group) for _, group in groupby(written, key=lambda e: e.attempt)]
        numbers = [group[0].attempt for group in attempts]
        assert numbers == sorted(set(numbers)), numbers  # a rerun appends after, attempt + 1
        for group in attempts:  # every attempt wrote a prefix, in order
            assert [e.value[2] for e in group] == list(range(len(group)))  # type: ignore[index]
        assert len(attempts[-1]) == VALUES  # the attempt that completed wrote everything


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=5, deadline=None)
@given(kills=st.lists(st.floats(0.0, 0.35), min_size=1, max_size=3))
def test_sigkill_at_random_points_loses_and_repeats_nothing(
    tmp_path_factory: pytest.TempPathFactory, backend: str, kills: list[float]
) -> None:
    db = tmp_path_factory.mktemp("crash") / "streams.db"
    seen: list[af.StreamEntry] = []
    for delay in kills:
        child = start_child(db, backend, "crash")
        expect_line(child, "STARTED")
        time.sleep(delay)
        sigkill(child)
        log = anyio.run(committed_log, db, "crash")
        assert log[: len(seen)] == seen  # what was committed before a kill is still there
        seen = log
    last = start_child(db, backend, "crash")
    out, err = last.communicate(timeout=30)
    assert last.returncode == 0, err
    assert out.split("\n")[-2] == f"RESULT {sum(range(STEPS))}"
    log = anyio.run(committed_log, db, "crash")
    assert log[: len(seen)] == seen
    check_log(log)


@pytest.mark.slow
async def test_a_reader_in_another_process_follows_live_commits(
    tmp_path: Path, anyio_backend: str
) -> None:
    db, backend = tmp_path / "streams.db", anyio_backend
    async with await anyio.open_process(
        [sys.executable, str(PROGRAMS / CHILD), str(db), backend, "slow"]
    ) as child:
        assert child.stdout is not None
        output = b""
        while b"STARTED\n" not in output:
            output += await child.stdout.receive()
        received: list[tuple[af.StreamEntry, af.RunStatus]] = []
        async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
            handle: af.RunHandle[Any] = rt.handle("slow")
            with anyio.fail_after(30):
                async for entry in handle.read_stream_entries("out"):
                    received.append((entry, await handle.status()))
                assert await handle.result() == VALUES
            assert await handle.status() is af.RunStatus.COMPLETED
        await child.wait()
    assert [e for e, _ in received] == [
        af.StreamEntry(i, ["slow", i], "trickle", 1) for i in range(VALUES)
    ]
    # It followed the run live: most entries arrived while the writer was still running.
    running = [status for _, status in received if status is af.RunStatus.RUNNING]
    assert len(running) >= VALUES // 2, received
