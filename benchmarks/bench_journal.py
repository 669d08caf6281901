"""How fast SQLiteJournal commits durable stream writes, next to raw SQLite.

Usage::

    python benchmarks/bench_journal.py [--backend asyncio|trio] [--json out.json]
                                       [--baseline old.json] [--rows N] [--repeat K]

Prints (1) the machine's raw SQLite ceiling (plain ``sqlite3`` inserts of
100-byte rows, 1,000 per commit, WAL, synchronous=NORMAL), (2) committed
StreamWrite appends per second through SQLiteJournal (append N, then
``wait_committed`` on the last), and (3) the ratio of (2) to (1). Each figure
is the best of ``--repeat`` runs. With ``--baseline`` it also prints the
change against a JSON written by an earlier ``--json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from actorflow._journals._sqlite import SQLiteJournal
from actorflow.records import RunStarted, StreamWrite

sys.path.insert(0, str(Path(__file__).parent))
from _baselines import sqlite_ceiling
from _report import add_report_args, labelled_table, load_baseline, save

VALUE = b"\xb4" + b"x" * 52  # a msgpack str, about the size of a few LLM tokens


async def journal_stream_writes(rows: int) -> float:
    """Committed StreamWrite appends per second through a fresh SQLiteJournal."""
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        journal = SQLiteJournal(os.path.join(directory, "journal.db"), synchronous="normal")
        await journal.open()
        try:
            await journal.wait_committed(
                journal.append(RunStarted("run-1", workflow="bench", input=b"\xc0", at=0.0))
            )
            started = time.perf_counter()
            ticket = 0
            for offset in range(rows):
                ticket = journal.append(
                    StreamWrite(
                        "run-1",
                        key="tokens",
                        offset=offset,
                        value=VALUE,
                        step_id="generate",
                        attempt=1,
                    )
                )
            await journal.wait_committed(ticket)
            elapsed = time.perf_counter() - started
        finally:
            await journal.close()
    return rows / elapsed


def measure(backend: str, rows: int, repeat: int) -> dict[str, Any]:
    ceiling = max(sqlite_ceiling(rows) for _ in range(repeat))
    journal = max(anyio.run(journal_stream_writes, rows, backend=backend) for _ in range(repeat))
    return {
        "backend": backend,
        "rows": rows,
        "sqlite_ceiling_per_s": round(ceiling),
        "journal_stream_writes_per_s": round(journal),
        "ratio": round(journal / ceiling, 3),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


ROWS = [
    ("sqlite_ceiling_per_s", "(1) raw SQLite ceiling, rows/s", "{:,.0f}", ""),
    ("journal_stream_writes_per_s", "(2) SQLiteJournal StreamWrite, committed/s", "{:,.0f}", ""),
    ("ratio", "(3) ratio (2)/(1)", "{:.3f}", ""),
]


def report(result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    lines = [
        f"actorflow journal benchmark: {result['backend']}, {result['rows']:,} rows, "
        f"Python {result['python']}, SQLite {result['sqlite']}, {result['machine']}",
    ]
    lines += labelled_table(ROWS, result, baseline)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_report_args(parser)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)
    baseline = load_baseline(args.baseline)
    result = measure(args.backend, args.rows, args.repeat)
    print(report(result, baseline))
    save(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
