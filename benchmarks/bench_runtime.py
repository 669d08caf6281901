"""Core runtime throughput: journaled steps/s and run starts/s, against the machine's ceilings.

    python benchmarks/bench_runtime.py [--backend asyncio|trio] [--json out.json]
                                       [--baseline old.json]

Measures, on a SQLite journal with synchronous=NORMAL in a temp dir:
  - steps/s in one run of 1,000 sequential steps (target >= 5,000/s)
  - steps/s across 100 concurrent runs of 100 steps each (target >= 20,000/s)
  - run starts/s (start committed, run completed)
and, in the same process, the ceilings they are bounded by: raw SQLite inserts/s
at 1,000 rows per commit (WAL, NORMAL) and bare anyio task spawns/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _baselines import sqlite_ceiling
from _report import add_report_args, load_baseline, save, table

import actorflow as af

SEQUENTIAL_STEPS = 1_000
CONCURRENT_RUNS = 100
STEPS_PER_RUN = 100
STARTS = 1_000


@af.step
async def noop(ctx: af.StepContext, i: int) -> int:
    return i


@af.workflow
async def many_steps(ctx: af.WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.step(noop, i)
    return total


@af.workflow
async def empty(ctx: af.WorkflowContext, _: None) -> None:
    return None


async def bench_sequential(db: Path) -> float:
    async with af.Runtime(db) as rt:
        await rt.run(many_steps, 10)  # warm up
        t0 = time.perf_counter()
        await rt.run(many_steps, SEQUENTIAL_STEPS)
        return SEQUENTIAL_STEPS / (time.perf_counter() - t0)


async def bench_concurrent(db: Path) -> float:
    async with af.Runtime(db) as rt:
        await rt.run(many_steps, 10)
        t0 = time.perf_counter()
        handles = [await rt.start(many_steps, STEPS_PER_RUN) for _ in range(CONCURRENT_RUNS)]
        for h in handles:
            await h.result()
        return CONCURRENT_RUNS * STEPS_PER_RUN / (time.perf_counter() - t0)


async def bench_starts(db: Path) -> float:
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        handles = []
        async with anyio.create_task_group() as tg:

            async def start_one() -> None:
                handles.append(await rt.start(empty))

            for _ in range(STARTS):
                tg.start_soon(start_one)
        for h in handles:
            await h.result()
        return STARTS / (time.perf_counter() - t0)


async def bench_spawns(n: int = 100_000) -> float:
    async def child() -> None:
        pass

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(child)
    return n / (time.perf_counter() - t0)


def measure(backend: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        results = {
            "sqlite_inserts_per_s": sqlite_ceiling(),
            "anyio_spawns_per_s": anyio.run(bench_spawns, backend=backend),
            "sequential_steps_per_s": anyio.run(bench_sequential, d / "a.db", backend=backend),
            "concurrent_steps_per_s": anyio.run(bench_concurrent, d / "b.db", backend=backend),
            "run_starts_per_s": anyio.run(bench_starts, d / "c.db", backend=backend),
        }
    results["sequential_vs_sqlite"] = (
        results["sequential_steps_per_s"] / results["sqlite_inserts_per_s"]
    )
    results["concurrent_vs_sqlite"] = (
        results["concurrent_steps_per_s"] / results["sqlite_inserts_per_s"]
    )
    results["concurrent_vs_spawns"] = (
        results["concurrent_steps_per_s"] / results["anyio_spawns_per_s"]
    )
    return results


TARGETS = {"sequential_steps_per_s": (">=", 5_000.0), "concurrent_steps_per_s": (">=", 20_000.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_args(parser)
    args = parser.parse_args()
    results = measure(args.backend)
    print(f"actorflow core runtime, backend={args.backend}, SQLite synchronous=NORMAL")
    print(table(results, load_baseline(args.baseline), TARGETS))
    save(results, args.json)


if __name__ == "__main__":
    main()
