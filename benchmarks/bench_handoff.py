"""What a commit costs when it is handed to a thread: the reason for inline commits.

    python benchmarks/bench_handoff.py [--backend asyncio|trio] [--json out.json]
                                       [--baseline old.json]

Measures, in microseconds (median of 5,000):
  - thread_round_trip_us: a task hands an item to a thread through a
    ``queue.SimpleQueue`` and waits until the thread answers through the loop's
    thread-safe ``call_soon`` (what a commit by the writer thread costs a
    waiter, with no SQLite work at all);
  - sqlite_commit_us: one WAL transaction (synchronous=NORMAL) of two
    records and a row update, the shape of a sequential step's commit;
  - step_sqlite_us: one sequential journaled step through ``af.Runtime`` on a
    SQLite journal (inline commits), for comparison.
"""

from __future__ import annotations

import argparse
import os
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _report import add_report_args, load_baseline, save, table
from bench_runtime import many_steps

import actorflow as af
from actorflow._eventloop import current_call_soon

ROUNDS = 5_000


async def thread_round_trip() -> float:
    call_soon = current_call_soon()
    requests: queue.SimpleQueue[anyio.Event | None] = queue.SimpleQueue()

    def answer() -> None:
        while (event := requests.get()) is not None:
            call_soon(event.set)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    samples = []
    for _ in range(ROUNDS):
        event = anyio.Event()
        started = time.perf_counter()
        requests.put(event)
        await event.wait()
        samples.append(time.perf_counter() - started)
    requests.put(None)
    thread.join()
    return statistics.median(samples) * 1e6


def sqlite_commit() -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(os.path.join(directory, "c.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, body BLOB, prev INTEGER)")
        conn.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, last INTEGER)")
        conn.execute("INSERT INTO runs VALUES ('r', 0)")
        body = b"x" * 60
        samples = []
        for i in range(ROUNDS):
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO records VALUES (?, ?, ?), (?, ?, ?)",
                (2 * i + 1, body, 2 * i, 2 * i + 2, body, 2 * i + 1),
            )
            conn.execute("UPDATE runs SET last = ? WHERE run_id = 'r'", (2 * i + 2,))
            conn.execute("COMMIT")
            samples.append(time.perf_counter() - started)
        conn.close()
    return statistics.median(samples) * 1e6


async def step_sqlite() -> float:
    with tempfile.TemporaryDirectory() as directory:
        async with af.Runtime(Path(directory) / "s.db") as rt:
            await rt.run(many_steps, 10)
            started = time.perf_counter()
            await rt.run(many_steps, 1_000)
            return (time.perf_counter() - started) / 1_000 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_args(parser)
    args = parser.parse_args()
    results = {
        "thread_round_trip_us": anyio.run(thread_round_trip, backend=args.backend),
        "sqlite_commit_us": sqlite_commit(),
        "step_sqlite_us": anyio.run(step_sqlite, backend=args.backend),
    }
    print(f"commit hand-off, backend={args.backend}")
    print(table(results, load_baseline(args.baseline), {}))
    save(results, args.json)


if __name__ == "__main__":
    main()
