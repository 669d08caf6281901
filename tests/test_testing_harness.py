"""actorflow.testing.Harness: operations, readers and live recorders that survive crashes."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actorflow as af
from actorflow.testing import (
    CrashPlan,
    Harness,
    all_crash_plans,
    check_exactly_once,
    check_live_recording,
    check_order,
    crash_plans,
    harness,
    moments,
    virtual_time_backend,
)

pytestmark = pytest.mark.virtual_time


@af.step(retries=3, backoff=af.Backoff(initial=1.0, factor=2.0, jitter=0.5))
async def harness_tokens(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.put_stream(i)
        await ctx.write_stream("tokens", i)
    return n


@af.workflow
async def harness_wf(ctx: af.WorkflowContext, n: int) -> int:
    total = await ctx.step(harness_tokens, n)
    await ctx.close_stream("tokens")
    return total


@af.workflow
async def harness_inbox(ctx: af.WorkflowContext, count: int) -> list[object]:
    return [await ctx.recv() for _ in range(count)]


@af.workflow
async def harness_sleeper(ctx: af.WorkflowContext, seconds: float) -> float:
    await ctx.sleep(seconds)
    return seconds


async def test_messages_sent_through_the_harness_arrive_once_whatever_the_crash() -> None:
    async def scenario(h: Harness) -> None:
        run_id = await h.start(harness_inbox, 2)
        await h.send(run_id, "a")
        await h.send(run_id, "b")

    async for plan in all_crash_plans(scenario=scenario, max_crashes=2):
        async with harness(plan) as h:
            await scenario(h)
            assert await h.result("run-1") == ["a", "b"], h.report()


async def test_a_durable_sleep_crashed_midway_ends_at_its_deadline_plus_nothing() -> None:
    """A 24-hour sleep crashed after it began, with an hour of downtime, ends at 24 h."""
    async with harness(CrashPlan(4), downtime=3600.0) as h:  # #4 is the RunEnded
        before = anyio.current_time()
        assert await h.run(harness_sleeper, 86400.0) == 86400.0
        assert h.crashes == ["crashed at append #4: RunEnded(status='COMPLETED')"]
        assert anyio.current_time() - before == pytest.approx(86400.0 + 3600.0)
        info = await h.journal.get_run("run-1")
        assert info is not None
        assert info.finished_at is not None
        assert info.finished_at - h.clock.start == pytest.approx(86400.0 + 3600.0)


async def test_a_crash_before_the_deadline_does_not_restart_the_wait() -> None:
    async with harness(CrashPlan(4), downtime=1000.0) as h:
        await h.start(harness_sleeper, 3600.0)
        assert await h.result("run-1") == 3600.0
        info = await h.journal.get_run("run-1")
        assert info is not None
        assert info.finished_at is not None
        assert info.finished_at - h.clock.start == pytest.approx(3600.0 + 1000.0)


@given(plan=crash_plans(max_crashes=2, max_append=16), moment=moments(max_appends=16))
async def test_a_reader_attaching_at_any_moment_reads_every_token_once(
    plan: CrashPlan, moment: int
) -> None:
    async with harness(plan) as h:
        run_id = await h.start(harness_wf, 5)
        rec = h.record_stream(run_id, "tokens", after_appends=moment)
        await h.run_until_complete()
    check_exactly_once(rec.entries, range(5))


async def test_a_slow_drop_oldest_subscriber_sees_order_and_accounts_for_every_gap() -> None:
    async with harness() as h:
        run_id = await h.start(harness_wf, 50)
        live = h.record_live(run_id, buffer=4, overflow="drop_oldest", delay=0.01)
        await h.run_until_complete()
    check_live_recording(live)
    check_order(live.values, range(50))
    assert live.dropped[1] > 0
    assert len(live.values) + live.dropped[1] == 50


async def test_live_recorders_subscribe_again_in_every_life() -> None:
    async with harness(CrashPlan(6)) as h:
        run_id = await h.start(harness_wf, 4)
        live = h.record_live(run_id)
        await h.run_until_complete()
    lives = live.by_life()
    assert [m.data for m in lives[2]] == [0, 1, 2, 3]  # attempt 2 publishes everything again
    check_live_recording(live)


def _trace(backend: str, plan: CrashPlan) -> list[object]:
    async def main() -> list[object]:
        @af.step(retries=2, backoff=af.Backoff(initial=1.0, jitter=0.5))
        async def flaky_tokens(ctx: af.StepContext, n: int) -> int:
            for i in range(n):
                await ctx.write_stream("tokens", i)
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return n

        @af.workflow
        async def replayed(ctx: af.WorkflowContext, n: int) -> int:
            await ctx.sleep(10)
            return await ctx.step(flaky_tokens, n)

        async with harness(plan, downtime=5.0, seed=7) as h:
            await h.run(replayed, 3)
        return list(h.trace)

    name, options = virtual_time_backend(backend)
    return anyio.run(main, backend=name, backend_options=options)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_same_seed_and_plan_give_the_identical_trace(backend: str) -> None:
    plan = CrashPlan(9, 4)
    first = _trace(backend, plan)
    assert any(isinstance(r, af.records.StepAttemptFailed) for r in first)
    for _ in range(19):
        assert _trace(backend, plan) == first


@given(plan=crash_plans(max_crashes=3, max_append=12))
async def test_the_harness_result_survives_any_plan(plan: CrashPlan) -> None:
    async with harness(plan) as h:
        assert await h.run(harness_wf, 3) == 3
        assert len(h.lives) == len(h.crashes) + 1


async def test_the_runtime_property_names_the_current_life() -> None:
    async with harness() as h:
        assert isinstance(h.runtime, af.Runtime)
        assert h.lives[0].runtime is h.runtime
    with pytest.raises(af.ActorflowError, match="no open runtime"):
        _ = h.runtime


@given(st.data())
async def test_the_status_is_the_committed_one(data: st.DataObject) -> None:
    plan = data.draw(crash_plans(max_crashes=1, max_append=10))
    async with harness(plan) as h:
        run_id = await h.start(harness_wf, 2)
        await h.result(run_id)
        assert await h.status(run_id) is af.RunStatus.COMPLETED
        with pytest.raises(af.RunNotFound):
            await h.status("nope")


async def test_read_stream_iterates_across_crashes() -> None:
    async with harness(CrashPlan(5, 4)) as h:
        run_id = await h.start(harness_wf, 4)
        seen = [entry async for entry in h.read_stream(run_id, "tokens")]
    check_exactly_once(seen, range(4))
    assert len(h.crashes) == 2
