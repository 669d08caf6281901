"""Reference figures of this machine that benchmarks compare themselves to."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time

__all__ = ("sqlite_ceiling",)


def sqlite_ceiling(rows: int = 100_000, *, row_size: int = 100, per_commit: int = 1_000) -> float:
    """Plain ``sqlite3`` inserts per second: the most a SQLite journal could hope for.

    Inserts ``rows`` rows of ``row_size`` random bytes into a rowid table,
    ``per_commit`` rows per transaction with ``executemany``, in a fresh WAL
    database with ``synchronous=NORMAL`` in a temporary directory.
    """
    payload = os.urandom(row_size)
    batch = [(payload,)] * per_commit
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        conn = sqlite3.connect(os.path.join(directory, "ceiling.db"), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            started = time.perf_counter()
            for done in range(0, rows, per_commit):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO t (data) VALUES (?)", batch[: rows - done])
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
    return rows / elapsed
