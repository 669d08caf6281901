"""Several worker processes on one SQLite journal, and a client in the test's process.

Real processes, real SIGKILL: the writer dies mid-step, the waiting worker
takes over within a second and resumes the run; streams stay contiguous and
attempt-tagged; every run completes exactly once.
"""

from __future__ import annotations

import time
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
