"""Several runtimes on one SQLite journal: one writes and executes, the others ask it.

In one process here (the writer lock works the same between runtimes of one
process as between processes); tests/test_workers_processes.py does it with
real processes, SIGKILL included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import actorflow as af


@af.step
async def wk_shout(ctx: af.StepContext, text: str) -> str:
    for word in text.split():
        await ctx.write_stream("words", word)
    return text.upper()


@af.workflow
async def wk_flow(ctx: af.WorkflowContext, text: str) -> str:
    await ctx.set_event("waiting", True)
    approval = await ctx.recv("approve")
    await ctx.set_event("approved", approval)
    return await ctx.step(wk_shout, f"{text} {approval}")


@af.workflow
async def wk_two(ctx: af.WorkflowContext, _: None) -> list[Any]:
    return [await ctx.recv("in"), await ctx.recv("in")]


@af.workflow
async def wk_forever(ctx: af.WorkflowContext, _: None) -> Any:
    await ctx.set_event("waiting", True)
    return await ctx.recv("never")


async def test_a_second_runtime_starts_signals_and_reads_through_the_writer(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer, af.Runtime(db) as second:
        assert not writer.journal.readonly
        assert second.journal.readonly  # it waits to take over, meanwhile it asks
        handle = await second.start(wk_flow, "hello there", run_id="r1")
        assert await handle.status() in (af.RunStatus.PENDING, af.RunStatus.RUNNING)
        with anyio.fail_after(10):
            await second.send("r1", "yes", topic="approve")
            assert await handle.get_event("approved") == "yes"
            assert await handle.result() == "HELLO THERE YES"
            words = [w async for w in second.read_stream("r1", "words")]
        assert words == ["hello", "there", "yes"]
        assert await writer.handle("r1").result() == "HELLO THERE YES"
        # Starting it again from either is idempotent; with another workflow, a clash.
        assert (await second.start(wk_flow, "x", run_id="r1")).run_id == "r1"
        with pytest.raises(af.ValidationError, match="already exists"):
            await second.start(wk_forever, None, run_id="r1")


async def test_a_client_cancels_and_is_told_when_a_send_comes_too_late(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer, af.Runtime(db, execute=False) as client:
        handle = await client.start(wk_forever, None)
        with anyio.fail_after(10):
            await handle.get_event("waiting")
            await client.cancel(handle.run_id)
            assert await writer.handle(handle.run_id).status() is af.RunStatus.CANCELLED
            with pytest.raises(af.RunCancelled):
                await handle.result()
            with pytest.raises(af.RunFinished):
                await client.send(handle.run_id, "late", topic="never")
        with pytest.raises(af.RunNotFound):
            await client.send("nope", 1)


async def test_sends_with_one_key_are_delivered_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer, af.Runtime(db, execute=False) as client:
        handle = await writer.start(wk_two, None)
        with anyio.fail_after(10):
            await client.send(handle.run_id, "first", topic="in", key="k1")
            await client.send(handle.run_id, "again", topic="in", key="k1")
            await writer.send(handle.run_id, "and again", topic="in", key="k1")
            await writer.send(handle.run_id, "second", topic="in", key="k2")
            assert await handle.result() == ["first", "second"]
        history = await writer.journal.load_history(handle.run_id)
        assert history is not None
        sent = [r for r in history.records if isinstance(r, af.records.MessageSent)]
        assert [m.key for m in sent] == ["k1", "k2"]


async def test_a_waiting_runtime_takes_over_when_the_writer_goes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    opened, leave = anyio.Event(), anyio.Event()

    async def first_writer() -> None:
        async with af.Runtime(db):
            opened.set()
            await leave.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_writer)
        await opened.wait()
        async with af.Runtime(db) as second:
            assert second.journal.readonly
            handle = await second.start(wk_flow, "over", run_id="t1")
            with anyio.fail_after(10):
                await handle.get_event("waiting")
                leave.set()  # the writer leaves with the run waiting in recv
                # Asked of the writer, and applied by the second once it is the writer.
                await second.send("t1", "ok", topic="approve")
                assert await second.handle("t1").result() == "OVER OK"
            assert not second.journal.readonly


async def test_execute_false_needs_a_shared_journal() -> None:
    with pytest.raises(af.ValidationError, match="cannot be"):
        async with af.Runtime(execute=False):
            pass


async def test_every_waiter_of_a_reader_wakes_for_one_commit(tmp_path: Path) -> None:
    """Waiters share the reader's watch: the one that sees a commit wakes the others."""
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer, af.Runtime(db, execute=False) as client:
        handles = [await writer.start(wk_flow, f"w{i}") for i in range(4)]
        results: list[object] = []

        async def wait(handle: af.RunHandle[Any]) -> None:
            results.append(await client.handle(handle.run_id).result())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for handle in handles:
                    tg.start_soon(wait, handle)
                await anyio.wait_all_tasks_blocked()
                for handle in handles:  # one commit may end several waits
                    await writer.send(handle.run_id, "go", topic="approve")
        assert sorted(results) == [f"W{i} GO" for i in range(4)]


async def test_a_reader_may_come_before_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer, af.Runtime(db, execute=False) as client:
        with pytest.raises(af.RunNotFound):
            await client.handle("later").result()
        words: list[object] = []

        async def read() -> None:
            handle = await client.wait_for_run("later")
            words.extend([w async for w in handle.read_stream("words")])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()
                handle = await writer.start(wk_flow, "at last", run_id="later")
                await handle.send("now", topic="approve")
        assert words == ["at", "last", "now"]
        with pytest.raises(TimeoutError):
            await client.wait_for_run("never", timeout=0.05)


@af.step
async def wk_noop(ctx: af.StepContext, i: int) -> int:
    return i


@af.workflow
async def wk_many(ctx: af.WorkflowContext, n: int) -> int:
    for i in range(n):
        await ctx.step(wk_noop, i)
    return n


async def test_the_writers_own_commits_do_not_wake_its_request_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests ring a doorbell: a writer alone pays nothing per commit for serving them."""
    async with af.Runtime(tmp_path / "runs.db") as rt:
        requests = rt.journal.requests
        assert requests is not None
        looks: list[int] = []
        pending = type(requests).pending

        async def counted(self: Any) -> Any:
            looks.append(1)
            return await pending(self)

        monkeypatch.setattr(type(requests), "pending", counted)
        await anyio.wait_all_tasks_blocked()
        before = len(looks)
        assert await rt.run(wk_many, 200) == 200  # ~200 commits
        assert len(looks) - before <= 1  # (a backstop look may fall in between)
