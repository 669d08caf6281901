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
ceiling a superstep (one step commit each) is bounded by. The cycle and the
fan-out are also run on the in-memory journal (no durable checkpoint).

Each measure is run 1 + 3 times, each run with its own event loop and a fresh
journal file; the first run warms up (imports, the interpreter's specialised
code, the allocator's arenas) and is dropped. Rates and ms/round are over the
total time of the 3 runs (a mean, so a full garbage collection that lands in
one of them counts); latencies pool the 3 runs' emits (1,500). LangGraph's
figures are taken the same way.

LangGraph, in the same process run, when ``langgraph`` is importable
---------------------------------------------------------------------
langgraph is not a dependency of actorflow (not in pyproject.toml or uv.lock);
without it the comparison is skipped with one line saying so. To measure it,
make a separate environment:

    python3 -m venv /tmp/lgenv
    /tmp/lgenv/bin/pip install -e . langgraph langgraph-checkpoint-sqlite
    /tmp/lgenv/bin/python benchmarks/bench_graph.py

The same three measures are built as ``StateGraph``s: the 2-node cycle (ping
and pong each add 1 to ``n``; a conditional edge goes to the other node or to
END after 2,000 supersteps), the fan-out (a hub node whose conditional edge
returns the 50 worker node names, each worker adds 1 to an ``operator.add``
key and has a static edge back to the hub; 20 rounds), and the emitter (one
node writing 500 ``time.perf_counter()`` values with ``get_stream_writer()``,
0.5 ms apart, read with ``stream_mode="custom"``). Each runs with
``langgraph.checkpoint.sqlite.SqliteSaver`` on a fresh file in the same temp
dir as actorflow's journals, and with no checkpointer; each LangGraph figure is
printed next to the actorflow figure it compares with (SQLite journal vs
SqliteSaver, in-memory journal vs no checkpointer), with the ratio.

How the comparison is kept fair:
  - the same supersteps (2,000; 20 rounds of hub + 50 workers, 41 supersteps;
    500 emits) and the same trivial work (add 1 to an int; no I/O in nodes);
    actorflow's graph output is checked, and so is LangGraph's final state.
  - SQLite durability: actorflow's journal runs WAL with synchronous=NORMAL.
    SqliteSaver sets journal_mode=WAL but leaves synchronous at SQLite's
    default, FULL (an fsync per commit). Here it gets a connection opened by
    this script with ``PRAGMA synchronous=NORMAL`` (and ``check_same_thread=
    False``, as ``SqliteSaver.from_conn_string`` does), so both fsync as
    rarely. Its tables are created (``setup()``) before the clock starts, as
    actorflow's are when the runtime opens.
  - checkpoint guarantee: actorflow commits each superstep's checkpoint before
    the next superstep starts, so LangGraph runs with ``durability="sync"``
    (its default, "async", writes the checkpoint while the next superstep
    already runs). ``durability`` is only passed with a checkpointer
    (langgraph 1.2.22's sync ``stream`` fails with an AttributeError when it
    is given without one).
  - API: both of LangGraph's APIs are run for every measure -- sync
    ``invoke``/``stream`` with plain ``def`` nodes and ``SqliteSaver``, and
    ``ainvoke``/``astream`` with ``async def`` nodes and ``AsyncSqliteSaver``
    (aiosqlite) on ``asyncio.run`` -- and the faster of the two is the figure
    (the table says which won). LangGraph runs on asyncio whatever
    ``--backend`` says.
  - emits: actorflow's ``ctx.emit`` goes through the journal (durable, read
    back by ``graph.stream``); LangGraph's stream writer is an in-process queue
    that no checkpointer sees, so its "SQLite" emit rows only say the
    SqliteSaver is attached, and compare a durable path with a volatile one.
  - compiling the graph and opening the checkpointer are outside the timing,
    like actorflow's ``Runtime`` opening; ``recursion_limit`` is set above the
    superstep count.
On a shared machine the figures move with the load: run it several times.
Written against langgraph 1.2.22 and langgraph-checkpoint-sqlite 3.1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import anyio
from _report import add_report_args, labelled_table, load_baseline, save, table

import actorflow as af

CYCLE_SUPERSTEPS = 2_000
FAN_OUT = 50
ROUNDS = 20
EMITS = 500
WARMUP = 1
RUNS = 3

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


async def bench_cycle(db: Path | af.Journal) -> float:
    """Seconds to run the 2-node cycle's CYCLE_SUPERSTEPS supersteps."""
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        out = await rt.run(cycle_graph)
        elapsed = time.perf_counter() - t0
    assert out["n"] == CYCLE_SUPERSTEPS
    return elapsed


