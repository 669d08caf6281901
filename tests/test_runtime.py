"""Runs, steps, results, failures and idempotent starts, on the in-memory journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import actorflow as af


class Pair(msgspec.Struct):
    a: int
    b: int


@af.step
async def add(ctx: af.StepContext, p: Pair) -> int:
    return p.a + p.b


@af.step
async def double(ctx: af.StepContext, x: int) -> int:
    return 2 * x


@af.workflow
async def arithmetic(ctx: af.WorkflowContext, p: Pair) -> int:
    s = await ctx.step(add, p)
    return await ctx.step(double, s)


@af.step
async def boom(ctx: af.StepContext, message: str) -> None:
    raise ValueError(message)


@af.workflow
async def failing(ctx: af.WorkflowContext, message: str) -> None:
    await ctx.step(boom, message)


@af.workflow
async def catching(ctx: af.WorkflowContext, message: str) -> str:
    try:
        await ctx.step(boom, message)
    except af.StepFailed as exc:
        cause = type(exc.__cause__).__name__
        return f"caught {exc.error_type} ({cause}): {exc.error_message} after {exc.attempts}"
    return "not reached"


async def test_run_returns_the_workflow_output() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(arithmetic, Pair(2, 3)) == 10
        [info] = await rt.list_runs()
        assert info.workflow == "arithmetic"
        assert info.status is af.RunStatus.COMPLETED
        assert info.finished_at is not None


async def test_start_is_idempotent_by_run_id() -> None:
    async with af.Runtime() as rt:
        h1 = await rt.start(arithmetic, Pair(1, 1), run_id="r-1")
        h2 = await rt.start(arithmetic, Pair(5, 5), run_id="r-1")
        assert h1.run_id == h2.run_id == "r-1"
        assert await h2.result() == 4
        assert len(await rt.list_runs()) == 1
        with pytest.raises(af.ValidationError, match="already exists with workflow"):
            await rt.start(failing, "x", run_id="r-1")


async def test_failed_run_carries_remote_error() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(failing, "bad things")
        with pytest.raises(af.RunFailed) as info:
            await handle.result()
        assert info.value.error_type == "actorflow.StepFailed"
        assert "bad things" in info.value.error_message
        assert "ValueError" in info.value.traceback
        assert await handle.status() is af.RunStatus.FAILED


async def test_step_failed_is_catchable_in_the_body() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(catching, "nope") == "caught ValueError (ValueError): nope after 1"


async def test_unknown_run_raises_run_not_found() -> None:
    async with af.Runtime() as rt:
        handle = rt.handle("nope")
        with pytest.raises(af.RunNotFound, match="nope"):
            await handle.status()
        with pytest.raises(af.RunNotFound):
            await handle.result()
        with pytest.raises(af.RunNotFound):
            await handle.cancel()
        with pytest.raises(LookupError):
            await rt.get_run("nope")


async def test_workflow_by_registered_name() -> None:
    async with af.Runtime() as rt:
        assert await rt.run("arithmetic", Pair(1, 2)) == 6
        with pytest.raises(af.WorkflowNotFound, match="no workflow registered as 'missing'"):
            await rt.start("missing")


@af.step
async def who(ctx: af.StepContext, _: None) -> str:
    return ctx.step_id


@af.workflow
async def repeated(ctx: af.WorkflowContext, _: None) -> list[str]:
    return [await ctx.step(who) for _ in range(3)]


async def test_step_ids_number_repeated_calls() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(repeated) == ["who", "who-2", "who-3"]


@af.step
def blocking_step(ctx: af.ThreadStepContext, n: int) -> int:
    ctx.heartbeat()
    ctx.write_stream("thread", n)
    ctx.put_stream(n)
    ctx.flush()
    return n * 3


@af.workflow
async def threaded(ctx: af.WorkflowContext, n: int) -> int:
    return await ctx.step(blocking_step, n)


async def test_plain_def_step_runs_in_a_thread_with_blocking_context() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(threaded, 7)
        assert await handle.result() == 21
        assert [v async for v in handle.read_stream("thread")] == [7]


async def test_results_decode_to_the_annotated_type() -> None:
    @af.step
    async def make_pair(ctx: af.StepContext, n: int) -> Pair:
        return Pair(n, n)

    @af.workflow
    async def pairs(ctx: af.WorkflowContext, n: int) -> Pair:
        p = await ctx.step(make_pair, n)
        assert isinstance(p, Pair)
        return p

    async with af.Runtime() as rt:
        assert await rt.run(pairs, 4) == Pair(4, 4)


@af.step
async def slow_square(ctx: af.StepContext, n: int) -> int:
    await anyio.sleep(0.001 * (5 - n))  # finish in reverse order
    if n < 0:
        raise ValueError("negative")
    return n * n


@af.workflow
async def fan_out(ctx: af.WorkflowContext, ns: list[int]) -> list[object]:
    outputs = await ctx.gather(*[(slow_square, n) for n in ns], return_exceptions=True)
    return [o if isinstance(o, int) else type(o).__name__ for o in outputs]


async def test_gather_runs_steps_concurrently_in_call_order() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(fan_out, [1, 2, -1, 4]) == [1, 4, "StepFailed", 16]
        handle = await rt.start(fan_out, [3, 3])
        await handle.result()
        history = await rt.journal.load_history(handle.run_id)
        assert history is not None
        ids = sorted(
            (r.position, r.step_id)
            for r in history.records
            if isinstance(r, af.records.StepStarted)
        )
        assert ids == [(0, "slow_square"), (1, "slow_square-2")]  # call order, any start order


bodies_run: list[str] = []


@af.workflow
async def counted(ctx: af.WorkflowContext, _: None) -> int:
    bodies_run.append(ctx.run_id)
    return len(bodies_run)


async def test_concurrent_starts_of_one_run_id_make_one_run(tmp_path: Path) -> None:
    bodies_run.clear()
    async with af.Runtime(tmp_path / "runs.db") as rt:  # a start really waits for its commit
        handles: list[af.RunHandle[int]] = []

        async def start() -> None:
            handles.append(await rt.start(counted, run_id="same"))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(start)
        assert {h.run_id for h in handles} == {"same"}
        assert await handles[0].result() == 1
        assert bodies_run == ["same"]  # one run actor, not five


class StaleReads(af.MemoryJournal):
    """A journal whose first get_run answers from a snapshot taken before a gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.reading = anyio.Event()

    async def get_run(self, run_id: str) -> af.RunInfo | None:
        info = await super().get_run(run_id)
        if not self.reading.is_set():
            self.reading.set()
            await self.gate.wait()
        return info


