"""Several worker processes on one SQLite journal, and a client in the test's process.

Real processes, real SIGKILL: the writer dies mid-step, the waiting worker
takes over within a second and resumes the run; streams stay contiguous and
attempt-tagged; every run completes exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest
from _processes import expect_line, sigkill, spawn

import actorflow as af


async def _wait_for_tokens(client: af.Runtime, run_id: str, count: int) -> None:
    async with aclosing(client.read_stream_entries(run_id, "tokens")) as entries:  # type: ignore[type-var]
        async for entry in entries:
            if entry.offset + 1 >= count:
                return


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_waiting_worker_resumes_the_runs_of_a_killed_writer(
    tmp_path: Path, backend: str
) -> None:
    db = tmp_path / "app.db"
    first = spawn("worker_app.py", db, backend)
    expect_line(first, "READY writer")
    second = spawn("worker_app.py", db, backend)
    expect_line(second, "READY waiting")
    try:
        took_over = anyio.run(_drive, db, first, backend=backend)
        expect_line(second, "WRITER")
    finally:
        sigkill(first)
        sigkill(second)
    assert took_over < 1.0, took_over


async def _drive(db: Path, first: object) -> float:
    async with af.Runtime(db, execute=False) as client:
        handles = [await client.start("mp_flow", 40) for _ in range(3)]
        with anyio.fail_after(30):
            await _wait_for_tokens(client, handles[0].run_id, 10)
        killed = time.monotonic()
        sigkill(first)  # type: ignore[arg-type]
        # The next durable entry of the resumed run: the takeover's latency.
        entries = client.read_stream_entries(handles[0].run_id, "tokens")
        with anyio.fail_after(30):
            async with aclosing(entries) as resumed:  # type: ignore[type-var]
                async for entry in resumed:
                    if entry.attempt > 1:
                        took_over = time.monotonic() - killed
                        break
            results = [await h.result() for h in handles]
        assert results == [40, 40, 40]
        for handle in handles:
            entries = [e async for e in handle.read_stream_entries("tokens")]
            assert [e.offset for e in entries] == list(range(len(entries)))
            by_attempt: dict[int, list[object]] = {}
            for e in entries:
                by_attempt.setdefault(e.attempt, []).append(e.value)
            last = max(by_attempt)
            assert by_attempt[last] == list(range(40))  # the attempt that finished
            for attempt, values in by_attempt.items():
                assert values == list(range(len(values))), attempt  # each a prefix, in order
            assert [v async for v in handle.read_stream("done")] == [40]  # body writes once
    return took_over


@pytest.mark.slow
def test_a_paused_writer_keeps_its_runs_and_goes_on_when_it_continues(tmp_path: Path) -> None:
    """SIGSTOP: no takeover (the writer lock is the fence); SIGCONT: the run goes on."""
    db = tmp_path / "app.db"
    first = spawn("worker_app.py", db, "asyncio")
    expect_line(first, "READY writer")
    second = spawn("worker_app.py", db, "asyncio")
    expect_line(second, "READY waiting")
    try:
        anyio.run(_pause_and_continue, db, first)
        assert second.poll() is None  # still waiting: it never wrote
    finally:
        sigkill(first)
        sigkill(second)


async def _pause_and_continue(db: Path, first: object) -> None:
    pid = first.pid  # type: ignore[attr-defined]
    async with af.Runtime(db, execute=False) as client:
        handle = await client.start("mp_flow", 40)
        with anyio.fail_after(30):
            await _wait_for_tokens(client, handle.run_id, 5)
        os.kill(pid, signal.SIGSTOP)
        try:
            # Well past a takeover (~0.1 s): nothing writes while the writer sleeps.
            await anyio.sleep(1.0)
            info = await client.get_run(handle.run_id)
            assert info.status is af.RunStatus.RUNNING
            entries = [e async for e in _committed(client, handle.run_id)]
            assert {e.attempt for e in entries} == {1}
        finally:
            os.kill(pid, signal.SIGCONT)
        with anyio.fail_after(30):
            assert await handle.result() == 40
        entries = [e async for e in handle.read_stream_entries("tokens")]
        assert [e.value for e in entries] == list(range(40))  # one attempt, never taken over
        assert {e.attempt for e in entries} == {1}


async def _committed(client: af.Runtime, run_id: str) -> AsyncIterator[af.StreamEntry]:
    page = await client.journal.read_stream(run_id, "tokens")
    for entry in page.entries:
        yield entry
