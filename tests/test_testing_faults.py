"""actorflow.testing faults: failing attempts, slow and failing commits; the pytest plugin."""

from __future__ import annotations

import anyio
import pytest

import actorflow as af
from actorflow.testing import FaultyJournal, InjectedFault, fail_attempts, harness

pytestmark = pytest.mark.virtual_time


@af.step(retries=2, backoff=af.Backoff(initial=1.0, factor=2.0, jitter=0.0))
async def faulty_async(ctx: af.StepContext, x: int) -> int:
    return x * 2


@af.step(retries=1, backoff=af.Backoff(initial=1.0, jitter=0.0))
def faulty_sync(ctx: af.ThreadStepContext, x: int) -> int:
    return x + 1


@af.workflow
async def faulty_wf(ctx: af.WorkflowContext, x: int) -> int:
    return await ctx.step(faulty_sync, await ctx.step(faulty_async, x))


async def test_failing_attempts_are_retried_then_the_step_code_runs() -> None:
    with fail_attempts(faulty_async, [1, 2]), fail_attempts(faulty_sync, [1]):
        async with harness() as h:
            assert await h.run(faulty_wf, 5) == 11
    failed = [r for r in h.trace if isinstance(r, af.records.StepAttemptFailed)]
    assert [(r.position, r.attempt, r.error.type) for r in failed] == [
        (0, 1, "actorflow.InjectedFault"),
        (0, 2, "actorflow.InjectedFault"),
        (1, 1, "actorflow.InjectedFault"),
    ]
    assert faulty_async.fn.__name__ == "faulty_async"  # restored after the block


async def test_a_step_failing_every_attempt_fails_the_run_with_the_injected_error() -> None:
    with fail_attempts(faulty_async, [1, 2, 3], error=lambda n: ValueError(f"boom {n}")):
        async with harness() as h:
            run_id = await h.start(faulty_wf, 1)
            with pytest.raises(af.RunFailed, match="boom 3"):
                await h.result(run_id)


async def test_slow_commits_take_their_virtual_time() -> None:
    journal = FaultyJournal(af.MemoryJournal(), commit_delay=2.0)
    async with af.Runtime(journal) as rt:
        before = anyio.current_time()
        assert await rt.run(faulty_wf, 1) == 3
        assert anyio.current_time() - before >= 2.0 * 3  # start, two steps, the end


async def test_a_failing_commit_is_a_journal_error_and_nothing_after_it_is_written() -> None:
    inner = af.MemoryJournal()
    journal = FaultyJournal(inner, fail_at=1)
    async with af.Runtime(journal) as rt:
        with pytest.raises(af.JournalError, match="append #1"):
            await rt.start(faulty_wf, 1)
    assert await inner.list_runs() == []
    assert journal.appends == 1
    assert issubclass(InjectedFault, af.ActorflowError)


async def test_the_plugin_fixtures(harness: object, runtime: af.Runtime) -> None:
    """The pytest plugin (registered by the entry point) provides harness and runtime."""
    from actorflow.testing import Harness

    assert isinstance(harness, Harness)
    assert await runtime.run(faulty_wf, 2) == 5
    assert isinstance(runtime.clock, af.testing.VirtualClock)
