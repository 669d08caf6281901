"""NATSBroker against a real nats-server: wire format, remote subscriptions, overflow, restarts.

Two runtimes in one test stand for two processes: each has its own broker and
so its own NATS connection (a connection never receives its own messages).
The server comes from ``ACTORFLOW_TEST_NATS`` (see tests/_services.py); the
restart test runs a private server on a free port.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from _services import NATSServer

import actorflow as af

pytestmark = pytest.mark.timeout(60)

# -- workflows -------------------------------------------------------------------------------

_gates: dict[str, anyio.Event] = {}


@pytest.fixture(autouse=True)
def _fresh_gates() -> None:
    _gates.clear()


def gate(name: str) -> anyio.Event:
    return _gates.setdefault(name, anyio.Event())


@af.step
async def nats_emit(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.put_stream(i)
    return n


@af.step(retries=1, backoff=af.Backoff(initial=0, max=0, jitter=0))
async def nats_flaky(ctx: af.StepContext, _: None) -> None:
    await ctx.put_stream(f"attempt {ctx.attempt}")
    if ctx.attempt == 1:
        raise RuntimeError("once")


@af.workflow
async def nats_retried(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.step(nats_flaky, None)


@af.workflow
async def nats_mixed(ctx: af.WorkflowContext, n: int) -> int:
    await ctx.put_stream(b"\x00raw")
    await ctx.put_stream("héllo")
    await ctx.put_stream({"a": [1, 2.5, None, True]})
    await ctx.step(nats_emit, n)
    await ctx.put_stream(["done"])
    return n


@af.workflow
async def nats_count(ctx: af.WorkflowContext, n: int) -> int:
    for i in range(n):
        await ctx.put_stream(i)
    return n


@af.workflow
async def nats_phases(ctx: af.WorkflowContext, sizes: list[int]) -> int:
    """Publish in phases; before each phase after the first, wait for the test's go."""
    seq = 0
    for k, size in enumerate(sizes):
        if k:
            await gate(f"{ctx.run_id}-{k}").wait()
        for _ in range(size):
            seq += 1
            await ctx.put_stream(seq)
        gate(f"{ctx.run_id}-published-{k}").set()
    return seq


# -- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def runtimes(url: str, **options: Any) -> AsyncIterator[tuple[af.Runtime, af.Runtime]]:
    """A runtime that executes runs and one that only follows them, each with its NATSBroker."""
    async with (
        af.Runtime(broker=af.NATSBroker(url, **options)) as executing,
        af.Runtime(broker=af.NATSBroker(url, **options)) as following,
    ):
        yield executing, following


