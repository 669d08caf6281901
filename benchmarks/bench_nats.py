"""Benchmark live streams across processes: ``NATSBroker`` against a real nats-server.

Usage::

    python benchmarks/bench_nats.py [--backend asyncio|trio] [--url nats://127.0.0.1:4222]
                                    [--json out.json] [--baseline old.json]

Three measurements:

1. publish: one publisher publishes 200k small messages (a short ``str``)
   through a ``NATSBroker``; msgs/s from the first publish until the NATS
   client thread has handed every one to the server (a flush round trip
   ends it). The hand-off buffer is as big as the run, so nothing is
   dropped; target >= 100,000 msgs/s.
2. latency: a second ``NATSBroker`` (its own connection, its own client
   thread, the same event loop) subscribes; the publisher paces itself to
   10k msgs/s for 2 s, each message carrying its send time; p50 and p99 of
   publish -> the subscriber's ``__anext__`` on loopback; target p99 <= 2 ms.
   Beside it, the same measure for nats-py alone (two connections on one
   asyncio loop, in a thread), as a floor: what the machine allows.
3. put_stream cost: a step calls ``ctx.put_stream`` 100k times with no
   subscriber anywhere, with the in-process broker and with a
   ``NATSBroker`` (which encodes and queues every message for NATS); the
   ratio of the two step times (wall clock: the client thread's work competes
   for the interpreter), best of 3 rounds each.

All figures are wall-clock. On the project's 2-core machine, shared with
other work, they swing by +-20% from run to run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from _report import add_report_args, load_baseline, save, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actorflow as af

PUBLISHES = 200_000
LATENCY_RATE = 10_000
LATENCY_SECONDS = 2.0
STEP_PUBLISHES = 100_000
ROUNDS = 3

TARGETS = {
    "publish_msgs_per_s": (">=", 100_000),
    "remote_p99_ms": ("<=", 2.0),
}


async def measure_publish(url: str) -> float:
    broker = af.NATSBroker(url, outbound_buffer=PUBLISHES)
    async with anyio.create_task_group() as tg:
        await tg.start(broker.run)
        pub = broker.publisher("bench", "main")
        start = time.perf_counter()
        for _ in range(PUBLISHES):
            await pub.publish("a live message")
        while broker.statistics().outbound_buffered:  # noqa: ASYNC110 - another thread drains it
            await anyio.sleep(0.0005)
        await broker.synchronize()
        elapsed = time.perf_counter() - start
        stats = broker.statistics()
        tg.cancel_scope.cancel()
    broker.close()
    assert stats.outbound_dropped == 0, stats
    return PUBLISHES / elapsed


async def measure_latency(url: str) -> tuple[float, float]:
    sending, receiving = af.NATSBroker(url), af.NATSBroker(url)
    latencies: list[float] = []
    count = int(LATENCY_RATE * LATENCY_SECONDS)
    async with anyio.create_task_group() as tg:
        await tg.start(sending.run)
        await tg.start(receiving.run)
        sub = receiving.subscribe("stream.latency.>", buffer=count)
        await receiving.synchronize()

        async def read() -> None:
            async for msg in sub:
                latencies.append(time.perf_counter() - msg.data)  # type: ignore[operator]
                if msg.seq == count:
                    return

        tg.start_soon(read)
        pub = sending.publisher("latency", "main")
        start = time.perf_counter()
        for i in range(count):
            due = start + i / LATENCY_RATE
            now = time.perf_counter()
            if due > now:
                await anyio.sleep(due - now)
            await pub.publish(time.perf_counter())
        with anyio.fail_after(10):
            while len(latencies) < count:  # noqa: ASYNC110 - the reader appends
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    sending.close()
    receiving.close()
    # The first 10% warm up the connections.
    ms = sorted(x * 1000 for x in latencies[count // 10 :])
    return statistics.median(ms), ms[int(len(ms) * 0.99) - 1]


def nats_py_latency(url: str) -> tuple[float, float]:
    """p50 and p99 (ms) of plain nats-py publish -> callback at the same rate."""
    import asyncio

    import nats

    async def run() -> tuple[float, float]:
        a, b = await nats.connect(url), await nats.connect(url)
        latencies: list[float] = []
        count = int(LATENCY_RATE * LATENCY_SECONDS)
        done = asyncio.Event()

        async def on_message(msg: Any) -> None:
            latencies.append(time.perf_counter() - float(msg.data))
            if len(latencies) == count:
                done.set()

        await b.subscribe("bench.latency", cb=on_message)
        await b.flush()
        start = time.perf_counter()
        for i in range(count):
            due = start + i / LATENCY_RATE
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            await a.publish("bench.latency", repr(time.perf_counter()).encode())
        await asyncio.wait_for(done.wait(), 10)
        await a.close()
        await b.close()
        ms = sorted(x * 1000 for x in latencies[count // 10 :])
        return statistics.median(ms), ms[int(len(ms) * 0.99) - 1]

    return asyncio.run(run())


@af.step
async def bench_put_stream(ctx: af.StepContext, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await ctx.put_stream(i)
    return time.perf_counter() - start


@af.workflow
async def bench_nats_step(ctx: af.WorkflowContext, n: int) -> float:
    return await ctx.step(bench_put_stream, n)


async def step_time(broker: Any) -> float:
    async with af.Runtime(broker=broker) as rt:
        handle = await rt.start(bench_nats_step, STEP_PUBLISHES)
        return float(await handle.result())


async def measure(url: str) -> dict[str, float]:
    results: dict[str, float] = {}
    results["publish_msgs_per_s"] = max([await measure_publish(url) for _ in range(ROUNDS)])
    p50, p99 = await measure_latency(url)
    results["remote_p50_ms"] = p50
    results["remote_p99_ms"] = p99
    p50, p99 = await anyio.to_thread.run_sync(nats_py_latency, url)
    results["nats_py_alone_p50_ms"] = p50
    results["nats_py_alone_p99_ms"] = p99
    local, nats = [], []
    for _ in range(ROUNDS):
        local.append(await step_time(None))
        nats.append(await step_time(af.NATSBroker(url, outbound_buffer=STEP_PUBLISHES)))
    results["put_stream_us_in_process"] = min(local) / STEP_PUBLISHES * 1e6
    results["put_stream_us_nats"] = min(nats) / STEP_PUBLISHES * 1e6
    results["put_stream_cost_ratio"] = min(nats) / min(local)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_args(parser)
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="the NATS server")
    args = parser.parse_args()
    results = anyio.run(measure, args.url, backend=args.backend)
    print(f"actorflow NATSBroker, backend={args.backend}, server {args.url}")
    print(table(results, load_baseline(args.baseline), TARGETS))
    save(results, args.json)


if __name__ == "__main__":
    main()
