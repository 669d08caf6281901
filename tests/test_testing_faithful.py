"""Faithfulness: what a real SIGKILL leaves is what a crash at some journal append leaves.

A child process (tests/programs/durable_stream_child.py, mode "crash") runs a
workflow on a SQLite journal and is killed with SIGKILL at a real moment. The
journal it leaves must be the journal a :class:`CrashingJournal` leaves when it
crashes at some append k of the same run (the first k - 1 appends, timestamps
aside), and recovering it must end as the harness's ``CrashPlan(k)`` ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from _processes import expect_line, sigkill, spawn

import actorflow as af
from actorflow.records import Record, StreamWrite
from actorflow.testing import CrashPlan, harness, virtual_time_backend

STEPS, VALUES = 3, 20  # as in the child


# The child's workflow, under the same names, so this process can replay and recover it.
@af.step(retries=0, name="emit")
async def faithful_emit(ctx: af.StepContext, k: int) -> int:
    for i in range(VALUES):
        await ctx.write_stream("out", ["step", k, i])
        await anyio.sleep(0.002)
    return k


@af.workflow(name="crashing")
async def faithful_crashing(ctx: af.WorkflowContext, _: None) -> int:
    total = 0
    for k in range(STEPS):
        await ctx.write_stream("out", ["body", k])
        total += await ctx.step(faithful_emit, k)
    await ctx.write_stream("out", ["body", STEPS])
    return total


def _untimed(record: Record) -> Record:
    timed = any(f.name == "at" for f in msgspec.structs.fields(record))
    return msgspec.structs.replace(record, at=0.0) if timed else record


State = tuple[list[Record], list[tuple[Any, ...]]]


def _state_of_trace(trace: list[Record]) -> State:
    """What load_history and read_stream show of a run whose journal holds ``trace``."""
    records = [
        _untimed(r) for r in trace if not (isinstance(r, StreamWrite) and r.position is None)
    ]
    entries = [
        (r.offset, r.value, r.step_id, r.attempt) for r in trace if isinstance(r, StreamWrite)
    ]
    return records, entries


async def _state_of_journal(journal: af.abc.Journal) -> State:
    await journal.open()
    try:
        history = await journal.load_history("crash")
        if history is None:
            return [], []
        page = await journal.read_stream("crash", "out", 0, limit=10_000)
        values = [msgspec.msgpack.encode(e.value) for e in page.entries]
        return [_untimed(r) for r in history.records], [
            (e.offset, v, e.step_id, e.attempt) for e, v in zip(page.entries, values, strict=True)
        ]
    finally:
        await journal.close()


def _harness_run(plan: CrashPlan) -> tuple[list[Record], list[Any]]:
    async def main() -> tuple[list[Record], list[Any]]:
        async with harness(plan) as h:
            await h.start(faithful_crashing, None, run_id="crash")
            await h.result("crash")
            page = await h.journal.read_stream("crash", "out", 0, limit=10_000)
        return list(h.trace), [(e.value, e.step_id, e.attempt) for e in page.entries]

    name, options = virtual_time_backend("asyncio")
    return anyio.run(main, backend=name, backend_options=options)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1])
def test_a_real_sigkill_leaves_what_a_crash_at_some_append_leaves(
    tmp_path: Path, delay: float
) -> None:
    db = tmp_path / "faithful.db"
    proc = spawn("durable_stream_child.py", db, "asyncio", "crash")
    expect_line(proc, "STARTED")
    time.sleep(delay)
    sigkill(proc)
    killed = anyio.run(_state_of_journal, af.SQLiteJournal(db))

    trace, _ = _harness_run(CrashPlan())
    prefixes = [_state_of_trace(trace[:j]) for j in range(len(trace) + 1)]
    assert killed in prefixes, "a SIGKILL left a journal no crash-at-k leaves"
    k = prefixes.index(killed) + 1  # the append the kill "crashed at"

    async def recover() -> list[Any]:
        async with af.Runtime(db) as rt:
            await rt.handle("crash").result()
            page = await rt.journal.read_stream("crash", "out", 0, limit=10_000)
        return [(e.value, e.step_id, e.attempt) for e in page.entries]

    recovered = anyio.run(recover)
    if k <= len(trace):
        _, expected = _harness_run(CrashPlan(k))
        assert recovered == expected