def unique(name: str) -> str:
    """A run id no other test session on the same server uses."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, polling (state another thread changes)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - no event to wait on
            await anyio.sleep(0.005)


def read_plain_nats(url: str, subjects: list[str], until: str) -> tuple[threading.Event, list[Any]]:
    """Subscribe with nats-py alone (no actorflow) in a thread of its own until ``until`` arrives.

    Returns an event set once subscribed and the list the messages are appended to
    as ``(subject, headers, payload)``; the thread ends after the ``until`` message.
    """
    import nats

    ready, got = threading.Event(), []

    async def main() -> None:
        nc = await nats.connect(url)
        done = asyncio.Event()

        async def on_message(msg: Any) -> None:
            got.append((msg.subject, msg.headers, msg.data))
            if msg.subject == until:
                done.set()

        for subject in subjects:
            await nc.subscribe(subject, cb=on_message)
        await nc.flush()
        ready.set()
        await asyncio.wait_for(done.wait(), 30)
        await nc.close()

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    return ready, got


# -- the wire format -------------------------------------------------------------------------


async def test_a_plain_nats_subscriber_gets_every_put_stream_in_order(nats_url: str) -> None:
    run = unique("plain")
    ready, got = read_plain_nats(
        nats_url, [f"stream.{run}.>", f"actorflow.run_ended.{run}"], f"actorflow.run_ended.{run}"
    )
    with anyio.fail_after(20):
        await anyio.to_thread.run_sync(ready.wait)
        async with af.Runtime(broker=af.NATSBroker(nats_url)) as rt:
            await (await rt.start(nats_mixed, 50, run_id=run)).result()
        await eventually(lambda: any(s == f"actorflow.run_ended.{run}" for s, _, _ in got))

    def decode(headers: dict[str, str], payload: bytes) -> Any:
        encoding = headers["Actorflow-Encoding"]
        if encoding == "bytes":
            return payload
        if encoding == "utf-8":
            return payload.decode("utf-8")
        assert encoding == "msgpack"
        return msgspec.msgpack.decode(payload)

    body = [(h, decode(h, p)) for s, h, p in got if s == f"stream.{run}.main"]
    step = [(h, decode(h, p)) for s, h, p in got if s == f"stream.{run}.nats_emit"]
    assert [v for _, v in body] == [b"\x00raw", "héllo", {"a": [1, 2.5, None, True]}, ["done"]]
    assert [h["Actorflow-Encoding"] for h, _ in body] == ["bytes", "utf-8", "msgpack", "msgpack"]
    assert [v for _, v in step] == list(range(50))
    for stream in (body, step):
        assert [int(h["Actorflow-Seq"]) for h, _ in stream] == list(range(1, len(stream) + 1))
        assert len({h["Actorflow-Origin"] for h, _ in stream}) == 1
    # Step messages say their attempt; the workflow body's have none.
    assert all(h["Actorflow-Attempt"] == "1" for h, _ in step)
    assert all("Actorflow-Attempt" not in h for h, _ in body)
    # The run's end comes last and carries each step's last seq.
    subject, headers, payload = got[-1]
    assert subject == f"actorflow.run_ended.{run}"
    assert decode(headers, payload) == {"seqs": {"main": 4, "nats_emit": 50}}


async def test_a_retried_step_says_which_attempt_published(nats_url: str) -> None:
    run = unique("retry")
    ready, got = read_plain_nats(
        nats_url, [f"stream.{run}.>", f"actorflow.run_ended.{run}"], f"actorflow.run_ended.{run}"
    )
    with anyio.fail_after(20):
        await anyio.to_thread.run_sync(ready.wait)
        async with af.Runtime(broker=af.NATSBroker(nats_url)) as rt:
            await (await rt.start(nats_retried, None, run_id=run)).result()
        await eventually(lambda: any(s == f"actorflow.run_ended.{run}" for s, _, _ in got))
    step = [(h["Actorflow-Seq"], h["Actorflow-Attempt"], p) for s, h, p in got[:-1]]
    assert step == [("1", "1", b"attempt 1"), ("2", "2", b"attempt 2")]


# -- remote subscriptions --------------------------------------------------------------------


async def test_a_remote_handle_subscribe_receives_the_run_and_ends_with_it(nats_url: str) -> None:
    async with runtimes(nats_url) as (executing, following):
        run = unique("remote")
        sub = following.handle(run).subscribe()
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await executing.start(nats_mixed, 100, run_id=run)
            got = [msg async for msg in sub]
    assert [m.data for m in got if m.step_id == "nats_emit"] == list(range(100))
    assert [m.data for m in got if m.step_id == "main"] == [
        b"\x00raw",
        "héllo",
        {"a": [1, 2.5, None, True]},
        ["done"],
    ]
    for step_id in ("main", "nats_emit"):
        seqs = [m.seq for m in got if m.step_id == step_id]
        assert seqs == list(range(1, len(seqs) + 1))
    assert all(m.dropped_before == 0 for m in got)
    assert {m.subject for m in got} == {f"stream.{run}.main", f"stream.{run}.nats_emit"}
    assert sub.dropped == 0


async def test_local_and_remote_pattern_subscribers_get_the_same_messages(nats_url: str) -> None:
    async with runtimes(nats_url) as (executing, following):
        run = unique("copies")
        here = executing.subscribe(f"stream.{run}.>")
        there = following.subscribe(f"stream.{run}.>")
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await (await executing.start(nats_mixed, 3, run_id=run)).result()
            await eventually(lambda: there.statistics().buffered == 7)
        mine = [await anext(here) for _ in range(7)]
        theirs = [await anext(there) for _ in range(7)]
        assert [m.data for m in mine] == [m.data for m in theirs]
        assert [(m.subject, m.seq) for m in mine] == [(m.subject, m.seq) for m in theirs]
        here.close()
        there.close()


async def test_a_catch_all_pattern_gets_stream_messages_only(nats_url: str) -> None:
    async with runtimes(nats_url) as (executing, following):
        run_id = unique("wide")
        everything = following.subscribe(">")
        run = following.subscribe_run(run_id)
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await executing.start(nats_count, 3, run_id=run_id)
            assert [m.data async for m in run] == [0, 1, 2]
            # The run's end came after its messages: the catch-all has them all by now.
            got = [await anext(everything) for _ in range(everything.statistics().buffered)]
        everything.close()
    # Other test sessions may share the server: keep what names this run (the
    # run's end, on actorflow.run_ended.<run>, must not pass as a message).
    got = [m for m in got if run_id in m.subject.split(".")]
    assert [(m.subject, m.data) for m in got] == [(f"stream.{run_id}.main", i) for i in range(3)]


async def test_subscribing_to_a_run_that_already_ended_finishes_at_once(nats_url: str) -> None:
    async with af.Runtime(broker=af.NATSBroker(nats_url)) as rt:
        run = unique("over")
        await (await rt.start(nats_count, 3, run_id=run)).result()
        with anyio.fail_after(10):
            assert [m async for m in rt.handle(run).subscribe()] == []


async def test_a_remote_subscription_to_one_step_ends_with_the_run(nats_url: str) -> None:
    async with runtimes(nats_url) as (executing, following):
        run = unique("one")
        sub = following.subscribe_run(run, "nats_emit")
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await executing.start(nats_mixed, 10, run_id=run)
            assert [m.data async for m in sub] == list(range(10))


# -- overflow across the bridge --------------------------------------------------------------


async def _published_then_read(nats_url: str, name: str, n: int, **options: Any) -> Any:
    run_id = unique(name)
    async with runtimes(nats_url) as (executing, following):
        sub = following.subscribe_run(run_id, **options)
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await (await executing.start(nats_count, n, run_id=run_id)).result()
            if options.get("overflow") != "block":
                # Every message has arrived once the run's end has.
                await eventually(lambda: sub.statistics().closed)
            got: list[af.Message] = []
            error: BaseException | None = None
            try:
                async for msg in sub:
                    got.append(msg)
            except af.SlowConsumer as exc:
                error = exc
        return got, sub.statistics(), error


async def test_drop_newest_across_the_bridge_keeps_the_first_messages(nats_url: str) -> None:
    got, stats, _ = await _published_then_read(
        nats_url, "newest", 100, buffer=10, overflow="drop_newest"
    )
    assert [m.seq for m in got] == list(range(1, 11))
    assert stats.dropped == 90
    assert stats.unreported_drops == 90


async def test_drop_oldest_across_the_bridge_keeps_the_last_and_reports_the_rest(
    nats_url: str,
) -> None:
    got, stats, _ = await _published_then_read(
        nats_url, "oldest", 100, buffer=10, overflow="drop_oldest"
    )
    assert [m.seq for m in got] == list(range(91, 101))
    assert got[0].dropped_before == 90
    assert stats.dropped == 90


async def test_error_across_the_bridge_raises_slow_consumer(nats_url: str) -> None:
    got, _, error = await _published_then_read(nats_url, "error", 100, buffer=10, overflow="error")
    assert [m.seq for m in got] == list(range(1, 11))
    assert isinstance(error, af.SlowConsumer)


async def test_block_across_the_bridge_loses_nothing_to_a_slow_reader(nats_url: str) -> None:
    got, stats, _ = await _published_then_read(nats_url, "block", 300, buffer=2, overflow="block")
    assert [m.seq for m in got] == list(range(1, 301))
    assert stats.dropped == 0


async def test_a_full_outbound_buffer_drops_and_counts_never_blocks(nats_url: str) -> None:
    broker = af.NATSBroker(nats_url, outbound_buffer=1)
    async with af.Runtime(broker=broker) as rt:
        with anyio.fail_after(20):
            await (await rt.start(nats_count, 2000, run_id=unique("full"))).result()
        stats = broker.statistics()
    assert stats.outbound_dropped > 0
    # Every publish (and the run's end) is sent, dropped, or still queued.
    assert stats.published + stats.outbound_dropped + stats.outbound_buffered == 2000 + 1


async def test_a_full_inbound_hand_off_shows_as_drops_in_seq_order(nats_url: str) -> None:
    async with (
        af.Runtime(broker=af.NATSBroker(nats_url)) as executing,
        af.Runtime(broker=af.NATSBroker(nats_url, inbound_buffer=1)) as following,
    ):
        run = unique("inbound")
        # drop_newest places each loss exactly; drop_oldest may report a loss
        # found while messages wait in the buffer on the first of them.
        sub = following.subscribe_run(run, buffer=10_000, overflow="drop_newest")
        await following.broker.synchronize()
        with anyio.fail_after(20):
            await executing.start(nats_count, 5000, run_id=run)
            got = [msg async for msg in sub]
        stats = following.broker.statistics()  # type: ignore[attr-defined]
    seqs = [m.seq for m in got]
    assert seqs == sorted(set(seqs))
    assert [m.data for m in got] == [s - 1 for s in seqs]
    # Every message is delivered or counted as lost; losses before a delivered
    # message are reported on it, the ones at the very end (known from the
    # run's end) only in the counters.
    assert len(got) + sub.dropped == 5000
    for prev, msg in itertools.pairwise(got):
        assert msg.dropped_before == msg.seq - prev.seq - 1
    assert stats.lost == sub.dropped


# -- the server goes away --------------------------------------------------------------------


async def test_a_server_restart_shows_as_drops_never_as_reordering_or_duplicates(
    nats_server: NATSServer,
) -> None:
    # The follower reconnects more slowly than the executor, so what the executor
    # buffered while the server was down reaches the server before the follower
    # is back: those messages are lost to the follower.
    executing_broker = af.NATSBroker(nats_server.url, reconnect_wait=0.05)
    following_broker = af.NATSBroker(nats_server.url, reconnect_wait=1.0)
    run_id = "restart"
    async with (
        af.Runtime(broker=executing_broker) as executing,
        af.Runtime(broker=following_broker) as following,
    ):
        sub = following.subscribe_run(run_id, buffer=10_000)
        await following_broker.synchronize()
        with anyio.fail_after(30):
            await executing.start(nats_phases, [50, 50, 50], run_id=run_id)
            await gate(f"{run_id}-published-0").wait()
            await eventually(lambda: sub.statistics().buffered == 50)

            await anyio.to_thread.run_sync(nats_server.kill)
            await eventually(lambda: not executing_broker.statistics().connected)
            await eventually(lambda: not following_broker.statistics().connected)
            gate(f"{run_id}-1").set()
            await gate(f"{run_id}-published-1").wait()

            await anyio.to_thread.run_sync(nats_server.start)
            await eventually(lambda: executing_broker.statistics().connected)
            await executing_broker.synchronize()  # phase 1 has reached the server
            follower_was_away = not following_broker.statistics().connected
            await eventually(lambda: following_broker.statistics().connected)
            await following_broker.synchronize()
            gate(f"{run_id}-2").set()
            got = [msg async for msg in sub]

    seqs = [m.data for m in got]
    assert [m.seq for m in got] == seqs
    assert seqs == sorted(set(seqs)), "reordered or duplicated"
    assert seqs[:50] == list(range(1, 51))
    assert seqs[-50:] == list(range(101, 151))
    # Every loss is reported (under drop_oldest, with phase 0 still buffered,
    # on the first buffered message: the count is exact, seq shows the place).
    lost = sum(m.dropped_before for m in got)
    assert lost == 150 - len(got)
    if follower_was_away:
        assert lost > 0
    assert following_broker.statistics().reconnects >= 1


async def test_a_server_that_is_not_there_fails_the_runtime_start_clearly() -> None:
    pytest.importorskip("nats")
    broker = af.NATSBroker("nats://127.0.0.1:1", connect_timeout=0.5, reconnect_wait=0.05)
    with anyio.fail_after(20), pytest.raises(af.BrokerError, match="cannot connect"):
        async with af.Runtime(broker=broker):
            pass
