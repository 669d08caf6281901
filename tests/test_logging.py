"""What actorflow logs, at which level, through the ``actorflow.*`` loggers."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import actorflow as af
from actorflow.abc import Instrument

FAST = af.Backoff(initial=0.25, factor=2.0, jitter=0.0)


@af.step(retries=3, backoff=FAST)
async def log_flaky(ctx: af.StepContext, fail_times: int) -> str:
    if ctx.attempt <= fail_times:
        raise ConnectionError(f"attempt {ctx.attempt} refused")
    return "ok"


@af.workflow
async def log_flaky_flow(ctx: af.WorkflowContext, fail_times: int) -> str:
    return await ctx.step(log_flaky, fail_times)


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records]


@pytest.mark.virtual_time
async def test_a_step_that_fails_twice_then_succeeds_logs_its_retries_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="actorflow")
    async with af.Runtime() as rt:
        handle = await rt.start(log_flaky_flow, 2)
        assert await handle.result() == "ok"
    run = handle.run_id
    got = records(caplog)
    assert got == [
        ("actorflow.run", logging.INFO, f"run {run} of log_flaky_flow started"),
        (
            "actorflow.step",
            logging.INFO,
            f"run {run} step log_flaky attempt 1 failed (ConnectionError: attempt 1 refused); "
            "retrying in 0.25 s",
        ),
        (
            "actorflow.step",
            logging.INFO,
            f"run {run} step log_flaky attempt 2 failed (ConnectionError: attempt 2 refused); "
            "retrying in 0.5 s",
        ),
        ("actorflow.run", logging.INFO, f"run {run} of log_flaky_flow COMPLETED"),
    ]
    retry = caplog.records[1]
    assert (retry.run_id, retry.step_id, retry.attempt) == (run, "log_flaky", 1)  # type: ignore[attr-defined]
    assert retry.exc_info is not None  # the traceback, since DEBUG is on


@pytest.mark.virtual_time
async def test_a_successful_retry_logs_nothing_at_the_default_warning_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actorflow")
    async with af.Runtime() as rt:
        assert await rt.run(log_flaky_flow, 2) == "ok"
    assert caplog.records == []


@pytest.mark.virtual_time
async def test_a_step_that_fails_outright_logs_its_give_up_and_the_run_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actorflow")
    async with af.Runtime() as rt:
        handle = await rt.start(log_flaky_flow, 10)
        with pytest.raises(af.RunFailed):
            await handle.result()
    run = handle.run_id
    assert records(caplog) == [
        (
            "actorflow.step",
            logging.WARNING,
            f"run {run} step log_flaky attempt 4 failed (ConnectionError: attempt 4 refused); "
            "giving up, no retries left",
        ),
        (
            "actorflow.run",
            logging.WARNING,
            f"run {run} of log_flaky_flow FAILED: actorflow.StepFailed: step 'log_flaky' "
            "failed after 4 attempt(s) with ConnectionError: attempt 4 refused",
        ),
    ]
    gave_up = caplog.records[0]
    assert gave_up.exc_info is not None
    assert gave_up.exc_info[0] is ConnectionError
    assert "attempt 4 refused" in caplog.text  # the traceback is in the formatted log


@af.step(heartbeat_timeout=0.5, retries=1, backoff=FAST)
async def log_stalls(ctx: af.StepContext, _: None) -> int:
    if ctx.attempt == 1:
        await anyio.sleep(10)
    return ctx.attempt


@af.workflow
async def log_stalls_flow(ctx: af.WorkflowContext, _: None) -> int:
    return await ctx.step(log_stalls, None)


@pytest.mark.virtual_time
async def test_a_heartbeat_timeout_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="actorflow.step")
    async with af.Runtime() as rt:
        handle = await rt.start(log_stalls_flow, None)
        assert await handle.result() == 2
    messages = [m for _, _, m in records(caplog)]
    assert messages[0] == (
        f"run {handle.run_id} step log_stalls attempt 1 sent no heartbeat for 0.5 s; cancelling it"
    )
    assert messages[1].startswith(f"run {handle.run_id} step log_stalls attempt 1 failed")


entered = anyio.Event()


@af.step
async def log_blocks(ctx: af.StepContext, block: bool) -> str:
    if block:
        entered.set()
        await anyio.sleep_forever()
    return "done"


@af.workflow
async def log_blocks_flow(ctx: af.WorkflowContext, block: bool) -> str:
    return await ctx.step(log_blocks, block)


async def test_a_stopped_run_and_its_recovery_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    global entered
    entered = anyio.Event()
    caplog.set_level(logging.INFO, logger="actorflow.run")
    journal = af.MemoryJournal()
    async with af.Runtime(journal) as rt:
        await rt.start(log_blocks_flow, True, run_id="log-recovered")
        await entered.wait()
    # The second life runs the blocked step again, and blocks again: cancel it there.
    entered = anyio.Event()
    async with af.Runtime(journal) as rt:
        await entered.wait()
        await rt.cancel("log-recovered")
    assert [m for _, _, m in records(caplog)] == [
        "run log-recovered of log_blocks_flow started",
        "run log-recovered of log_blocks_flow stopped unfinished; it resumes when a runtime "
        "opens the journal again",
        "run log-recovered of log_blocks_flow resumed after a restart (recovery)",
        "run log-recovered of log_blocks_flow CANCELLED",
    ]


class Seen(Instrument):
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        self.calls.append((step_id, attempt, retry_in))


@pytest.mark.virtual_time
async def test_a_users_instrument_and_the_logging_both_see_a_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="actorflow.step")
    seen = Seen()
    async with af.Runtime(instrument=seen) as rt:
        assert await rt.run(log_flaky_flow, 1) == "ok"
    assert seen.calls == [("log_flaky", 1, 0.25)]
    assert len(caplog.records) == 1


async def test_a_slow_subscriber_logs_its_losses_once_per_doubling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="actorflow.live")
    async with af.Runtime() as rt:
        sub = rt.subscribe("stream.>", buffer=2, overflow="drop_oldest")
        publisher = rt.broker.publisher("r1", "s")
        async with sub:
            for burst in range(3):
                for i in range(2 + 2**burst):  # lose 1, then 2, then 4 messages
                    await publisher.publish(i)
                for _ in range(2):
                    await sub.__anext__()
    assert sub.dropped == 7
    assert [m for _, _, m in records(caplog)] == [
        "a slow subscriber of 'stream.>' has lost 1 messages so far (overflow=drop_oldest, "
        "buffer=2); read faster or give it a larger buffer",
        "a slow subscriber of 'stream.>' has lost 3 messages so far (overflow=drop_oldest, "
        "buffer=2); read faster or give it a larger buffer",
        "a slow subscriber of 'stream.>' has lost 7 messages so far (overflow=drop_oldest, "
        "buffer=2); read faster or give it a larger buffer",
    ]


class BreakingJournal(af.MemoryJournal):
    """A journal whose commits fail once ``broken`` is set (as a full disk would)."""

    broken = False

    async def wait_committed(self, ticket: int) -> None:
        if self.broken:
            raise af.JournalError("the disk is full")
        await super().wait_committed(ticket)


@af.step
async def log_breaks_journal(ctx: af.StepContext, _: None) -> None:
    breaking.broken = True


@af.workflow
async def log_journal_flow(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.step(log_breaks_journal, None)


breaking = BreakingJournal()


async def test_a_failing_journal_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    global breaking
    breaking = BreakingJournal()
    caplog.set_level(logging.ERROR, logger="actorflow")
    # The runtime stops with the journal's error (wrapped by its task group).
    with pytest.RaisesGroup(af.JournalError, flatten_subgroups=True):
        async with af.Runtime(breaking) as rt:
            await rt.start(log_journal_flow, None, run_id="log-journal")
            await anyio.sleep_forever()
    (record,) = [r for r in caplog.records if r.name == "actorflow.journal"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "the journal failed under run log-journal (JournalError: the disk is full); "
        "the runtime stops"
    )
