"""Recovery when a runtime reopens a journal, cancellation, and non-determinism."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

import actorflow as af

executions: Counter[str] = Counter()
gates: dict[str, anyio.Event] = {}
entered: dict[str, anyio.Event] = {}


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    executions.clear()
    gates.clear()
    entered.clear()


@af.step
async def record(ctx: af.StepContext, label: str) -> str:
    executions[label] += 1
    if label in entered:
        entered[label].set()
    gate = gates.get(label)
    if gate is not None:
        await gate.wait()
    return label.upper()


@af.workflow
async def three_steps(ctx: af.WorkflowContext, prefix: str) -> list[str]:
    return [await ctx.step(record, f"{prefix}{i}") for i in range(3)]


async def test_reopening_resumes_runs_and_skips_completed_steps() -> None:
    executions.clear()
    gates["r1"] = anyio.Event()  # step 1 of the first life never finishes
    entered["r1"] = anyio.Event()
    journal = af.MemoryJournal()
    async with af.Runtime(journal) as rt:
        handle = await rt.start(three_steps, "r", run_id="resume-me")
        await entered["r1"].wait()
    # leaving the runtime cancelled the run: it stays unfinished in the journal
    info = await journal.get_run("resume-me")
    assert info is not None
    assert info.status is af.RunStatus.RUNNING
    gates.pop("r1")
    async with af.Runtime(journal) as rt:
        assert await rt.handle("resume-me").result() == ["R0", "R1", "R2"]
        assert handle.run_id == "resume-me"
    assert executions == Counter({"r0": 1, "r1": 2, "r2": 1})
    history = await journal.load_history("resume-me")
    assert history is not None
    attempts = [r.attempt for r in history.records if isinstance(r, af.records.StepStarted)]
    assert attempts == [1, 1, 2, 1]  # the interrupted step ran again as attempt 2


async def test_cancel_ends_the_run_and_its_steps() -> None:
    executions.clear()
    gates["c1"] = anyio.Event()
    cancelled = anyio.Event()

    @af.step
    async def hanging(ctx: af.StepContext, _: None) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    @af.workflow
    async def hangs(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.step(hanging)

    async with af.Runtime() as rt:
        handle = await rt.start(hangs)
        await anyio.sleep(0.01)
        await handle.cancel()
        assert cancelled.is_set()
        assert await handle.status() is af.RunStatus.CANCELLED
        with pytest.raises(af.RunCancelled):
            await handle.result()
        await handle.cancel()  # cancelling a finished run does nothing
    gates.pop("c1")


async def test_cancel_a_run_not_active_in_this_runtime() -> None:
    @af.workflow
    async def never_registered_body(ctx: af.WorkflowContext, _: None) -> None:
        await anyio.sleep_forever()

    journal = af.MemoryJournal()
    async with af.Runtime(journal) as rt:
        handle = await rt.start(never_registered_body)
    async with af.Runtime(journal) as rt:
        # resumed, because it is registered; cancel it through a fresh handle
        await rt.handle(handle.run_id).cancel()
        assert await rt.handle(handle.run_id).status() is af.RunStatus.CANCELLED


async def test_leaving_the_runtime_leaves_no_task_behind() -> None:
    stopped = anyio.Event()

    @af.step
    async def forever(ctx: af.StepContext, _: None) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    @af.workflow
    async def runs_forever(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.step(forever)

    async with af.Runtime() as rt:
        await rt.start(runs_forever)
        await anyio.sleep(0.01)
    assert stopped.is_set()


async def test_replay_that_calls_another_step_is_nondeterminism() -> None:
    journal = af.MemoryJournal()
    gates["n1"] = anyio.Event()
    entered["n1"] = anyio.Event()

    @af.step
    async def other(ctx: af.StepContext, _: str) -> str:
        return "other"

    async def version_one(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.step(record, "n0")
        await ctx.step(record, "n1")

    async def version_two(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.step(other, "n0")

    af.workflow(name="evolving")(version_one)
    async with af.Runtime(journal) as rt:
        handle = await rt.start("evolving")
        await entered["n1"].wait()
    gates.pop("n1")
    af.workflow(name="evolving")(version_two)
    async with af.Runtime(journal) as rt:
        with pytest.raises(af.RunFailed) as info:
            await rt.handle(handle.run_id).result()
    assert info.value.error_type == "actorflow.NonDeterminism"
    assert "step 'record'" in info.value.error_message
    assert "step 'other'" in info.value.error_message


async def test_body_stream_writes_are_not_repeated_by_recovery() -> None:
    journal = af.MemoryJournal()
    gates["w1"] = anyio.Event()
    entered["w1"] = anyio.Event()

    @af.workflow
    async def writes(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.write_stream("out", "before")
        await ctx.step(record, "w1")
        await ctx.write_stream("out", "after")

    async with af.Runtime(journal) as rt:
        handle = await rt.start(writes)
        await entered["w1"].wait()
    gates.pop("w1")
    async with af.Runtime(journal) as rt:
        await rt.handle(handle.run_id).result()
        values = [v async for v in rt.read_stream(handle.run_id, "out")]
    assert values == ["before", "after"]