async def bench_fan_out(db: Path | af.Journal) -> float:
    """Seconds to run the fan-out's ROUNDS rounds."""
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        out = await rt.run(fan_graph)
        elapsed = time.perf_counter() - t0
    assert out["done"] == FAN_OUT * ROUNDS
    return elapsed


async def bench_emit_latency(journal: af.Journal) -> list[float]:
    """Each emit's seconds from ``ctx.emit`` to the ``graph.stream`` consumer."""
    latencies = []
    async with af.Runtime(journal) as rt:
        async for r in emit_graph.stream(rt):
            if isinstance(r.updates, float):
                latencies.append(time.perf_counter() - r.updates)
    return latencies


async def bench_steps(db: Path | af.Journal) -> float:
    """Seconds to run CYCLE_SUPERSTEPS sequential no-op steps."""
    async with af.Runtime(db) as rt:
        t0 = time.perf_counter()
        await rt.run(many_steps, CYCLE_SUPERSTEPS)
        return time.perf_counter() - t0


def repeated(run: Callable[[int], Any]) -> list[Any]:
    """``run(i)`` for WARMUP + RUNS runs; the warm-up runs' results are dropped."""
    return [run(i) for i in range(WARMUP + RUNS)][WARMUP:]


def pooled(runs: list[list[float]]) -> list[float]:
    return [latency for run in runs for latency in run]


# --- LangGraph: the same three graphs, when langgraph is importable ---------------------------


class CycleState(TypedDict):
    n: int


class FanState(TypedDict):
    rounds: int
    done: Annotated[int, operator.add]


def _lg_cycle(is_async: bool) -> Any:
    from langgraph.graph import END, START, StateGraph

    def step(state: CycleState) -> dict[str, int]:
        return {"n": state["n"] + 1}

    async def astep(state: CycleState) -> dict[str, int]:
        return {"n": state["n"] + 1}

    g = StateGraph(CycleState)
    g.add_node("ping", astep if is_async else step)
    g.add_node("pong", astep if is_async else step)
    g.add_edge(START, "ping")
    g.add_conditional_edges("ping", lambda s: "pong" if s["n"] < CYCLE_SUPERSTEPS else END)
    g.add_conditional_edges("pong", lambda s: "ping" if s["n"] < CYCLE_SUPERSTEPS else END)
    return g


def _lg_fan(is_async: bool) -> Any:
    from langgraph.graph import END, START, StateGraph

    def hub(state: FanState) -> dict[str, int]:
        return {"rounds": state["rounds"] + 1} if state["rounds"] < ROUNDS else {}

    async def ahub(state: FanState) -> dict[str, int]:
        return hub(state)

    def work(state: FanState) -> dict[str, int]:
        return {"done": 1}

    async def awork(state: FanState) -> dict[str, int]:
        return {"done": 1}

    def route(state: FanState) -> list[str] | str:
        return workers if state["done"] < FAN_OUT * ROUNDS else END

    g = StateGraph(FanState)
    g.add_node("hub", ahub if is_async else hub)
    for name in workers:
        g.add_node(name, awork if is_async else work)
        g.add_edge(name, "hub")
    g.add_edge(START, "hub")
    g.add_conditional_edges("hub", route, [*workers, END])
    return g


def _lg_emitter(is_async: bool) -> Any:
    from langgraph.config import get_stream_writer
    from langgraph.graph import END, START, StateGraph

    def talk(state: CycleState) -> dict[str, int]:
        write = get_stream_writer()
        for _ in range(EMITS):
            write(time.perf_counter())
            time.sleep(0.0005)
        return {}

    async def atalk(state: CycleState) -> dict[str, int]:
        write = get_stream_writer()
        for _ in range(EMITS):
            write(time.perf_counter())
            await asyncio.sleep(0.0005)
        return {}

    g = StateGraph(CycleState)
    g.add_node("talk", atalk if is_async else talk)
    g.add_edge(START, "talk")
    g.add_edge("talk", END)
    return g


