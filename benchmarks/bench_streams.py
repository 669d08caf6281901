"""Durable streams: write throughput, reader latency, reader fan-out, next to their baselines.

Usage::

    python benchmarks/bench_streams.py [--backend asyncio|trio] [--json out.json]
                                       [--baseline old.json] [--values N] [--repeat K]

Every figure comes with the baseline it is compared to, measured in the same run
on the same machine (a loaded machine lowers both):

1. ``write_stream`` values/s from one step into a SQLite journal
   (``synchronous=NORMAL``), from the first write until all are committed;
   baseline: the machine's raw SQLite ceiling (plain ``sqlite3``, 100-byte rows,
   1,000 per commit, WAL, NORMAL). Targets: >= 100,000/s and >= 50% of the ceiling.
2. The same step's values/s while 20 readers (``handle.read_stream``, started
   as the run starts) follow the stream live and each receive every value;
   baseline: (1). Target: the readers slow the writer by <= 20%.
3. write -> in-process reader latency: a step writes a value every ~1 ms; a
   reader started before the run measures the time from each ``write_stream``
   call to its arrival (p50/p99). Baseline: raw SQLite commit latency of one
   row per transaction. Target: p99 <= 5 ms.
4. write -> reader in another process: a child process writes as in (3); this
   process reads through ``af.SQLiteJournal(path, readonly=True)``, which
   follows commits by polling ``PRAGMA data_version``. Target: p99 <= 20 ms.

With ``--baseline`` it also prints the change against a JSON written by ``--json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _baselines import sqlite_ceiling
from _report import add_report_args, labelled_table, load_baseline, save

import actorflow as af

TOKEN = "token-" + "x" * 44  # ~50 bytes: a few LLM tokens
READERS = 20
BURST = 10  # (2) writes 10 values per ~1 ms: ~9,000 values/s, 180,000 deliveries/s
PACED_VALUES = 5_000
LATENCY_VALUES = 1_000
LATENCY_PAUSE = 0.001


@af.step
async def blast(ctx: af.StepContext, n: int) -> float:
    """Write ``n`` values as fast as possible; return values/s until all are committed."""
    started = time.perf_counter()
    for _ in range(n):
        await ctx.write_stream("tokens", TOKEN)
    await ctx.flush()
    return n / (time.perf_counter() - started)


@af.workflow
async def blaster(ctx: af.WorkflowContext, n: int) -> float:
    return await ctx.step(blast, n)


@af.step
async def bursts(ctx: af.StepContext, n: int) -> float:
    """Write ``n`` values in bursts of BURST, pausing ~1 ms between; return values/s."""
    started = time.perf_counter()
    for i in range(n):
        await ctx.write_stream("tokens", TOKEN)
        if i % BURST == BURST - 1:
            await anyio.sleep(0.001)
    await ctx.flush()
    return n / (time.perf_counter() - started)


@af.workflow
async def burster(ctx: af.WorkflowContext, n: int) -> float:
    return await ctx.step(bursts, n)


@af.step
async def paced(ctx: af.StepContext, spec: tuple[int, str]) -> int:
    """Write ``n`` timestamps (wall clock, comparable across processes), ~1 ms apart.

    With a ``gate`` path it first waits for that file: the reader in the other
    process creates it once it follows the stream, so every sample is live.
    """
    n, gate = spec
    while gate and not await anyio.Path(gate).exists():  # noqa: ASYNC110 - another process
        await anyio.sleep(0.001)
    for i in range(n):
        await ctx.write_stream("ticks", [i, time.time()])
        await anyio.sleep(LATENCY_PAUSE)
    return n


@af.workflow
async def pacer(ctx: af.WorkflowContext, spec: tuple[int, str]) -> int:
    return await ctx.step(paced, spec)


# -- (1) and (2): throughput, alone and with readers -------------------------------


async def write_throughput(workflow: Any, values: int, readers: int) -> float:
    """The values/s ``workflow`` reports for ``values`` values, with ``readers`` live readers."""
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        journal = af.SQLiteJournal(Path(directory) / "streams.db", synchronous="normal")
        async with af.Runtime(journal) as rt:
            await rt.run(workflow, 1_000)  # warm up
            counts = [0] * readers

            async def follow(i: int, handle: af.RunHandle[float]) -> None:
                async for _ in handle.read_stream("tokens"):
                    counts[i] += 1

            async with anyio.create_task_group() as tg:
                # The readers start before the run writes anything, then follow it live.
                handle: af.RunHandle[float] = await rt.start(workflow, values)
                for i in range(readers):
                    tg.start_soon(follow, i, handle)
                rate = await handle.result()
            assert counts == [values] * readers, counts
    return rate


# -- (3) and (4): latency ------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples``, in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def in_process_latency(values: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        async with af.Runtime(Path(directory) / "streams.db") as rt:
            await rt.run(pacer, (10, ""))  # warm up
            handle = await rt.start(pacer, (values, ""))
            samples = [time.time() - t async for _, t in handle.read_stream("ticks")]
            await handle.result()
    return samples


async def child_writer(db: str, values: int) -> None:
    """The other process of (4): start a paced run, print READY, wait for it to end."""
    async with af.Runtime(db) as rt:
        gate = db + "-gate"
        handle = await rt.start(pacer, (values, gate), run_id="ticks")
        print("READY", flush=True)
        await handle.result()


async def cross_process_latency(values: int, backend: str) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        db = str(Path(directory) / "streams.db")
        command = [sys.executable, __file__, "--child-writer", db, str(values)]
        async with await anyio.open_process([*command, "--backend", backend]) as child:
            assert child.stdout is not None
            output = b""
            while b"\n" not in output:
                output += await child.stdout.receive()
            assert output.startswith(b"READY"), output
            async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
                handle = rt.handle("ticks")
                ticks = handle.read_stream("ticks")
                first = anyio.Path(db + "-gate")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(first.touch)  # the reader is open: let the writer go
                    samples = [time.time() - t async for _, t in ticks]
                assert await handle.status() is af.RunStatus.COMPLETED
            await child.wait()
    assert len(samples) == values, len(samples)
    return samples


def sqlite_commit_latency(commits: int = LATENCY_VALUES) -> list[float]:
    """Seconds per plain sqlite3 transaction of one row (WAL, NORMAL): the floor of (3)."""
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        conn = sqlite3.connect(os.path.join(directory, "latency.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            payload = TOKEN.encode()
            samples = []
            for _ in range(commits):
                started = time.perf_counter()
                conn.execute("BEGIN")
                conn.execute("INSERT INTO t (data) VALUES (?)", (payload,))
                conn.execute("COMMIT")
                samples.append(time.perf_counter() - started)
        finally:
            conn.close()
    return samples


# -- the report ----------------------------------------------------------------------


def measure(backend: str, values: int, repeat: int) -> dict[str, Any]:
    ceiling = max(sqlite_ceiling() for _ in range(repeat))

    def best(workflow: Any, values: int, readers: int) -> float:
        runs = (
            anyio.run(write_throughput, workflow, values, readers, backend=backend)
            for _ in range(repeat)
        )
        return max(runs)

    alone = best(blaster, values, 0)
    paced_alone = best(burster, PACED_VALUES, 0)
    paced_fanned = best(burster, PACED_VALUES, READERS)
    blast_alone = best(blaster, PACED_VALUES * 4, 0)
    blast_fanned = best(blaster, PACED_VALUES * 4, READERS)
    commit_p50, commit_p99 = percentiles(sqlite_commit_latency())
    local_p50, local_p99 = percentiles(
        anyio.run(in_process_latency, LATENCY_VALUES, backend=backend)
    )
    remote_p50, remote_p99 = percentiles(
        anyio.run(cross_process_latency, LATENCY_VALUES, backend, backend=backend)
    )
    return {
        "backend": backend,
        "values": values,
        "sqlite_ceiling_per_s": round(ceiling),
        "write_stream_per_s": round(alone),
        "write_stream_vs_ceiling": round(alone / ceiling, 3),
        "bursts_alone_per_s": round(paced_alone),
        "bursts_20_readers_per_s": round(paced_fanned),
        "readers_slowdown": round(1 - paced_fanned / paced_alone, 3),
        "full_speed_alone_per_s": round(blast_alone),
        "full_speed_20_readers_per_s": round(blast_fanned),
        "full_speed_readers_slowdown": round(1 - blast_fanned / blast_alone, 3),
        "sqlite_commit_p50_ms": round(commit_p50, 3),
        "sqlite_commit_p99_ms": round(commit_p99, 3),
        "reader_latency_p50_ms": round(local_p50, 3),
        "reader_latency_p99_ms": round(local_p99, 3),
        "cross_process_latency_p50_ms": round(remote_p50, 3),
        "cross_process_latency_p99_ms": round(remote_p99, 3),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


ROWS = [
    ("sqlite_ceiling_per_s", "baseline: raw SQLite ceiling, rows/s", "{:,.0f}", ""),
    ("write_stream_per_s", "(1) write_stream from one step, committed/s", "{:,.0f}", ">= 100,000"),
    ("write_stream_vs_ceiling", "    ratio to the SQLite ceiling", "{:.3f}", ">= 0.500"),
    ("bursts_alone_per_s", "baseline: bursts of 10 per ms, no reader, /s", "{:,.0f}", ""),
    ("bursts_20_readers_per_s", "(2) same with 20 live readers, /s", "{:,.0f}", ""),
    ("readers_slowdown", "    slowdown from the 20 readers", "{:.1%}", "<= 20.0%"),
    ("full_speed_alone_per_s", "baseline: full speed, 20k values, no reader", "{:,.0f}", ""),
    ("full_speed_20_readers_per_s", "(2') same with 20 live readers, /s", "{:,.0f}", ""),
    ("full_speed_readers_slowdown", "    slowdown from the 20 readers", "{:.1%}", ""),
    ("sqlite_commit_p50_ms", "baseline: raw SQLite 1-row commit p50, ms", "{:.3f}", ""),
    ("sqlite_commit_p99_ms", "baseline: raw SQLite 1-row commit p99, ms", "{:.3f}", ""),
    ("reader_latency_p50_ms", "(3) write -> in-process reader p50, ms", "{:.3f}", ""),
    ("reader_latency_p99_ms", "(3) write -> in-process reader p99, ms", "{:.3f}", "<= 5"),
    ("cross_process_latency_p50_ms", "(4) write -> reader in another process p50 ms", "{:.3f}", ""),
    ("cross_process_latency_p99_ms", "(4) same, p99, ms", "{:.3f}", "<= 20"),
]


def report(result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    lines = [
        f"actorflow durable-stream benchmark: {result['backend']}, {result['values']:,} values, "
        f"Python {result['python']}, SQLite {result['sqlite']}, {result['machine']}",
    ]
    lines += labelled_table(ROWS, result, baseline)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_report_args(parser)
    parser.add_argument("--values", type=int, default=200_000, help="values written in (1)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--child-writer", nargs=2, metavar=("DB", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_writer:
        db, n = args.child_writer
        anyio.run(child_writer, db, int(n), backend=args.backend)
        return 0
    baseline = load_baseline(args.baseline)
    result = measure(args.backend, args.values, args.repeat)
    print(report(result, baseline))
    save(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
