"""Retries, backoff, timeouts, heartbeats and checkpoints, in virtual time on trio."""

from __future__ import annotations

import anyio
import pytest

import actorflow as af

pytestmark = pytest.mark.virtual_time

FAST = af.Backoff(initial=0.01, factor=2.0, max=0.05, jitter=0.0)


def test_backoff_grows_to_its_max() -> None:
    b = af.Backoff(initial=1.0, factor=3.0, max=10.0, jitter=0.0)
    assert [b.delay(n) for n in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 10.0]
    jittered = af.Backoff(initial=1.0, jitter=0.5)
    assert all(0.5 <= jittered.delay(1) <= 1.5 for _ in range(50))
    with pytest.raises(af.ValidationError, match="factor >= 1"):
        af.Backoff(factor=0.5)


@af.step(retries=3, backoff=af.Backoff(initial=1.0, factor=2.0, max=60.0, jitter=0.0))
async def flaky(ctx: af.StepContext, fail_times: int) -> list[float]:
    if ctx.attempt <= fail_times:
        raise ConnectionError(f"attempt {ctx.attempt}")
    return [ctx.attempt, anyio.current_time()]


@af.workflow
async def retrying(ctx: af.WorkflowContext, fail_times: int) -> list[float]:
    return await ctx.step(flaky, fail_times)


async def test_retries_with_backoff_then_success() -> None:
    async with af.Runtime() as rt:
        start = anyio.current_time()
        attempt, finished = await rt.run(retrying, 3)
        assert attempt == 4
        # waited 1 + 2 + 4 seconds of backoff between the four attempts
        assert finished - start == pytest.approx(7.0, abs=0.5)


async def test_retries_exhausted_fail_the_run() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.RunFailed, match="after 4 attempt") as info:
            await rt.run(retrying, 10)
        assert "ConnectionError" in info.value.error_message


@af.step(timeout=0.2, retries=1, backoff=FAST)
async def slow(ctx: af.StepContext, seconds: float) -> str:
    await anyio.sleep(seconds if ctx.attempt == 1 else 0)
    return f"attempt {ctx.attempt}"


@af.workflow
async def timing_out(ctx: af.WorkflowContext, seconds: float) -> str:
    return await ctx.step(slow, seconds)


async def test_timeout_cancels_the_attempt_and_retries() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(timing_out, 30.0) == "attempt 2"


@af.step(timeout=0.2, backoff=FAST)
async def always_slow(ctx: af.StepContext, _: None) -> None:
    await anyio.sleep(30)


@af.workflow
async def always_timing_out(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.step(always_slow)


async def test_timeout_exhausted_is_a_timeout_error() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.RunFailed, match="TimeoutError"):
            await rt.run(always_timing_out)


@af.step(heartbeat_timeout=0.5, retries=2, backoff=FAST)
async def beating(ctx: af.StepContext, stall_on_attempt: int) -> int:
    for _ in range(10):
        await anyio.sleep(0.2)
        ctx.heartbeat()
    if ctx.attempt == stall_on_attempt:
        await anyio.sleep(30)  # silent: the watchdog cancels this attempt
    return ctx.attempt


@af.workflow
async def heartbeats(ctx: af.WorkflowContext, stall_on_attempt: int) -> int:
    return await ctx.step(beating, stall_on_attempt)


async def test_heartbeats_keep_a_long_attempt_alive() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(heartbeats, 0) == 1


async def test_missed_heartbeat_cancels_and_retries() -> None:
    async with af.Runtime() as rt:
        start = anyio.current_time()
        assert await rt.run(heartbeats, 1) == 2
        # 2 s of beats + 0.5 s of silence, then a full second attempt of 2 s
        assert anyio.current_time() - start < 10


@af.step(retries=2, backoff=FAST)
async def resumable(ctx: af.StepContext, total: int) -> list[int]:
    done: list[int] = list(ctx.checkpoint or [])
    for i in range(len(done), total):
        done.append(i)
        await ctx.save_checkpoint(done)
        if i == 2 and ctx.attempt == 1:
            raise RuntimeError("crashed mid-way")
    return [ctx.attempt, *done]


@af.workflow
async def checkpointing(ctx: af.WorkflowContext, total: int) -> list[int]:
    return await ctx.step(resumable, total)


async def test_checkpoint_carries_into_the_next_attempt() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(checkpointing, 5) == [2, 0, 1, 2, 3, 4]


async def test_result_timeout() -> None:
    @af.workflow
    async def sleepy(ctx: af.WorkflowContext, _: None) -> None:
        await anyio.sleep(100)

    async with af.Runtime() as rt:
        handle = await rt.start(sleepy)
        with pytest.raises(TimeoutError):
            await handle.result(timeout=1.0)
        await handle.cancel()
