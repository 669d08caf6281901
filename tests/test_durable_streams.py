"""Durable streams through the public API (SPEC §4), on both backends and both journals."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _gates import gate, open_gate, wait_reached
from hypothesis import given, settings
from hypothesis import strategies as st

import actorflow as af


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> af.Journal:
    if request.param == "memory":
        return af.MemoryJournal()
    return af.SQLiteJournal(tmp_path / "streams.db")


async def collect(it: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in it]


# -- workflows -----------------------------------------------------------------------


@af.step(name="ds_produce")
async def produce(ctx: af.StepContext, spec: dict[str, Any]) -> int:
    n, pause = spec["n"], spec.get("pause")
    for i in range(n):
        if i == pause:
            await ctx.flush()
            await gate(ctx.run_id)
        await ctx.write_stream("out", i)
    return n


@af.workflow(name="ds_producer")
async def producer(ctx: af.WorkflowContext, spec: dict[str, Any]) -> int:
    return await ctx.step(produce, spec)


@af.step(name="ds_tag")
async def tag(ctx: af.StepContext, label: str) -> None:
    await ctx.write_stream("log", label)


@af.workflow(name="ds_mixed")
async def mixed(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.write_stream("log", "body-1")
    await ctx.step(tag, "tag-1")
    await ctx.step(tag, "tag-2")
    await ctx.write_stream("log", "body-2")
    await ctx.close_stream("log")


@af.step(name="ds_flaky", retries=2, backoff=af.Backoff(initial=0.0, jitter=0.0))
async def flaky(ctx: af.StepContext, _: None) -> str:
    await ctx.write_stream("out", f"a{ctx.attempt}-0")
    await ctx.write_stream("out", f"a{ctx.attempt}-1")
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails after writing")
    return "ok"


@af.workflow(name="ds_retrying")
async def retrying(ctx: af.WorkflowContext, _: None) -> str:
    return await ctx.step(flaky)


# -- replay, then live ----------------------------------------------------------------


async def test_readers_before_during_and_after_the_run_see_the_same_entries(
    journal: af.Journal,
) -> None:
    async with af.Runtime(journal) as rt, anyio.create_task_group() as tg:
        handle = await rt.start(producer, {"n": 40, "pause": 25}, run_id="bda")
        results: dict[str, list[af.StreamEntry]] = {}

        async def read(name: str, from_offset: int = 0) -> None:
            results[name] = await collect(
                handle.read_stream_entries("out", from_offset=from_offset)
            )

        tg.start_soon(read, "before")  # the run has written nothing yet
        await wait_reached("bda")  # 25 entries committed
        assert [v async for v in _first(handle.read_stream("out"), 25)] == list(range(25))
        tg.start_soon(read, "during")
        tg.start_soon(read, "during-from-20", 20)
        await anyio.sleep(0.01)
        open_gate("bda")
        assert await handle.result() == 40
        await read("after")
        await read("after-from-38", 38)
        await read("after-past-the-end", 99)

    expected = [af.StreamEntry(i, i, "ds_produce", 1) for i in range(40)]
    assert results["before"] == results["during"] == results["after"] == expected
    assert results["during-from-20"] == expected[20:]
    assert results["after-from-38"] == expected[38:]
    assert results["after-past-the-end"] == []
    assert [v async for v in rt_values(journal, "bda", "out", 10)] == list(range(10, 40))


async def _first(it: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    """The first ``n`` items of ``it``, closing it afterwards."""
    try:
        for _ in range(n):
            yield await anext(it)
    finally:
        await it.aclose()  # type: ignore[attr-defined]


async def rt_values(journal: af.Journal, run_id: str, key: str, offset: int) -> AsyncIterator[Any]:
    """``Runtime.read_stream`` of a finished run, in a runtime opened again on ``journal``."""
    async with af.Runtime(journal) as rt:
        async for value in rt.read_stream(run_id, key, from_offset=offset):
            yield value


async def test_entries_name_the_step_and_the_body(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await rt.start(mixed)
        entries = await collect(handle.read_stream_entries("log"))
        await handle.result()
    assert entries == [
        af.StreamEntry(0, "body-1", "main", 1),
        af.StreamEntry(1, "tag-1", "ds_tag", 1),
        af.StreamEntry(2, "tag-2", "ds_tag-2", 1),
        af.StreamEntry(3, "body-2", "main", 1),
    ]


async def test_a_close_is_not_a_value(journal: af.Journal) -> None:
    awkward: list[Any] = [None, "", 0, False, [], {}, b"", "__close__", {"closed": True}]

    @af.workflow(name="ds_awkward")
    async def writes_awkward(ctx: af.WorkflowContext, values: list[Any]) -> None:
        for value in values:
            await ctx.write_stream("odd", value)

    async with af.Runtime(journal) as rt:
        handle = await rt.start(writes_awkward, awkward)
        assert await collect(handle.read_stream("odd")) == awkward
        await handle.result()


async def test_a_retried_attempt_appends_after_the_failed_one(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await rt.start(retrying)
        assert await handle.result() == "ok"
        entries = await collect(handle.read_stream_entries("out"))
    assert entries == [
        af.StreamEntry(0, "a1-0", "ds_flaky", 1),
        af.StreamEntry(1, "a1-1", "ds_flaky", 1),
        af.StreamEntry(2, "a2-0", "ds_flaky", 2),
        af.StreamEntry(3, "a2-1", "ds_flaky", 2),
    ]


async def test_flush_commits_what_a_step_queued(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await rt.start(producer, {"n": 10, "pause": 6}, run_id="flush")
        await wait_reached("flush")
        # The step flushed and waits: its six writes are committed, and readable.
        page = await rt.journal.read_stream("flush", "out")
        assert [e.value for e in page.entries] == list(range(6))
        assert not page.closed
        open_gate("flush")
        await handle.result()


# -- closing ----------------------------------------------------------------------------


async def test_a_completed_run_closes_its_open_streams(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await rt.start(producer, {"n": 3})
        assert await collect(handle.read_stream("out")) == [0, 1, 2]  # ends by itself
        assert await handle.status() is af.RunStatus.COMPLETED


async def test_a_failed_run_closes_its_open_streams(journal: af.Journal) -> None:
    @af.workflow(name="ds_fails")
    async def fails(ctx: af.WorkflowContext, _: None) -> None:
        await ctx.write_stream("out", "partial")
        await ctx.step(produce, {"n": 2})
        raise ValueError("the body gives up")

    async with af.Runtime(journal) as rt:
        handle = await rt.start(fails)
        assert await collect(handle.read_stream("out")) == ["partial", 0, 1]
        assert await handle.status() is af.RunStatus.FAILED
        with pytest.raises(af.RunFailed, match="the body gives up"):
            await handle.result()


async def test_a_cancelled_run_closes_its_open_streams(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt, anyio.create_task_group() as tg:
        handle = await rt.start(producer, {"n": 5, "pause": 3}, run_id="cancelled")
        seen: list[int] = []

        async def follow() -> None:
            async for value in handle.read_stream("out"):
                seen.append(value)

        tg.start_soon(follow)
        await wait_reached("cancelled")
        await handle.cancel()  # returns once the run has ended
        assert await handle.status() is af.RunStatus.CANCELLED
    assert seen == [0, 1, 2]  # the follower ended with the run
    with pytest.raises(af.RunCancelled):
        async with af.Runtime(journal) as rt:
            await rt.handle("cancelled").result()


async def test_readers_stop_at_close_while_the_run_goes_on(journal: af.Journal) -> None:
    @af.workflow(name="ds_closes_early")
    async def closes_early(ctx: af.WorkflowContext, _: None) -> str:
        await ctx.write_stream("early", "only")
        await ctx.close_stream("early")
        await ctx.close_stream("early")  # closing again does nothing
        await gate(ctx.run_id)
        return "done"

    async with af.Runtime(journal) as rt:
        handle = await rt.start(closes_early, run_id="early")
        await wait_reached("early")
        with anyio.fail_after(5):  # the close is queued, not flushed: the reader waits for it
            assert await collect(handle.read_stream("early")) == ["only"]
        assert await handle.status() is af.RunStatus.RUNNING
        open_gate("early")
        assert await handle.result() == "done"


async def test_writing_after_close_raises_stream_closed(journal: af.Journal) -> None:
    @af.step(name="ds_late_writer")
    async def late_writer(ctx: af.StepContext, _: None) -> str:
        try:
            await ctx.write_stream("s", "from a step")
        except af.StreamClosed as exc:
            return str(exc)
        return "written"

    @af.workflow(name="ds_writes_after_close")
    async def writes_after_close(ctx: af.WorkflowContext, _: None) -> list[str]:
        await ctx.write_stream("s", "first")
        await ctx.close_stream("s")
        errors = [await ctx.step(late_writer)]
        try:
            await ctx.write_stream("s", "from the body")
        except af.StreamClosed as exc:
            errors.append(str(exc))
        return errors

    async with af.Runtime(journal) as rt:
        handle = await rt.start(writes_after_close)
        errors = await handle.result()
        assert await collect(handle.read_stream("s")) == ["first"]
    assert len(errors) == 2
    assert all("'s'" in e and "is closed" in e for e in errors), errors
    assert issubclass(af.StreamClosed, af.ActorflowError)


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "slash/no", 5, None])
async def test_bad_keys_are_value_errors(journal: af.Journal, key: Any) -> None:
    @af.workflow(name="ds_bad_key")
    async def bad_key(ctx: af.WorkflowContext, key: Any) -> str:
        try:
            await ctx.write_stream(key, "v")
        except ValueError as exc:
            return type(exc).__name__
        return "written"

    async with af.Runtime(journal) as rt:
        handle = await rt.start(bad_key, key)
        assert await handle.result() == "ValidationError"
        with pytest.raises(ValueError, match="invalid stream key"):
            await collect(handle.read_stream(key))
        with pytest.raises(ValueError, match="from_offset"):
            await collect(handle.read_stream("ok", from_offset=-1))


async def test_a_non_encodable_value_is_a_type_error_and_nothing_is_written(
    journal: af.Journal,
) -> None:
    @af.step(name="ds_bad_value")
    async def bad_value(ctx: af.StepContext, _: None) -> str:
        try:
            await ctx.write_stream("vals", object())
        except TypeError as exc:
            return type(exc).__name__
        return "written"

    @af.workflow(name="ds_bad_values")
    async def bad_values(ctx: af.WorkflowContext, _: None) -> list[str]:
        names = [await ctx.step(bad_value)]
        try:
            await ctx.write_stream("vals", {1, 2, 3j})
        except TypeError as exc:
            names.append(type(exc).__name__)
        await ctx.write_stream("vals", "fine")
        return names

    async with af.Runtime(journal) as rt:
        handle = await rt.start(bad_values)
        assert await handle.result() == ["EncodeError", "EncodeError"]
        assert await collect(handle.read_stream_entries("vals")) == [
            af.StreamEntry(0, "fine", "main", 1)
        ]


async def test_an_unknown_run_is_run_not_found(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        with pytest.raises(af.RunNotFound):
            await collect(rt.read_stream("no-such-run", "out"))
        with pytest.raises(af.RunNotFound):
            await collect(rt.handle("no-such-run").read_stream_entries("out"))


async def test_a_stream_that_was_never_written_ends_with_its_run(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await rt.start(producer, {"n": 2})
        assert await collect(handle.read_stream("never")) == []
        await handle.result()


# -- many readers at random moments agree with the committed log --------------------------


@af.step(name="ds_ticker")
async def ticker(ctx: af.StepContext, spec: dict[str, Any]) -> None:
    for i in range(spec["n"]):
        await ctx.write_stream("ticks", i)
        if i in spec["flush_at"]:
            await ctx.flush()
        marks = written.get(ctx.run_id)
        if marks is not None:
            marks[i + 1].set()
        await anyio.lowlevel.checkpoint()


@af.workflow(name="ds_ticking")
async def ticking(ctx: af.WorkflowContext, spec: dict[str, Any]) -> None:
    await ctx.write_stream("ticks", "start")
    await ctx.step(ticker, spec)
    await ctx.write_stream("ticks", "end")


written: dict[str, list[anyio.Event]] = {}

readers_strategy = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 40), st.just(-1)),  # start after this many writes; -1: at the end
        st.integers(0, 45),  # from_offset
        st.booleans(),  # entries (True) or values
    ),
    min_size=1,
    max_size=12,
)


async def scenario(
    kind: str, n: int, flush_at: list[int], readers: list[tuple[int, int, bool]]
) -> tuple[list[af.StreamEntry], list[list[Any]]]:
    """Run ``ticking`` with readers starting at the given moments; return the log and reads."""
    with tempfile.TemporaryDirectory() as directory:
        journal = (
            af.MemoryJournal() if kind == "memory" else af.SQLiteJournal(Path(directory) / "j.db")
        )
        run_id = f"ticks-{kind}"
        marks = written[run_id] = [anyio.Event() for _ in range(n + 1)]
        marks[0].set()
        results: list[list[Any]] = [[] for _ in readers]
        try:
            async with af.Runtime(journal) as rt, anyio.create_task_group() as tg:
                handle = await rt.start(ticking, {"n": n, "flush_at": flush_at}, run_id=run_id)

                async def read(i: int, after: int, offset: int, entries: bool) -> None:
                    if after >= 0:
                        await marks[min(after, n)].wait()
                    else:
                        await handle.result()
                    if entries:
                        it = handle.read_stream_entries("ticks", from_offset=offset)
                    else:
                        it = rt.read_stream(run_id, "ticks", from_offset=offset)
                    results[i] = await collect(it)

                for i, (after, offset, entries) in enumerate(readers):
                    tg.start_soon(read, i, after, offset, entries)
                await handle.result()
            async with af.Runtime(journal) as rt:
                log = await collect(rt.read_stream_entries(run_id, "ticks"))
        finally:
            written.pop(run_id, None)
    return log, results


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(0, 40),
    flush_at=st.lists(st.integers(0, 40), max_size=4),
    readers=readers_strategy,
)
async def test_concurrent_readers_agree_with_the_committed_log(
    n: int, flush_at: list[int], readers: list[tuple[int, int, bool]]
) -> None:
    outcomes = {kind: await scenario(kind, n, flush_at, readers) for kind in ("memory", "sqlite")}
    memory_log, _ = outcomes["memory"]
    values = ["start", *range(n), "end"]
    assert [(e.offset, e.value) for e in memory_log] == list(enumerate(values))
    for log, results in outcomes.values():
        assert log == memory_log  # the two journals agree
        for (_, offset, entries), got in zip(readers, results, strict=True):
            expected = log[offset:]
            assert got == (expected if entries else [e.value for e in expected])