async def test_a_start_whose_read_missed_a_finished_run_of_its_id_reads_again() -> None:
    # Start B reads the journal; meanwhile start A of the same id commits, runs
    # and finishes (so it is no longer active); B's read predates all that.
    bodies_run.clear()
    journal = StaleReads()
    async with af.Runtime(journal) as rt, anyio.create_task_group() as tg:
        handles: list[af.RunHandle[int]] = []

        async def start() -> None:
            handles.append(await rt.start(counted, run_id="same"))

        tg.start_soon(start)
        await journal.reading.wait()
        assert await rt.run(counted, run_id="same") == 1
        journal.gate.set()
    assert [h.run_id for h in handles] == ["same"]
    assert bodies_run == ["same"]  # B found A's run instead of starting it again


@pytest.mark.parametrize("journal_kind", ["memory", "sqlite"])
async def test_page_runs_reads_one_page_newest_first(journal_kind: str, tmp_path: Path) -> None:
    journal: Any = af.MemoryJournal() if journal_kind == "memory" else tmp_path / "runs.db"
    async with af.Runtime(journal) as rt:
        ids = [(await rt.start(page_flow, i, run_id=f"p{i}")).run_id for i in range(7)]
        for run_id in ids:
            await rt.handle(run_id).result()
        first = await rt.page_runs(limit=3)
        assert [r.run_id for r in first] == ["p6", "p5", "p4"]
        rest = await rt.page_runs(limit=10, before=first[-1].run_id)
        assert [r.run_id for r in rest] == ["p3", "p2", "p1", "p0"]
        assert await rt.page_runs(before="nope") == []
        completed = await rt.page_runs("completed", workflow="page_flow", limit=2)
        assert [r.run_id for r in completed] == ["p6", "p5"]
        assert await rt.page_runs(workflow="other") == []
        with pytest.raises(af.ValidationError):
            await rt.page_runs(limit=0)


@af.workflow
async def page_flow(ctx: af.WorkflowContext, i: int) -> int:
    return i
