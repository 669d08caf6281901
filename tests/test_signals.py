"""Signals (send/recv), events (set_event/get_event) and durable sleep."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actorflow as af


@af.workflow
async def inbox(ctx: af.WorkflowContext, topics: list[str]) -> list[object]:
    return [await ctx.recv(topic) for topic in topics]


async def test_messages_sent_before_recv_are_kept_in_order() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(inbox, ["a", "default", "a"])
        await handle.send(1, topic="a")
        await handle.send(2, topic="a")
        await rt.send(handle.run_id, {"x": 3})
        assert await handle.result() == [1, {"x": 3}, 2]


@pytest.mark.virtual_time
async def test_recv_timeout_raises_timeout_error() -> None:
    @af.workflow
    async def impatient(ctx: af.WorkflowContext, _: None) -> str:
        try:
            await ctx.recv("approval", timeout=30)
        except TimeoutError as exc:
            return str(exc)
        return "approved"

    async with af.Runtime() as rt:
        start = anyio.current_time()
        assert "no message on topic 'approval' within 30" in await rt.run(impatient)
        assert anyio.current_time() - start == pytest.approx(30, abs=1)


async def test_send_to_unknown_or_finished_run() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.RunNotFound):
            await rt.send("nope", 1)
        handle = await rt.start(inbox, [])
        await handle.result()
        with pytest.raises(af.RunFinished, match="COMPLETED"):
            await handle.send(1)
        with pytest.raises(af.ValidationError, match="invalid topic"):
            await handle.send(1, topic="no spaces")
        with pytest.raises(af.EncodeError):
            await rt.send(handle.run_id, object())


@af.step
async def report(ctx: af.StepContext, progress: int) -> None:
    await ctx.set_event("progress", progress)


@af.workflow
async def eventful(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.set_event("phase", "started")
    await ctx.step(report, 50)
    await ctx.recv()
    await ctx.set_event("phase", "done")


async def test_events_wait_until_set_and_return_the_latest() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(eventful)
        assert await handle.get_event("progress") == 50
        assert await handle.get_event("phase") == "started"
        await handle.send("go")
        await handle.result()
        assert await handle.get_event("phase") == "done"
        with pytest.raises(af.RunFinished, match="without setting event 'missing'"):
            await handle.get_event("missing")
        with pytest.raises(af.RunNotFound):
            await rt.get_event("nope", "phase")


@pytest.mark.virtual_time
async def test_get_event_timeout() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(inbox, ["never"])
        with pytest.raises(TimeoutError):
            await handle.get_event("unset", timeout=5)
        await handle.cancel()


@pytest.mark.virtual_time
async def test_sleep_waits_and_is_journaled() -> None:
    @af.workflow
    async def sleeper(ctx: af.WorkflowContext, seconds: float) -> None:
        await ctx.sleep(seconds)

    async with af.Runtime() as rt:
        start = anyio.current_time()
        handle = await rt.start(sleeper, 3600.0)
        await handle.result()
        assert anyio.current_time() - start == pytest.approx(3600, abs=1)
        history = await rt.journal.load_history(handle.run_id)
        assert history is not None
        assert any(isinstance(r, af.records.WaitStarted) for r in history.records)


async def test_recv_across_a_runtime_restart_is_exactly_once() -> None:
    journal = af.MemoryJournal()
    async with af.Runtime(journal) as rt:
        handle = await rt.start(inbox, ["t", "t", "t"])
        await handle.send("one", topic="t")
        await handle.send("two", topic="t")
        await anyio.wait_all_tasks_blocked()  # received both, waits for the third
    async with af.Runtime(journal) as rt:
        await rt.send(handle.run_id, "three", topic="t")
        assert await rt.handle(handle.run_id).result() == ["one", "two", "three"]


ops = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=20)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(script=ops)
def test_interleaved_sends_and_recvs_are_fifo_per_topic_exactly_once(
    script: list[tuple[str, bool]], backend: str
) -> None:
    """Random interleavings: the run receives each topic's messages in send order, once."""

    async def main() -> None:
        recv_topics = [topic for topic, _ in script]
        async with af.Runtime() as rt:
            handle = await rt.start(inbox, recv_topics)
            sent: dict[str, list[str]] = {}
            for i, (topic, pause) in enumerate(script):
                value = f"{topic}{i}"
                sent.setdefault(topic, []).append(value)
                await handle.send(value, topic=topic)
                if pause:
                    await anyio.wait_all_tasks_blocked()
            received = await handle.result()
        expected: dict[str, list[str]] = {}
        for topic, value in zip(recv_topics, received, strict=True):
            expected.setdefault(topic, []).append(str(value))
        assert expected == sent

    anyio.run(main, backend=backend)


async def test_get_event_through_a_read_only_journal(tmp_path: Path) -> None:
    """A reader that only has the file (as another process would) sees events as set."""
    db = tmp_path / "runs.db"
    async with af.Runtime(db) as writer:
        handle = await writer.start(eventful)
        async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as reader:
            with anyio.fail_after(10):
                assert await reader.get_event(handle.run_id, "progress") == 50
            await handle.send("go")
            await handle.result()
            with anyio.fail_after(10):
                assert await reader.get_event(handle.run_id, "phase") == "done"  # the latest
