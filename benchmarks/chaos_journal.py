"""Damaged copies of a journal: every read path works or raises JournalError, never hangs.

Usage::

    python benchmarks/chaos_journal.py [--cases N] [--seed S] [--timeout SECONDS]

Builds one journal with a few runs (completed with streams, failed after
retries, still running), closes it, then for each case copies the ``.db``
(a cleanly closed journal is one file) and damages the copy, at random but
repeatably (``--seed``): either one cell of a table is set to a value of
another type or range (NULL, an int, a text, a blob, -1, 2**62, an unknown
status), or a few bytes of the file are flipped (past the 100-byte header
half the time). Every read path is then run on the copy: opening it
readonly, ``list_runs``, ``get_run``, ``load_history`` and folding it as
replay does, ``list_streams``, ``read_stream`` page by page to the end of
a stream of a finished run, and the command line's ``runs``, ``show`` and
``logs``. Each must either work or raise ``JournalError`` (the command line:
exit 0, or 1 with one line on stderr); anything else is a failure, and a case
that takes longer than ``--timeout`` seconds is a hang (the process dumps
its threads and exits 3).

Prints one line per case that failed, then a summary line:
``chaos: N cases, W worked, E journal errors, F failures``. Exit status 1
if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import anyio

import actorflow as af
from actorflow._cli import main as cli_main
from actorflow._history import fold
from actorflow.records import RunStarted, StepStarted, StreamWrite

_COLUMNS = {
    "runs": [
        "run_id",
        "workflow",
        "status",
        "started_at",
        "finished_at",
        "input",
        "output",
        "error",
        "last_record",
    ],
    "records": ["seq", "run_id", "body", "prev"],
    "streams": ["id", "run_id", "key", "length", "closed"],
    "stream_entries": ["stream", '"offset"', "value", "step_id", "attempt", "position"],
}


@af.step(retries=1)
async def flaky(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.write_stream("tokens", f"token {i}")
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    return n


@af.workflow
async def chaos_wf(ctx: af.WorkflowContext, n: int) -> int:
    await ctx.write_stream("log", "begin")
    total = await ctx.step(flaky, n)
    if n == 13:
        raise RuntimeError("unlucky")
    await ctx.write_stream("log", "end")
    return total


async def build(path: Path) -> None:
    async with af.Runtime(path) as rt:
        await rt.run(chaos_wf, 5, run_id="done")
        with contextlib.suppress(af.RunFailed):
            await rt.run(chaos_wf, 13, run_id="failed")
    journal = af.SQLiteJournal(path)
    await journal.open()
    tickets = [
        journal.append(RunStarted("running", workflow="chaos_wf", input=b"\x03", at=1.0)),
        journal.append(StepStarted("running", 0, "flaky", "flaky", 1, 2.0)),
        journal.append(StreamWrite("running", "tokens", 0, b"\xa1a", "flaky", 1)),
    ]
    await journal.wait_committed(tickets[-1])
    await journal.close()


def damage(path: Path, rng: random.Random) -> str:
    if rng.random() < 0.6:
        table = rng.choice(sorted(_COLUMNS))
        column = rng.choice(_COLUMNS[table])
        value: Any = rng.choice(
            [None, rng.randrange(-5, 50), "text", b"\xc1\x00", -1, 2**62, "EXPLODED", b""]
        )
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            rowid = "seq" if table in ("runs", "records") else "rowid"
            if table == "stream_entries":
                rows = conn.execute('SELECT stream, "offset" FROM stream_entries').fetchall()
                stream, offset = rng.choice(rows)
                where, args = 'stream = ? AND "offset" = ?', (stream, offset)
            else:
                ids = [r for (r,) in conn.execute(f"SELECT {rowid} FROM {table}")]
                where, args = f"{rowid} = ?", (rng.choice(ids),)
            try:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (value, *args))
            except sqlite3.IntegrityError:
                return f"{table}.{column} = {value!r}: refused by a constraint"
        finally:
            conn.close()
        return f"{table}.{column} = {value!r} where {where} {args}"
    data = bytearray(path.read_bytes())
    start = 100 if rng.random() < 0.5 else 0
    flips = []
    for _ in range(rng.randrange(1, 8)):
        at = rng.randrange(start, len(data))
        data[at] ^= 1 << rng.randrange(8)
        flips.append(at)
    path.write_bytes(bytes(data))
    return f"bits flipped at {sorted(flips)}"


async def read_everything(path: Path) -> None:
    journal = af.SQLiteJournal(path, readonly=True)
    await journal.open()
    try:
        runs = await journal.list_runs()
        for status in af.RunStatus:
            await journal.list_runs(status)
        for run_id in [*(r.run_id for r in runs), "done", "failed", "running", "nope"]:
            await journal.get_run(run_id)
            fold(await journal.load_history(run_id))
            streams = await journal.list_streams(run_id)
            for key in {*(s.key for s in streams), "tokens", "log"}:
                offset, pages = 0, 0
                while True:
                    page = await journal.read_stream(run_id, key, offset, 3)
                    offset += len(page.entries)
                    pages += 1
                    if page.closed or (not page.entries and run_id in ("running", "nope")):
                        break
                    if not page.entries:
                        info = await journal.get_run(run_id)
                        if info is not None and info.status.is_terminal:
                            raise AssertionError(
                                f"stream {key!r} of finished run {run_id!r} never ends"
                            )
                        break
                    if pages > 1000:
                        raise AssertionError(f"stream {key!r} of {run_id!r} pages forever")
    finally:
        await journal.close()


def run_cli(argv: list[str]) -> str | None:
    """None if the command worked or said JournalError in one line; else what went wrong."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    text = err.getvalue()
    if code == 0 or (code == 1 and text.count("\n") == 1 and "Traceback" not in text):
        return None
    return f"actorflow {' '.join(argv)}: exit {code}: {text!r}"


def check(path: Path) -> tuple[str, str | None]:
    """("worked" | "journal error", failure or None)."""
    outcome = "worked"
    try:
        anyio.run(read_everything, path)
    except af.JournalError:
        outcome = "journal error"
    except Exception:
        return outcome, traceback.format_exc()
    for run_id in ("done", "failed", "running"):
        for argv in (["show", "--db", str(path), run_id], ["logs", "--db", str(path), run_id]):
            try:
                problem = run_cli(argv)
            except Exception:
                problem = f"actorflow {' '.join(argv)}:\n{traceback.format_exc()}"
            if problem is not None:
                return outcome, problem
    problem = run_cli(["runs", "--db", str(path)])
    return outcome, problem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a case may take")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts = {"worked": 0, "journal error": 0, "failures": 0}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        anyio.run(build, base)
        for case in range(args.cases):
            path = Path(tmp) / f"case{case}.db"
            shutil.copyfile(base, path)
            what = damage(path, rng)
            print(f"case {case}: {what}", file=sys.stderr, flush=True)
            faulthandler.dump_traceback_later(args.timeout, exit=True)
            try:
                outcome, failure = check(path)
            finally:
                faulthandler.cancel_dump_traceback_later()
            if failure is not None:
                counts["failures"] += 1
                print(f"FAILED case {case} ({what}):\n{failure}")
            else:
                counts[outcome] += 1
            for side in Path(tmp).glob(f"case{case}.db*"):
                os.unlink(side)
    print(
        f"chaos: {args.cases} cases (seed {args.seed}), {counts['worked']} worked, "
        f"{counts['journal error']} journal errors, {counts['failures']} failures"
    )
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
