"""Reading a journal: a pool of read-only connections, and the readonly follower."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

import attrs

from ._errors import DAMAGED, map_sqlite_errors
from ._schema import check_pragmas

__all__ = ("Follower", "Readers")

_T = TypeVar("_T")


@attrs.define(eq=False)
class Readers:
    """Read-only connections to one journal file, reused by the worker threads that query.

    Each query runs in one read transaction, so it sees one committed snapshot.
    """

    path: str  # Invariant: immutable (the path as the user gave it, for messages)
    uri: str  # Invariant: immutable
    # Invariant: under `guard`; a connection popped from it is used by one thread only.
    pool: list[sqlite3.Connection] = attrs.field(factory=list)
    guard: threading.Lock = attrs.field(factory=threading.Lock)

    @classmethod
    def of(cls, path: str, real: str) -> Readers:
        """Readers of the file at ``real`` (``path`` as the user gave it)."""
        return cls(path, pathlib.Path(real).as_uri() + "?mode=ro")

    def query(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``query`` in one read transaction (in a worker thread: it blocks)."""
        with self.guard:
            conn = self.pool.pop() if self.pool else None
        if conn is None:
            conn = self.connect()
        try:
            with map_sqlite_errors(f"cannot read {self.path!r}", DAMAGED):
                conn.execute("BEGIN")
                try:
                    result = query(conn)
                finally:
                    conn.execute("ROLLBACK")
        except BaseException:
            conn.close()
            raise
        with self.guard:
            self.pool.append(conn)
        return result

    def connect(self) -> sqlite3.Connection:
        """A new read-only connection."""
        with map_sqlite_errors(f"cannot open {self.path!r} for reading"):
            conn = sqlite3.connect(
                self.uri, uri=True, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA query_only = 1")
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self) -> None:
        """Close every pooled connection."""
        with self.guard:
            pool, self.pool = self.pool, []
        for conn in pool:
            conn.close()


@attrs.define(eq=False)
class Follower:
    """How a readonly journal notices commits of another process: SQLite's ``data_version``.

    Invariant: loop thread only, after ``open`` (which builds it in a worker
    thread while the loop awaits).
    """

    path: str
    conn: sqlite3.Connection
    data_version: int = 0
    schema_version: int = 0

    @classmethod
    def open(cls, readers: Readers) -> Follower:
        """Connect, check that the file is a journal, and note its ``data_version``."""
        conn = readers.connect()
        try:
            with map_sqlite_errors(f"cannot read {readers.path!r}"):
                schema_version = check_pragmas(conn, readers.path)
                data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        return cls(readers.path, conn, data_version, schema_version)

    def poll(self) -> bool:
        """Whether another connection committed since the last poll."""
        with map_sqlite_errors(f"cannot watch {self.path!r} for commits"):
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self.data_version:
            return False
        self.data_version = version
        return True

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
