"""The live-stream broker: delivery order, overflow policies, accounting, lifecycle."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorflow import SlowConsumer, ValidationError
from actorflow._live import Broker, Message, Overflow, Subscription

POLICIES: tuple[Overflow, ...] = ("drop_oldest", "drop_newest", "block", "error")


@asynccontextmanager
async def open_broker(batching: bool) -> AsyncIterator[Broker]:
    """A broker, with its wake-up batching task running or not."""
    broker = Broker()
    async with anyio.create_task_group() as tg:
        if batching:
            await tg.start(broker.run)
        yield broker
        broker.close()
        tg.cancel_scope.cancel()


@pytest.fixture(params=[False, True], ids=["immediate", "batching"])
def batching(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def drain(sub: Subscription) -> list[Message]:
    return [msg async for msg in sub]


def check_accounting(sub: Subscription, received: list[Message], offered: int) -> None:
    stats = sub.statistics()
    assert stats.delivered == len(received)
    assert stats.delivered + stats.dropped + stats.buffered + stats.discarded == offered
    assert sum(m.dropped_before for m in received) == stats.dropped - stats.unreported_drops
    assert stats.dropped == sub.dropped


def check_order(received: list[Message]) -> None:
    """Per step: strictly increasing seq (FIFO, no duplicates)."""
    last: dict[str, int] = {}
    for msg in received:
        assert msg.seq > last.get(msg.subject, 0), (msg, last)
        last[msg.subject] = msg.seq


# -- a reference model, driven by hypothesis ---------------------------------


class ModelSubscription:
    """What one subscription should do, written as plainly as possible."""

    def __init__(self, pattern: str, size: int, overflow: Overflow) -> None:
        self.pattern, self.size, self.overflow = pattern, size, overflow
        self.buffer: list[list[Any]] = []  # [step, seq, dropped_before]
        self.tail = 0
        self.state = "open"
        self.dropped = 0

    def matches(self, step: str) -> bool:
        return self.pattern == "stream.>" or self.pattern.endswith("." + step)

    def full(self) -> bool:
        return self.state == "open" and len(self.buffer) >= self.size

    def offer(self, step: str, seq: int) -> None:
        if self.state != "open":
            return
        if len(self.buffer) >= self.size:
            self.dropped += 1
            if self.overflow == "drop_oldest":
                evicted = self.buffer.pop(0)
                if self.buffer:
                    self.buffer[0][2] += evicted[2] + 1
                else:
                    self.tail += evicted[2] + 1
            else:
                assert self.overflow in ("drop_newest", "error")
                self.tail += 1
                if self.overflow == "error":
                    self.state = "failed"
                return
        self.buffer.append([step, seq, self.tail])
        self.tail = 0


# Publishing dominates; finish and close are rare, or little would be left to test.
ops = st.lists(
    st.tuples(
        st.sampled_from(["publish"] * 6 + ["take"] * 3 + ["finish", "close"]),
        st.integers(0, 2),
        st.integers(0, 4),
    ),
    max_size=60,
)
sub_specs = st.lists(
    st.tuples(
        st.sampled_from(["stream.>", "stream.run.s0", "stream.*.s1"]),
        st.integers(1, 4),
        st.sampled_from(POLICIES),
    ),
    min_size=1,
    max_size=3,
)


@given(sub_specs, ops, st.booleans())
def test_broker_agrees_with_the_model(
    specs: list[tuple[str, int, Overflow]], script: list[tuple[str, int, Any]], batch: bool
) -> None:
    async def main() -> None:
        async with open_broker(batch) as broker:
            pubs = [broker.publisher("run", f"s{i}") for i in range(3)]
            subs = [broker.subscribe(p, buffer=n, overflow=o) for p, n, o in specs]
            models = [ModelSubscription(p, n, o) for p, n, o in specs]
            got: list[list[Message]] = [[] for _ in subs]
            offered = [0 for _ in subs]
            seqs = [0, 0, 0]
            for op, i, arg in script:
                if op == "publish":
                    step = f"s{i}"
                    targets = [k for k, m in enumerate(models) if m.matches(step)]
                    if any(models[k].overflow == "block" and models[k].full() for k in targets):
                        with pytest.raises(anyio.WouldBlock):
                            pubs[i].publish_nowait(step)
                        assert pubs[i].seq == seqs[i]
                        continue
                    seqs[i] += 1
                    if arg % 2:
                        await pubs[i].publish(step)
                    else:
                        pubs[i].publish_nowait(step)
                    assert pubs[i].seq == seqs[i]
                    for k in targets:
                        offered[k] += models[k].state == "open"
                        models[k].offer(step, seqs[i])
                        assert subs[k].dropped == models[k].dropped
                elif i < len(subs):
                    sub, model = subs[i], models[i]
                    if op == "take":
                        for _ in range(min(arg, len(model.buffer))):
                            got[i].append(await sub.__anext__())
                            step, seq, dropped = model.buffer.pop(0)
                            assert got[i][-1] == Message(
                                f"stream.run.{step}", "run", step, seq, step, dropped
                            )
                        if model.state == "closed" or (model.state != "open" and not model.buffer):
                            raised = SlowConsumer if model.state == "failed" else None
                            model.state = "closed" if raised else model.state
                            if raised is not None:
                                with pytest.raises(SlowConsumer, match="overflow='error'"):
                                    await sub.__anext__()
                            with pytest.raises(StopAsyncIteration):
                                await sub.__anext__()
                    elif op == "finish":
                        sub.finish()
                        if model.state == "open":
                            model.state = "finished"
                    else:
                        await sub.aclose()
                        model.state = "closed"
                        model.buffer.clear()
                    assert sub.closed == (model.state != "open")
                    # Also mid-stream: drop_oldest adds its unreported evictions on read.
                    assert sub.dropped == sub.statistics().dropped == model.dropped
            for i, (sub, model) in enumerate(zip(subs, models, strict=True)):
                sub.finish()
                if model.state == "failed":
                    with pytest.raises(SlowConsumer):  # noqa: PT012 - collect, then raise
                        async for msg in sub:
                            got[i].append(msg)
                else:
                    got[i].extend(await drain(sub))
                expected = [
                    Message(f"stream.run.{step}", "run", step, seq, step, dropped)
                    for step, seq, dropped in model.buffer
                ]
                assert got[i][len(got[i]) - len(expected) :] == expected
                check_order(got[i])
                check_accounting(sub, got[i], offered[i])
                assert sub.dropped == model.dropped
            assert broker.statistics().subscriptions == 0

    for backend in ("asyncio", "trio"):
        anyio.run(main, backend=backend)


# -- concurrent publishers and consumers -------------------------------------


@pytest.mark.parametrize("overflow", POLICIES)
@pytest.mark.parametrize("seed", [1, 2])
async def test_concurrent_publishers_and_consumers(
    overflow: Overflow, seed: int, batching: bool
) -> None:
    rng = random.Random(seed)
    per_step = 300
    async with open_broker(batching) as broker:
        subs = [
            broker.subscribe("stream.run.>", buffer=rng.choice([1, 3, 16]), overflow=overflow)
            for _ in range(3)
        ]
        received: list[list[Message]] = [[] for _ in subs]
        errors: list[BaseException] = []

        async def publish(step: str) -> None:
            pub = broker.publisher("run", step)
            for i in range(per_step):
                await pub.publish(i)
                for _ in range(rng.randint(0, 2)):
                    await anyio.lowlevel.checkpoint()

        async def consume(k: int, slowness: int) -> None:
            try:
                async for msg in subs[k]:
                    received[k].append(msg)
                    for _ in range(slowness):
                        await anyio.lowlevel.checkpoint()
            except SlowConsumer as exc:
                errors.append(exc)

        async with anyio.create_task_group() as consumers:
            for k, slowness in enumerate([0, 1, 5]):
                consumers.start_soon(consume, k, slowness)
            async with anyio.create_task_group() as publishers:
                for step in ("a", "b", "c"):
                    publishers.start_soon(publish, step)
            for sub in subs:
                sub.finish()

        for k, sub in enumerate(subs):
            check_order(received[k])
            offered = 3 * per_step
            if overflow == "error":
                stats = sub.statistics()
                assert stats.delivered + stats.dropped + stats.buffered <= offered
                continue
            check_accounting(sub, received[k], offered)
            if overflow == "block":
                assert sub.dropped == 0
                assert len(received[k]) == offered
                for step in ("a", "b", "c"):
                    seqs = [m.seq for m in received[k] if m.step_id == step]
                    assert seqs == list(range(1, per_step + 1))
        if overflow == "error":
            assert all("fell behind" in str(e) for e in errors)


async def test_fifo_and_contiguous_seq_from_one() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.r.>")
    other = broker.subscribe("stream.elsewhere.>")
    pub = broker.publisher("r", "main")
    for i in range(10):
        await pub.publish(i)
    sub.finish()
    got = await drain(sub)
    assert [(m.seq, m.data, m.dropped_before) for m in got] == [(i + 1, i, 0) for i in range(10)]
    assert got[0] == Message("stream.r.main", "r", "main", 1, 0, 0)
    assert other.statistics().buffered == 0


async def test_publishing_with_no_subscriber_keeps_nothing() -> None:
    broker = Broker()
    pub = broker.publisher("r", "main")
    for i in range(5):
        await pub.publish(i)
        pub.publish_nowait(i)
    assert pub.seq == 10
    assert pub._targets == ()
    late = broker.subscribe("stream.>")
    await pub.publish("x")
    late.finish()
    assert [(m.seq, m.data) for m in await drain(late)] == [(11, "x")]


async def test_same_publisher_per_step_until_the_run_ends() -> None:
    broker = Broker()
    assert broker.publisher("r", "s") is broker.publisher("r", "s")
    assert broker.publisher("r", "s") is not broker.publisher("r", "t")
    assert broker.statistics().publishers == 2
    broker.end_run("r")
    assert broker.statistics().publishers == 0


async def test_drop_oldest_keeps_the_newest_and_reports_losses() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>", buffer=3)
    pub = broker.publisher("r", "s")
    for i in range(10):
        await pub.publish(i)
    assert sub.dropped == 7
    sub.finish()
    got = await drain(sub)
    assert [(m.seq, m.dropped_before) for m in got] == [(8, 7), (9, 0), (10, 0)]
    check_accounting(sub, got, 10)


async def test_drop_newest_keeps_the_oldest_and_reports_on_the_next() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>", buffer=2, overflow="drop_newest")
    pub = broker.publisher("r", "s")
    for i in range(5):
        await pub.publish(i)
    assert [(m.seq, m.dropped_before) for m in [await sub.__anext__()]] == [(1, 0)]
    await pub.publish(5)
    sub.finish()
    got = await drain(sub)
    assert [(m.seq, m.dropped_before) for m in got] == [(2, 0), (6, 3)]
    stats = sub.statistics()
    assert (stats.dropped, stats.unreported_drops) == (3, 0)


async def test_unreported_drops_when_nothing_follows() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>", buffer=1, overflow="drop_newest")
    pub = broker.publisher("r", "s")
    for i in range(3):
        await pub.publish(i)
    sub.finish()
    got = await drain(sub)
    assert [m.seq for m in got] == [1]
    stats = sub.statistics()
    assert (stats.dropped, stats.unreported_drops, stats.closed) == (2, 2, True)


async def test_error_policy_drains_then_raises_slow_consumer() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.r.>", buffer=2, overflow="error")
    pub = broker.publisher("r", "s")
    for i in range(4):
        await pub.publish(i)
    assert sub.closed
    assert broker.statistics().subscriptions == 0
    got = [await sub.__anext__(), await sub.__anext__()]
    assert [m.seq for m in got] == [1, 2]
    with pytest.raises(SlowConsumer) as info:
        await sub.__anext__()
    text = str(info.value)
    assert "'stream.r.>'" in text
    assert "buffer of 2" in text
    assert "overflow='block'" in text
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()


async def test_block_makes_the_publisher_wait(batching: bool) -> None:
    async with open_broker(batching) as broker:
        sub = broker.subscribe("stream.>", buffer=2, overflow="block")
        pub = broker.publisher("r", "s")
        done = anyio.Event()

        async def publish() -> None:
            for i in range(5):
                await pub.publish(i)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish)
            await anyio.wait_all_tasks_blocked()
            assert pub.seq == 3  # two buffered, the third waits for room
            assert not done.is_set()
            with pytest.raises(anyio.WouldBlock, match="is full"):
                pub.publish_nowait("x")
            got = [await sub.__anext__() for _ in range(5)]
            await done.wait()
        assert [m.seq for m in got] == [1, 2, 3, 4, 5]
        assert sub.dropped == 0


async def test_cancelled_block_publisher_counts_a_drop() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>", buffer=1, overflow="block")
    fast = broker.subscribe("stream.>", buffer=10)
    pub = broker.publisher("r", "s")
    await pub.publish("first")
    with anyio.move_on_after(0.01) as scope:
        await pub.publish("lost")
    assert scope.cancelled_caught
    assert sub.dropped == 1
    # The publisher is not stuck: room frees, the next publish goes through.
    assert (await sub.__anext__()).seq == 1
    await pub.publish("third")
    third = await sub.__anext__()
    assert (third.seq, third.dropped_before) == (3, 1)
    fast.finish()
    assert [m.seq for m in await drain(fast)] == [1, 2, 3]


async def test_closing_a_block_subscription_releases_the_publisher() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>", buffer=1, overflow="block")
    pub = broker.publisher("r", "s")
    await pub.publish(1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pub.publish, 2)
        await anyio.wait_all_tasks_blocked()
        await sub.aclose()
    assert sub.statistics().discarded == 1
    await pub.publish(3)  # nothing matches any more


async def test_a_stalled_subscriber_does_not_slow_the_others(batching: bool) -> None:
    async with open_broker(batching) as broker:
        stalled = broker.subscribe("stream.>", buffer=4)
        stalled_newest = broker.subscribe("stream.>", buffer=4, overflow="drop_newest")
        live = broker.subscribe("stream.>", buffer=1000)
        pub = broker.publisher("r", "s")
        got: list[Message] = []

        async def consume() -> None:
            async for msg in live:
                got.append(msg)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for i in range(500):
                await pub.publish(i)
            live.finish()
        assert [m.seq for m in got] == list(range(1, 501))
        assert stalled.statistics().buffered == 4
        assert stalled.dropped == 496
        assert stalled_newest.dropped == 496


async def test_subscriptions_come_and_go_while_publishing(batching: bool) -> None:
    async with open_broker(batching) as broker:
        stop = anyio.Event()

        async def publish(step: str) -> None:
            pub = broker.publisher("r", step)
            while not stop.is_set():
                await pub.publish(step)

        async def churn(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(20):
                async with broker.subscribe(
                    rng.choice(["stream.>", "stream.r.a", "stream.*.b"]),
                    buffer=rng.choice([1, 8]),
                ) as sub:
                    got = []
                    wanted = rng.randint(1, 10)
                    async for msg in sub:
                        got.append(msg)
                        if len(got) == wanted:
                            break
                    check_order(got)

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish, "a")
            tg.start_soon(publish, "b")
            async with anyio.create_task_group() as churners:
                for seed in range(4):
                    churners.start_soon(churn, seed)
            stop.set()
        assert broker.statistics().subscriptions == 0


async def test_end_run_finishes_run_scoped_subscriptions_only() -> None:
    broker = Broker()
    scoped = broker.subscribe("stream.r1.>", run_id="r1")
    other_run = broker.subscribe("stream.r2.>", run_id="r2")
    runtime_wide = broker.subscribe("stream.>")
    pub = broker.publisher("r1", "main")
    await pub.publish("a")
    broker.end_run("r1")
    await pub.publish("b")  # after the end: the scoped subscription takes no more
    assert [m.data for m in await drain(scoped)] == ["a"]
    assert not other_run.closed
    assert not runtime_wide.closed
    runtime_wide.finish()
    assert [m.data for m in await drain(runtime_wide)] == ["a", "b"]
    broker.close()
    assert other_run.closed
    assert await drain(other_run) == []


async def test_end_run_wakes_a_waiting_consumer(batching: bool) -> None:
    async with open_broker(batching) as broker:
        sub = broker.subscribe("stream.r.>", run_id="r")
        pub = broker.publisher("r", "main")
        got: list[Message] = []

        async def consume() -> None:
            got.extend(await drain(sub))

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await pub.publish(1)
            await pub.publish(2)
            await anyio.wait_all_tasks_blocked()
            broker.end_run("r")
        assert [m.data for m in got] == [1, 2]


async def test_close_finishes_everything_and_later_subscriptions_start_finished() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>")
    await broker.publisher("r", "s").publish(1)
    broker.close()
    assert [m.data for m in await drain(sub)] == [1]
    late = broker.subscribe("stream.>")
    assert late.closed
    assert await drain(late) == []
    assert broker.statistics() == type(broker.statistics())(subscriptions=0, publishers=0)


async def test_finish_is_idempotent_and_aclose_stops_at_once() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>")
    pub = broker.publisher("r", "s")
    await pub.publish(1)
    await pub.publish(2)
    sub.finish()
    sub.finish()
    assert (await sub.__anext__()).data == 1
    await sub.aclose()
    await sub.aclose()
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()
    stats = sub.statistics()
    assert (stats.delivered, stats.discarded, stats.buffered) == (1, 1, 0)


async def test_aclose_stops_a_consumer_waiting_in_anext(batching: bool) -> None:
    async with open_broker(batching) as broker:
        sub = broker.subscribe("stream.>")
        got: list[Message] = []

        async def consume() -> None:
            got.extend(await drain(sub))

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            await sub.aclose()
        assert got == []


async def test_a_cancelled_wait_in_anext_loses_nothing(batching: bool) -> None:
    async with open_broker(batching) as broker:
        sub = broker.subscribe("stream.>")
        pub = broker.publisher("r", "s")
        with anyio.move_on_after(0.01) as scope:
            await sub.__anext__()
        assert scope.cancelled_caught
        await pub.publish("after")
        with anyio.fail_after(5):
            msg = await sub.__anext__()
        assert (msg.seq, msg.data) == (1, "after")


async def test_batching_still_delivers_promptly_when_the_publisher_pauses() -> None:
    async with open_broker(True) as broker:
        sub = broker.subscribe("stream.>")
        pub = broker.publisher("r", "s")
        for i in range(3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pub.publish, i)
                with anyio.fail_after(5):
                    assert (await sub.__anext__()).data == i


async def test_broker_run_twice_is_refused() -> None:
    async with open_broker(True) as broker:
        with pytest.raises(RuntimeError, match="already running"):
            await broker.run()


async def test_several_consumers_of_one_subscription_share_it() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.>")
    pub = broker.publisher("r", "s")
    got: list[int] = []

    async def consume() -> None:
        async for msg in sub:
            got.append(msg.seq)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        for i in range(20):
            await pub.publish(i)
        sub.finish()
    assert sorted(got) == list(range(1, 21))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buffer": 0}, "buffer=0 is not a valid buffer size"),
        ({"buffer": True}, "buffer=True"),
        ({"buffer": 1.5}, "buffer=1.5"),
        ({"overflow": "drop_all"}, "overflow='drop_all' is not an overflow policy"),
    ],
)
def test_subscribe_validates_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Broker().subscribe("stream.>", **kwargs)


def test_subscribe_and_publisher_validate_subjects() -> None:
    broker = Broker()
    with pytest.raises(ValueError, match="'>' must be last"):
        broker.subscribe("stream.>.x")
    with pytest.raises(ValidationError, match=r"run id 'a\.b'"):
        broker.publisher("a.b", "main")


def test_statistics_and_repr() -> None:
    broker = Broker()
    sub = broker.subscribe("stream.*.main", buffer=8, overflow="drop_newest", run_id="r")
    stats = sub.statistics()
    assert (stats.pattern, stats.overflow, stats.buffer_size) == ("stream.*.main", "drop_newest", 8)
    assert (stats.buffered, stats.delivered, stats.dropped, stats.closed) == (0, 0, 0, False)
    assert (sub.pattern, sub.overflow, sub.buffer_size, sub.run_id) == (
        "stream.*.main",
        "drop_newest",
        8,
        "r",
    )
    assert "stream.*.main" in repr(sub)
