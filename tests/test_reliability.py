"""Defects found under attack (issue 15, items 6-9 and 11), with the tests that keep them fixed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import actorflow as af
from actorflow.records import MessageSent, RunEnded

# -- 6. send racing a run's end: delivered, or refused with RunEnded ----------------


@af.workflow
async def rel_recv_once(ctx: af.WorkflowContext, _: None) -> Any:
    return await ctx.recv("go")


async def test_a_send_racing_the_runs_end_is_never_journaled_after_it(tmp_path: Path) -> None:
    async with af.Runtime(tmp_path / "runs.db") as rt:
        for _ in range(30):
            handle = await rt.start(rel_recv_once, None)
            refused = anyio.Event()

            async def spam(
                handle: af.RunHandle[Any] = handle, refused: anyio.Event = refused
            ) -> None:
                while True:
                    try:
                        await handle.send("late", topic="other")
                    except af.RunFinished:
                        refused.set()
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(spam)
                await anyio.lowlevel.checkpoint()
                await handle.send("now", topic="go")
            assert await handle.result() == "now"
            assert refused.is_set()
            history = await rt.journal.load_history(handle.run_id)
            assert history is not None
            kinds = [type(r) for r in history.records]
            end = kinds.index(RunEnded)
            assert MessageSent not in kinds[end:], kinds


# -- 7. waiters outside the runtime end with an error when it closes ----------------


@af.workflow
async def rel_waits_forever(ctx: af.WorkflowContext, _: None) -> Any:
    return await ctx.recv()


@pytest.mark.parametrize("journal_kind", ["memory", "sqlite"])
async def test_waiters_outside_the_runtime_end_when_it_closes(
    journal_kind: str, tmp_path: Path
) -> None:
    journal = af.MemoryJournal() if journal_kind == "memory" else tmp_path / "runs.db"
    ended: list[str] = []

    async def expect_error(name: str, wait: Any) -> None:
        with pytest.raises(af.ActorflowError):
            await wait()
        ended.append(name)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer, af.Runtime(journal) as rt:
            handle = await rt.start(rel_waits_forever, None)

            async def read() -> None:
                async for _ in handle.read_stream("never"):
                    pass

            outer.start_soon(expect_error, "read_stream", read)
            outer.start_soon(expect_error, "get_event", lambda: handle.get_event("never"))
            outer.start_soon(expect_error, "result", handle.result)
            await anyio.wait_all_tasks_blocked()
    assert sorted(ended) == ["get_event", "read_stream", "result"]


# -- 8. handle.subscribe() taken as a run ends still ends --------------------------


@af.workflow
async def rel_quick(ctx: af.WorkflowContext, _: None) -> str:
    await ctx.put_stream("hi")
    return "done"


async def test_a_run_subscription_taken_as_the_run_ends_ends(tmp_path: Path) -> None:
    async with af.Runtime(tmp_path / "runs.db") as rt:
        for delay in range(12):
            handle = await rt.start(rel_quick, None)
            for _ in range(delay):
                await anyio.lowlevel.checkpoint()
            with anyio.fail_after(5):
                async with handle.subscribe() as sub:
                    async for _ in sub:
                        pass
            await handle.result()
        stats = rt.broker.statistics()  # type: ignore[attr-defined]
        assert stats.subscriptions == 0


# -- 9. an abandoned thread step cannot write after its attempt was given up ---------

_release = threading.Event()
_late_done = threading.Event()
_late_errors: list[BaseException] = []


# Real time, not virtual: a virtual clock jumps whenever the loop waits for a
# thread, so it would time attempt 1 out before its thread even started.
@af.step(timeout=0.5, retries=1, backoff=af.Backoff(initial=0.0, jitter=0.0))
def rel_slow_thread(ctx: af.ThreadStepContext, _: None) -> int:
    ctx.write_stream("out", f"attempt {ctx.attempt}")
    if ctx.attempt == 1:
        _release.wait(timeout=30)
        try:
            ctx.write_stream("out", "late")
        except BaseException as exc:
            _late_errors.append(exc)
        finally:
            _late_done.set()
    else:
        _late_done.wait(timeout=30)  # the late write is tried while attempt 2 runs
    return ctx.attempt


@af.workflow
async def rel_thread_flow(ctx: af.WorkflowContext, _: None) -> int:
    return await ctx.step(rel_slow_thread, None)


class _Failures(af.abc.Instrument):
    def __init__(self) -> None:
        self.failed = anyio.Event()

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        self.failed.set()


async def test_writes_of_a_timed_out_thread_attempt_are_refused() -> None:
    _release.clear()
    _late_done.clear()
    _late_errors.clear()
    failures = _Failures()
    with anyio.fail_after(20):
        async with af.Runtime(instrument=failures) as rt:
            handle = await rt.start(rel_thread_flow, None)
            await failures.failed.wait()  # attempt 1 timed out; its thread is abandoned
            _release.set()
            assert await handle.result() == 2
            entries = [(e.value, e.attempt) async for e in handle.read_stream_entries("out")]
    assert entries == [("attempt 1", 1), ("attempt 2", 2)]
    assert len(_late_errors) == 1
    assert isinstance(_late_errors[0], af.ActorflowError)
    assert "has ended" in str(_late_errors[0])


# -- 11. values that cannot be encoded because of their depth -------------------------


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@af.workflow
async def rel_writer(ctx: af.WorkflowContext, value: Any) -> str:
    try:
        await ctx.write_stream("out", value)
    except af.EncodeError as exc:
        return f"EncodeError: {exc}"
    return "written"


@pytest.mark.parametrize("make", [lambda: _deep(5000), _cyclic], ids=["deep", "cyclic"])
async def test_too_deep_or_cyclic_values_are_encode_errors(make: Any) -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.EncodeError, match="nested too deeply"):
            await rt.start(rel_writer, make())
        handle = await rt.start(rel_writer, None)
        await handle.result()
        outcome = await rt.run(rel_quick, None)
        assert outcome == "done"
        assert (await rt.list_runs())[0].status is af.RunStatus.COMPLETED

        @af.workflow(name="rel_deep_writer")
        async def deep_writer(ctx: af.WorkflowContext, _: None) -> str:
            try:
                await ctx.write_stream("out", make())
            except af.EncodeError as exc:
                return f"EncodeError: {exc}"
            return "written"

        assert (await rt.run(deep_writer, None)).startswith("EncodeError")