def _lg_config(steps: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": "bench"}, "recursion_limit": steps + 10}


def _check_cycle(out: dict[str, Any]) -> None:
    assert out["n"] == CYCLE_SUPERSTEPS, out


def _check_fan(out: dict[str, Any]) -> None:
    assert out["done"] == FAN_OUT * ROUNDS, out
    assert out["rounds"] == ROUNDS, out


def _latency_ms(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``latencies`` (seconds), in ms."""
    assert len(latencies) == EMITS * RUNS, len(latencies)
    latencies = sorted(latencies)
    return statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000


def _lg_sync(builder: Callable[[bool], Any], db: Path | None, steps: int, mode: str) -> Any:
    """Run a graph with LangGraph's sync API: seconds taken, or the emit latencies."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = None
    saver = None
    if db is not None:
        conn = sqlite3.connect(db, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
    app = builder(False).compile(checkpointer=saver)
    durability: dict[str, Any] = {"durability": "sync"} if saver else {}
    inp = {"rounds": 0, "done": 0} if builder is _lg_fan else {"n": 0}
    try:
        if mode == "emit":
            latencies = []
            for sent in app.stream(inp, _lg_config(steps), stream_mode="custom", **durability):
                latencies.append(time.perf_counter() - sent)
            return latencies
        t0 = time.perf_counter()
        out = app.invoke(inp, _lg_config(steps), **durability)
        elapsed = time.perf_counter() - t0
        (_check_fan if builder is _lg_fan else _check_cycle)(out)
        return elapsed
    finally:
        if conn is not None:
            conn.close()


async def _lg_async(builder: Callable[[bool], Any], db: Path | None, steps: int, mode: str) -> Any:
    """The same with LangGraph's async API and AsyncSqliteSaver, on asyncio."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = None
    saver = None
    if db is not None:
        conn = await aiosqlite.connect(db)
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
    app = builder(True).compile(checkpointer=saver)
    durability: dict[str, Any] = {"durability": "sync"} if saver else {}
    inp = {"rounds": 0, "done": 0} if builder is _lg_fan else {"n": 0}
    try:
        if mode == "emit":
            latencies = []
            async for sent in app.astream(
                inp, _lg_config(steps), stream_mode="custom", **durability
            ):
                latencies.append(time.perf_counter() - sent)
            return latencies
        t0 = time.perf_counter()
        out = await app.ainvoke(inp, _lg_config(steps), **durability)
        elapsed = time.perf_counter() - t0
        (_check_fan if builder is _lg_fan else _check_cycle)(out)
        return elapsed
    finally:
        if conn is not None:
            await conn.close()


def _lg_once(
    builder: Callable[[bool], Any], db: Path | None, steps: int, mode: str, api: str
) -> Any:
    """One run with LangGraph's ``api`` ("sync" or "async")."""
    if api == "sync":
        return _lg_sync(builder, db, steps, mode)
    return asyncio.run(_lg_async(builder, db, steps, mode))


def langgraph_version() -> str | None:
    """The installed langgraph's version, or None when it (or its SQLite saver) is missing."""
    try:
        from importlib.metadata import version

        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: F401
        from langgraph.graph import StateGraph  # noqa: F401
    except ImportError:
        return None
    return version("langgraph")


def langgraph_figures(d: Path) -> tuple[dict[str, float], dict[str, str]]:
    """LangGraph's figure for each measure (the faster of its sync and async APIs), and which."""
    figures: dict[str, float] = {}
    apis: dict[str, str] = {}
    cases: list[tuple[str, Callable[[bool], Any], int, str]] = [
        ("cycle_supersteps_per_s", _lg_cycle, CYCLE_SUPERSTEPS, "cycle"),
        ("fan_out_50_ms_per_round", _lg_fan, 2 * ROUNDS + 1, "fan"),
        ("emit_latency", _lg_emitter, 1, "emit"),
    ]
    for key, builder, steps, mode in cases:
        for where in ("sqlite", "memory"):
            found: dict[str, Any] = {}
            for api in ("sync", "async"):
                runs = [
                    _lg_once(builder, d / f"lg-{mode}-{where}-{api}-{i}.db", steps, mode, api)
                    if where == "sqlite"
                    else _lg_once(builder, None, steps, mode, api)
                    for i in range(WARMUP + RUNS)
                ][WARMUP:]
                found[api] = pooled(runs) if mode == "emit" else sum(runs)
            if mode == "emit":
                lat = {api: _latency_ms(v) for api, v in found.items()}
                best = min(lat, key=lambda api: lat[api][1])
                figures[f"emit_latency_{where}_p50_ms"] = lat[best][0]
                figures[f"emit_latency_{where}_p99_ms"] = lat[best][1]
                apis[f"emit_latency_{where}_p50_ms"] = apis[f"emit_latency_{where}_p99_ms"] = best
                continue
            best = min(found, key=lambda api: found[api])
            name = key if where == "sqlite" else f"{key}_memory"
            if mode == "cycle":
                figures[name] = CYCLE_SUPERSTEPS * RUNS / found[best]
            else:
                figures[name] = found[best] / (ROUNDS * RUNS) * 1000
            apis[name] = best
    return figures, apis


# (key, label, format, target); higher is better only for the supersteps/s rows
VERSUS: list[tuple[str, str, str, str]] = [
    (
        "cycle_supersteps_per_s",
        "2-node cycle, SQLite | SqliteSaver (steps/s)",
        "{:,.0f}",
        ">=5,000",
    ),
    ("cycle_supersteps_per_s_memory", "2-node cycle, memory | none (steps/s)", "{:,.0f}", ""),
    ("fan_out_50_ms_per_round", "fan-out 50, SQLite | SqliteSaver (ms/round)", "{:.2f}", "<=5"),
    ("fan_out_50_ms_per_round_memory", "fan-out 50, memory | none (ms/round)", "{:.2f}", ""),
    ("emit_latency_sqlite_p50_ms", "emit p50, SQLite | SqliteSaver (ms)", "{:.3f}", ""),
    ("emit_latency_sqlite_p99_ms", "emit p99, SQLite | SqliteSaver (ms)", "{:.3f}", "<=1"),
    ("emit_latency_memory_p50_ms", "emit p50, memory | none (ms)", "{:.3f}", ""),
    ("emit_latency_memory_p99_ms", "emit p99, memory | none (ms)", "{:.3f}", "<=1"),
]


def versus_table(results: dict[str, float], lg: dict[str, float], apis: dict[str, str]) -> str:
    """actorflow | LangGraph rows: labelled_table with LangGraph as the baseline, plus the ratio."""
    lines = labelled_table(VERSUS, results, lg)
    lines[0] = lines[0].replace("    baseline", "   LangGraph") + f" {'speed-up':>9}  LG API"
    lines[1] = "-" * len(lines[0])
    for i, (key, _, _, _) in enumerate(VERSUS, start=2):
        faster = results[key] / lg[key] if "_per_s" in key else lg[key] / results[key]
        lines[i] += f" {faster:>8.2f}x  {apis[key]}"
    return "\n".join(lines)


def measure(backend: str, d: Path) -> dict[str, float]:
    def on(bench: Callable[[Any], Any], name: str | None) -> list[Any]:
        """``bench``'s results over repeated runs, each on a fresh journal: a file
        ``<name><i>.db``, or in memory when ``name`` is None."""

        def run(i: int) -> Any:
            journal = af.MemoryJournal() if name is None else af.SQLiteJournal(d / f"{name}{i}.db")
            return anyio.run(bench, journal, backend=backend)

        return repeated(run)

    total_steps = CYCLE_SUPERSTEPS * RUNS
    total_rounds = ROUNDS * RUNS
    results: dict[str, float] = {
        "sequential_steps_per_s": total_steps / sum(on(bench_steps, "s")),
        "cycle_supersteps_per_s": total_steps / sum(on(bench_cycle, "c")),
        "fan_out_50_ms_per_round": sum(on(bench_fan_out, "f")) / total_rounds * 1000,
        "cycle_supersteps_per_s_memory": total_steps / sum(on(bench_cycle, None)),
        "fan_out_50_ms_per_round_memory": sum(on(bench_fan_out, None)) / total_rounds * 1000,
    }
    p50, p99 = _latency_ms(pooled(on(bench_emit_latency, "e")))
    results["emit_latency_sqlite_p50_ms"] = p50
    results["emit_latency_sqlite_p99_ms"] = p99
    p50, p99 = _latency_ms(pooled(on(bench_emit_latency, None)))
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
    lg_version = langgraph_version()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.backend, Path(tmp))
        print(f"actorflow graphs, backend={args.backend}, SQLite synchronous=NORMAL")
        print(table(results, load_baseline(args.baseline), TARGETS))
        figures: dict[str, Any] = dict(results)
        if lg_version is None:
            print(
                "vs LangGraph: skipped, langgraph is not importable; to compare, run this "
                "script with a Python that has langgraph and langgraph-checkpoint-sqlite "
                "(see the docstring)"
            )
        else:
            lg, apis = langgraph_figures(Path(tmp))
            print(
                f"\nvs LangGraph {lg_version} in this run (SQLite synchronous=NORMAL, "
                'durability="sync"; rows: actorflow journal | LangGraph checkpointer; '
                "change: actorflow vs LangGraph; speed-up > 1: actorflow is faster)"
            )
            print(versus_table(results, lg, apis))
            figures["langgraph_version"] = lg_version
            figures.update({f"langgraph_{key}": value for key, value in lg.items()})
    save(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
