"""actorflow.testing: CrashingJournal (SIGKILL semantics in-process) and crash plans."""

from __future__ import annotations

import anyio
import pytest

import actorflow as af
from actorflow.records import RunResumed, RunStarted, StepCheckpoint
from actorflow.testing import (
    CrashingJournal,
    CrashPlan,
    SimulatedCrash,
    all_crash_plans,
    crash_points,
    describe_record,
    harness,
)

pytestmark = pytest.mark.virtual_time


@af.step
async def crash_tokens(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.write_stream("tokens", i)
    return n


@af.workflow
async def crash_wf(ctx: af.WorkflowContext, n: int) -> int:
    total = await ctx.step(crash_tokens, n)
    await ctx.close_stream("tokens")
    return total


async def test_appends_before_the_crash_point_reach_the_journal_and_none_after() -> None:
    inner = af.MemoryJournal()
    points: list[str] = []
    journal = CrashingJournal(inner, crash_at=2, on_crash=points.append)
    await journal.open()
    first = journal.append(RunStarted("r", workflow="w", input=b"", at=0.0))
    await journal.wait_committed(first)
    with pytest.raises(SimulatedCrash) as info:
        journal.append(RunResumed("r", at=1.0))
    assert info.value.point == "crashed at append #2: RunResumed()"
    assert points == ["crashed at append #2: RunResumed()"]
    with pytest.raises(SimulatedCrash):
        journal.append(RunResumed("r", at=2.0))
    with pytest.raises(SimulatedCrash):
        await journal.wait_committed(first + 1)
    with pytest.raises(SimulatedCrash):
        await journal.wait_for_commit(first)
    await journal.wait_committed(first)  # what was written before the crash stays committed
    history = await journal.load_history("r")
    assert history is not None
    assert history.records == [RunStarted("r", workflow="w", input=b"", at=0.0)]
    assert journal.appends == 3
    assert points == ["crashed at append #2: RunResumed()"]  # on_crash is called once
    await journal.close()


def test_crash_points_are_named_by_record() -> None:
    assert describe_record(StepCheckpoint("r", 1, 1, b"")) == "StepCheckpoint(attempt=1)"
    with pytest.raises(ValueError, match="from 1"):
        CrashingJournal(af.MemoryJournal(), crash_at=0)
    with pytest.raises(ValueError, match="from 1"):
        CrashPlan(0)
    assert repr(CrashPlan(5, 3)) == "CrashPlan(5, 3)"
    assert CrashPlan(5, 3).crash_at(2) == 3
    assert CrashPlan(5).crash_at(2) is None


async def test_a_runtime_over_a_crashed_journal_shuts_down_without_hanging() -> None:
    """The crash is a BaseException: the runtime stops, writes nothing, and does not wait."""
    inner = af.MemoryJournal()
    journal = CrashingJournal(inner, crash_at=5)
    with anyio.fail_after(10):
        try:
            async with af.Runtime(journal, clock=af.testing.VirtualClock()) as rt:
                await rt.start(crash_wf, 10, run_id="r")
                await anyio.sleep_forever()
        except* SimulatedCrash:
            pass
    assert journal.crashed == "crashed at append #5: StreamWrite(step_id='crash_tokens', " + (
        "key='tokens', offset=1, attempt=1)"
    )
    history = await inner.load_history("r")
    assert history is not None
    assert len(history.records) == 3  # RunStarted, RunResumed, StepStarted; writes apart
    assert history.stream_lengths == {"tokens": 1}
    assert history.info.status is af.RunStatus.RUNNING


async def test_every_single_and_double_crash_point_gives_the_same_result() -> None:
    plans = [plan async for plan in all_crash_plans(crash_wf, 3, max_crashes=2)]
    singles = [p for p in plans if len(p.points) == 1]
    assert len(singles) == await crash_points(crash_wf, 3) == 9
    assert len(plans) > len(singles)
    assert len(set(plans)) == len(plans)
    for plan in plans:
        async with harness(plan) as h:
            assert await h.run(crash_wf, 3) == 3
            rec = h.record_stream("run-1", "tokens")
            await h.run_until_complete()
        assert len(h.crashes) == len(plan.points), h.report()
        af.testing.check_exactly_once(rec.entries, [0, 1, 2])


async def test_a_failure_inside_the_harness_names_the_plan_and_crash_point() -> None:
    async def failing() -> None:
        async with harness(CrashPlan(4)) as h:
            await h.run(crash_wf, 3)
            raise AssertionError("the property failed")

    with pytest.raises(AssertionError) as info:
        await failing()
    assert info.value.__notes__ == [
        "actorflow.testing: CrashPlan(4), seed=0, life 1 crashed at append #4: "
        "StreamWrite(step_id='crash_tokens', key='tokens', offset=0, attempt=1)"
    ]
