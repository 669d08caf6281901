"""Listing runs on a big journal: one page of runs costs what it holds.

    python benchmarks/bench_list_runs.py [--runs 1000000] [--backend asyncio|trio]
                                         [--json out.json] [--baseline old.json]

Makes a SQLite journal of ``--runs`` finished runs (a few through a runtime,
the rest inserted in bulk with plain sqlite3, as the journal stores them),
then times, from a read-only runtime:
  - ``Runtime.page_runs(limit=50)`` (what ``GET /runs`` and ``actorflow runs
    --limit 50`` read): the newest page, a page deep in the journal (cursor),
    and a page of one status (p50/p99 of 200 calls; target p99 <= 50 ms);
  - ``Runtime.list_runs()``, which loads every run, once: the baseline.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _report import add_report_args, load_baseline, save, table

import actorflow as af

CALLS = 200


@af.workflow
async def bl_done(ctx: af.WorkflowContext, i: int) -> int:
    return i


async def _seed(db: Path) -> None:
    async with af.Runtime(db) as rt:
        for i in range(3):
            await rt.run(bl_done, i, run_id=f"seed-{i}")


def _bulk(db: Path, runs: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        rows = (
            (f"bulk-{i:07d}", "bl_done", "FAILED" if i % 10 == 0 else "COMPLETED", float(i),
             float(i) + 0.5, b"\xc0", None if i % 10 == 0 else b"\x01")
            for i in range(runs)
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO runs (run_id, workflow, status, started_at, finished_at, input, output) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _measure(db: Path, runs: int) -> dict[str, float]:
    async with af.Runtime(af.SQLiteJournal(db, readonly=True)) as rt:
        deep = f"bulk-{runs // 2:07d}"

        async def times(call: object) -> list[float]:
            out = []
            for _ in range(CALLS):
                started = time.perf_counter()
                await call()  # type: ignore[operator]
                out.append((time.perf_counter() - started) * 1000)
            return out

        newest = await times(lambda: rt.page_runs(limit=50))
        cursor = await times(lambda: rt.page_runs(limit=50, before=deep))
        failed = await times(lambda: rt.page_runs("FAILED", limit=50, before=deep))
        started = time.perf_counter()
        every = await rt.list_runs()
        full = (time.perf_counter() - started) * 1000
        assert len(every) == runs + 3
    q = lambda xs: statistics.quantiles(xs, n=100)[98]  # noqa: E731
    return {
        "page_runs newest p50 (ms)": statistics.median(newest),
        "page_runs newest p99 (ms)": q(newest),
        "page_runs deep cursor p99 (ms)": q(cursor),
        "page_runs status + cursor p99 (ms)": q(failed),
        "list_runs, all runs (ms)": full,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    add_report_args(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as tmp:
        db = Path(tmp) / "big.db"
        anyio.run(_seed, db, backend=args.backend)
        _bulk(db, args.runs)
        figures = anyio.run(_measure, db, args.runs, backend=args.backend)
    targets = {
        "page_runs newest p99 (ms)": ("<=", 50.0),
        "page_runs deep cursor p99 (ms)": ("<=", 50.0),
        "page_runs status + cursor p99 (ms)": ("<=", 50.0),
    }
    print(f"{args.runs:,} finished runs, {CALLS} calls each, {args.backend}")
    print(table(figures, load_baseline(args.baseline), targets))
    save(figures, args.json)


if __name__ == "__main__":
    main()
