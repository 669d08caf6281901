"""Several processes on one SQLite journal: takeover, cross-process latency, throughput.

    python benchmarks/bench_workers.py [--kills 20] [--backend asyncio|trio]
                                       [--json out.json] [--baseline old.json]

Measures, with real processes on a journal in a temp dir:
  - takeover: SIGKILL of the writing worker -> the next durable entry of the
    run it was executing, written by the worker that took over (p50/p99 over
    ``--kills`` kills; target <= 1 s);
  - cross-process latency: a worker writes an entry (its wall time) every
    10 ms; a client in this process reads the stream and records now - then
    (p50/p99; target p99 <= 5 ms), and the CPU a client following an idle
    journal uses (target <= 2% of a core);
  - throughput: runs of 20 steps started by 1, 2 and 4 processes (one of them
    the writer, which executes all of them), steps/s, next to one process
    alone starting and executing them itself (the baseline, same run).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _report import add_report_args, load_baseline, save, table

import actorflow as af

STEPS = 20


@af.step(retries=10)
async def bw_tokens(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.write_stream("tokens", i)
        await ctx.flush()
        await anyio.sleep(0.002)
    return n


@af.workflow
async def bw_stream(ctx: af.WorkflowContext, n: int) -> int:
    return await ctx.step(bw_tokens, n)


@af.step
async def bw_noop(ctx: af.StepContext, i: int) -> int:
    return i


@af.workflow
async def bw_steps(ctx: af.WorkflowContext, n: int) -> int:
    for i in range(n):
        await ctx.step(bw_noop, i)
    return n


@af.workflow
async def bw_idle(ctx: af.WorkflowContext, _: None) -> object:
    await ctx.set_event("waiting", True)
    return await ctx.recv()


@af.workflow
async def bw_clock(ctx: af.WorkflowContext, n: int) -> int:
    for _ in range(n):
        await ctx.write_stream("t", time.time())
        await ctx.flush()
        await anyio.sleep(0.01)
    return n


def _worker(db: Path, backend: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", str(db), "--backend", backend],
        stdout=subprocess.PIPE,
        text=True,
    )


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


async def _serve(db: str) -> None:
    async with af.Runtime(db) as rt:
        print("READY", "waiting" if rt.journal.readonly else "writer", flush=True)
        await anyio.sleep_forever()


def takeover(kills: int, backend: str) -> list[float]:
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as tmp:
        db = Path(tmp) / "w.db"
        writer = _worker(db, backend)
        assert _line(writer) == "READY writer"
        for _ in range(kills):
            waiting = _worker(db, backend)
            assert _line(waiting) == "READY waiting"
            times.append(anyio.run(_kill_and_time, db, writer, backend=backend))
            writer.wait()
            writer = waiting
        writer.kill()
        writer.wait()
    return times


async def _kill_and_time(db: Path, writer: subprocess.Popen[str]) -> float:
    async with af.Runtime(db, execute=False) as client:
        handle = await client.start(bw_stream, 10_000)
        entries = client.read_stream_entries(handle.run_id, "tokens")
        async for entry in entries:
            if entry.offset == 20:
                killed = time.perf_counter()
                os.kill(writer.pid, signal.SIGKILL)
            elif entry.offset > 20 and entry.attempt > 1:
                took = time.perf_counter() - killed
                break
        await entries.aclose()  # type: ignore[attr-defined]
        await client.cancel(handle.run_id)
        return took


def latency(backend: str) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as tmp:
        db = Path(tmp) / "l.db"
        writer = _worker(db, backend)
        assert _line(writer) == "READY writer"
        try:
            return anyio.run(_latency, db, backend=backend)
        finally:
            writer.kill()
            writer.wait()


async def _latency(db: Path) -> tuple[list[float], float]:
    async with af.Runtime(db, execute=False) as client:
        lags = []
        handle = await client.start(bw_clock, 300)
        async for value in client.read_stream(handle.run_id, "t"):
            lags.append(time.time() - float(value))  # type: ignore[arg-type]
        # A client following an idle journal: a reader of a run that waits.
        idle = await client.start(bw_idle, None)
        await idle.get_event("waiting")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with anyio.move_on_after(3):
            async for _ in idle.read_stream("never"):
                pass
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await idle.cancel()
        return lags, cpu


def throughput(processes: int, runs: int, backend: str) -> float:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as tmp:
        db = Path(tmp) / "t.db"
        writer = _worker(db, backend)
        assert _line(writer) == "READY writer"
        try:
            clients = [
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--client",
                        str(db),
                        "--runs",
                        str(runs // processes),
                        "--backend",
                        backend,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(processes)
            ]
            # Each client reports when it started its first run and got its
            # last result (wall time), so process start-up is not counted.
            spans = []
            for c in clients:
                out, _ = c.communicate(timeout=600)
                assert c.returncode == 0
                spans.append([float(x) for x in out.split()])
            elapsed = max(end for _, end in spans) - min(begin for begin, _ in spans)
            return runs * STEPS / elapsed
        finally:
            writer.kill()
            writer.wait()


async def _client(db: str, runs: int) -> None:
    async with af.Runtime(db, execute=False) as client:
        begin = time.time()
        handles = [await client.start(bw_steps, STEPS) for _ in range(runs)]
        for h in handles:
            await h.result()
        print(begin, time.time())


async def _alone(runs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as tmp:
        async with af.Runtime(Path(tmp) / "a.db") as rt:
            started = time.perf_counter()
            handles = [await rt.start(bw_steps, STEPS) for _ in range(runs)]
            for h in handles:
                await h.result()
            return runs * STEPS / (time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    add_report_args(parser)
    args = parser.parse_args()
    if args.worker:
        anyio.run(_serve, args.worker, backend=args.backend)
        return
    if args.client:
        anyio.run(_client, args.client, args.runs, backend=args.backend)
        return
    kills = takeover(args.kills, args.backend)
    lags, idle_cpu = latency(args.backend)
    figures = {
        "takeover p50 (s)": statistics.median(kills),
        "takeover p99 (s)": _pct(kills, 99),
        "cross-process latency p50 (ms)": statistics.median(lags) * 1000,
        "cross-process latency p99 (ms)": _pct(lags, 99) * 1000,
        "idle client CPU (% of a core)": idle_cpu * 100,
        "steps/s, 1 process alone": anyio.run(_alone, args.runs, backend=args.backend),
    }
    for n in (1, 2, 4):
        figures[f"steps/s, writer + {n} client process(es)"] = throughput(
            n, args.runs, args.backend
        )
    targets = {
        "takeover p99 (s)": ("<=", 1.0),
        "cross-process latency p99 (ms)": ("<=", 5.0),
        "idle client CPU (% of a core)": ("<=", 2.0),
    }
    print(f"{args.kills} kills, {args.runs} runs of {STEPS} steps, {args.backend}")
    print(table(figures, load_baseline(args.baseline), targets))
    save(figures, args.json)


if __name__ == "__main__":
    main()
