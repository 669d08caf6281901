"""Reading a journal: a pool of read-only connections, and the readonly follower."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import attrs

from ..._eventloop import CallSoon
from ._errors import DAMAGED, map_sqlite_errors
from ._schema import check_pragmas
from ._watch import FileWatch

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


# How a follower waits for a commit of another process. With a file watch, a
# write to the journal's files wakes it; since SQLite publishes a commit just
# after writing its WAL, it then asks again after each of these delays before
# it waits for the next write, and asks anyway every _WATCHED_MAX, in case a
# write went unreported. Without a watch it polls, every _POLL_MIN right
# after a commit, backing off to _POLL_MAX while none comes.
_AFTER_WAKE = (0.0005, 0.001, 0.002, 0.004, 0.008)
_WATCHED_MAX = 0.25
_POLL_MIN = 0.001
_POLL_MAX = 0.010


@attrs.define(eq=False)
class Follower:
    """How a readonly journal notices commits of another process: SQLite's ``data_version``.

    Invariant: loop thread only, after ``open`` (which builds it in a worker
    thread while the loop awaits); ``watch`` runs its own thread, which only
    calls ``call_soon``.
    """

    path: str
    conn: sqlite3.Connection
    data_version: int = 0
    schema_version: int = 0
    watch: FileWatch | None = None
    # Incremented, and _woken set, each time the watch reports a write.
    _writes: int = 0
    _woken: anyio.Event | None = None

    def start_watch(self, real: str, call_soon: CallSoon) -> None:
        """Watch the journal's files for writes, if the platform can (else it polls)."""
        watch = FileWatch.of([real + "-wal", real], lambda: call_soon(self._written))
        if watch.start():
            self.watch = watch

    def _written(self) -> None:
        self._writes += 1
        woken, self._woken = self._woken, None
        if woken is not None:
            woken.set()

    async def changed(self, done: Callable[[], bool]) -> bool:
        """Wait until another connection commits, or ``done()``; whether it saw the commit.

        Several waiters share a follower: the one that sees a commit wakes the
        others, which then find ``done()`` true (the journal moved on).
        """
        if self.watch is None:
            interval = _POLL_MIN
            while not done():
                if self.poll():
                    return True
                await anyio.sleep(interval)
                interval = min(interval * 2, _POLL_MAX)
            return False
        after_wake = len(_AFTER_WAKE)
        while not done():
            writes = self._writes
            if self.poll():
                self._written()  # the other waiters: the journal moved on
                return True
            if self._writes != writes:
                after_wake = 0
            elif after_wake < len(_AFTER_WAKE):
                await anyio.sleep(_AFTER_WAKE[after_wake])
                after_wake += 1
            else:
                if self._woken is None:
                    self._woken = anyio.Event()
                with anyio.move_on_after(_WATCHED_MAX):
                    await self._woken.wait()
                after_wake = 0
        return False

    def stop_watch(self) -> None:
        """Stop watching (in a worker thread: it joins the watch's thread)."""
        watch, self.watch = self.watch, None
        if watch is not None:
            watch.stop()

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
