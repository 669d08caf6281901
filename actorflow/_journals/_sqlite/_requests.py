"""Requests: how a runtime that does not write a journal asks the one that does.

One runtime writes a SQLite journal (the writer lock); it executes the runs.
Every other runtime on the file (another worker of a web server waiting to
take over, a client with ``execute=False``, the command line) reads it, and
asks the writer for what only the writer may do by committing a row to the
``requests`` table, in a short transaction of its own:

- ``start``: the run's row itself is inserted with the request (PENDING, no
  records yet), so the start is committed, and visible to every reader, when
  the call returns; the writer then executes it as it resumes any PENDING run;
- ``send`` and ``cancel``: the writer applies them (``Runtime.send``,
  ``Runtime.cancel``) and writes the outcome back into the row, which the
  asker waits for.

The writer never caches anything of this table, and the askers never touch
the tables the writer caches, so the two never confuse each other; SQLite's
own locking serializes their transactions (with a busy timeout).

After each request it commits, an asker touches the file ``<journal>-requests``
(the doorbell). The writer waits on writes to that file alone (see
``_watch``), not on the journal's commits, so its own commits, the hot path,
cost it nothing; where writes are not reported it polls the table instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading

import anyio.to_thread
import attrs

from ..._eventloop import current_call_soon
from ...abc import Request
from ._errors import map_sqlite_errors
from ._watch import FileWatch

__all__ = ("RequestBox", "Requests")

_CREATE = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    body BLOB,
    done INTEGER NOT NULL DEFAULT 0,
    outcome BLOB
)
"""
_INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow, status, started_at, input) "
    "VALUES (?, ?, 'PENDING', ?, ?) ON CONFLICT (run_id) DO NOTHING"
)
_BUSY_TIMEOUT_MS = 10_000
# How long the writer waits for the doorbell before it looks anyway: with a
# file watch, a backstop for a write it was not told of; without one, a poll.
_WATCHED_BACKSTOP = 1.0
_POLL = 0.05


def ring(path: str) -> None:
    """Touch the doorbell of the journal at ``path``: a request was committed."""
    bell = doorbell(path)
    try:
        with open(bell, "a"):
            pass
        os.utime(bell)
    except OSError:  # the writer finds the request anyway, at its backstop
        pass


def _start(watch: FileWatch, bell: str) -> bool:
    """Create the doorbell if need be (a file watch needs the file), then watch it."""
    try:
        with open(bell, "a"):
            pass
    except OSError:
        return False
    return watch.start()


def doorbell(path: str) -> str:
    """The doorbell file of the journal at ``path``."""
    return os.path.realpath(path) + "-requests"


@attrs.define(eq=False)
class RequestBox:
    """A read-write connection to the journal file for requests, used from worker threads.

    Invariant: the connection is used only under ``guard`` (one worker thread
    at a time).
    """

    path: str
    conn: sqlite3.Connection
    guard: threading.Lock = attrs.field(factory=threading.Lock)

    @classmethod
    def connect(cls, path: str) -> RequestBox:
        """Connect to the journal at ``path`` (in a worker thread: it blocks)."""
        return cls.open(path, os.path.realpath(path))

    @classmethod
    def open(cls, path: str, real: str) -> RequestBox:
        """Connect to the file at ``real`` and make sure the requests table exists."""
        with map_sqlite_errors(f"cannot open {path!r} to send it requests"):
            conn = sqlite3.connect(real, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                # As the journal's default: in WAL mode a crash of the process
                # loses nothing committed; a power loss may lose the last commits.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_CREATE)
            except BaseException:
                conn.close()
                raise
        return cls(path, conn)

    def start(self, run_id: str, workflow: str, at: float, input: bytes) -> str:
        """Insert a PENDING run and its start request; return the run's workflow.

        If the run exists already, nothing is written and its workflow is
        returned, so the caller can tell an idempotent start from a clash.
        """
        with self.guard, map_sqlite_errors(f"cannot start a run in {self.path!r}"):
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                inserted = conn.execute(_INSERT_RUN, (run_id, workflow, at, input)).rowcount
                if inserted:
                    conn.execute(
                        "INSERT INTO requests (kind, run_id) VALUES ('start', ?)", (run_id,)
                    )
                row = conn.execute("SELECT workflow FROM runs WHERE run_id = ?", (run_id,))
                (existing,) = row.fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if inserted:
            ring(self.path)
        return str(existing)

    def submit(self, kind: str, run_id: str, body: bytes | None) -> int:
        """Commit a request; return its number."""
        with self.guard, map_sqlite_errors(f"cannot send a request to {self.path!r}"):
            cursor = self.conn.execute(
                "INSERT INTO requests (kind, run_id, body) VALUES (?, ?, ?)", (kind, run_id, body)
            )
        ring(self.path)
        return int(cursor.lastrowid or 0)

    def pending(self) -> list[Request]:
        """The requests not yet done, in the order they were made."""
        with self.guard, map_sqlite_errors(f"cannot read the requests of {self.path!r}"):
            rows = self.conn.execute(
                "SELECT seq, kind, run_id, body FROM requests WHERE done = 0 ORDER BY seq"
            ).fetchall()
        return [Request(seq, kind, run_id, body) for seq, kind, run_id, body in rows]

    def finish(self, outcomes: list[tuple[int, bytes | None]]) -> None:
        """Mark requests done, each with its outcome (None: it succeeded), in one commit."""
        with self.guard, map_sqlite_errors(f"cannot answer a request in {self.path!r}"):
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "UPDATE requests SET done = 1, outcome = ? WHERE seq = ?",
                    [(outcome, seq) for seq, outcome in outcomes],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def outcome(self, seq: int) -> tuple[bool, bytes | None]:
        """Whether request ``seq`` is done, and its outcome; a done one is deleted."""
        with self.guard, map_sqlite_errors(f"cannot read the requests of {self.path!r}"):
            row = self.conn.execute(
                "SELECT done, outcome FROM requests WHERE seq = ?", (seq,)
            ).fetchone()
            if row is not None and row[0]:
                self.conn.execute("DELETE FROM requests WHERE seq = ?", (seq,))
        if row is None:
            raise LookupError(seq)
        return bool(row[0]), row[1]

    def close(self) -> None:
        """Close the connection."""
        with self.guard:
            self.conn.close()


@attrs.define(eq=False)
class Requests:
    """The :class:`actorflow.abc.RequestQueue` of a SQLite journal: the box, from async code.

    The connection is opened on first use, so a reader that never asks (the
    command line's ``runs``) never needs to write the file.
    """

    path: str
    # Invariant: created once, in a worker thread, under _opening (an anyio lock).
    _box: RequestBox | None = None
    _opening: anyio.Lock = attrs.field(factory=anyio.Lock)
    # The writer's side (loop thread only): the doorbell's watch, and the
    # event it sets; pending() replaces the event before it reads, so a ring
    # after that read began is never slept through.
    _watch: FileWatch | None = None
    _watching: bool = False
    _rung: anyio.Event = attrs.field(factory=anyio.Event)

    async def _get(self) -> RequestBox:
        if self._box is None:
            async with self._opening:
                if self._box is None:
                    self._box = await anyio.to_thread.run_sync(RequestBox.connect, self.path)
        return self._box

    async def start(self, run_id: str, workflow: str, at: float, input: bytes) -> str:
        """See :meth:`actorflow.abc.RequestQueue.start`."""
        box = await self._get()
        return await anyio.to_thread.run_sync(box.start, run_id, workflow, at, input)

    async def submit(self, kind: str, run_id: str, body: bytes | None) -> int:
        """See :meth:`actorflow.abc.RequestQueue.submit`."""
        box = await self._get()
        return await anyio.to_thread.run_sync(box.submit, kind, run_id, body)

    async def pending(self) -> list[Request]:
        """See :meth:`actorflow.abc.RequestQueue.pending`."""
        box = await self._get()
        if self._rung.is_set():
            self._rung = anyio.Event()
        return await anyio.to_thread.run_sync(box.pending)

    async def wait_for_request(self) -> None:
        """See :meth:`actorflow.abc.RequestQueue.wait_for_request`."""
        if self._watch is None and not self._watching:
            self._watching = True
            call_soon = current_call_soon()
            bell = doorbell(self.path)
            watch = FileWatch.file(bell, lambda: call_soon(self._ring))
            if await anyio.to_thread.run_sync(_start, watch, bell):
                self._watch = watch
        with anyio.move_on_after(_WATCHED_BACKSTOP if self._watch is not None else _POLL):
            await self._rung.wait()

    def _ring(self) -> None:
        self._rung.set()

    async def finish(self, outcomes: list[tuple[int, bytes | None]]) -> None:
        """See :meth:`actorflow.abc.RequestQueue.finish`."""
        box = await self._get()
        await anyio.to_thread.run_sync(box.finish, outcomes)

    async def outcome(self, seq: int) -> tuple[bool, bytes | None]:
        """See :meth:`actorflow.abc.RequestQueue.outcome`."""
        box = await self._get()
        return await anyio.to_thread.run_sync(box.outcome, seq)

    def close(self) -> None:
        """Close the connection and the watch, if opened (in a worker thread: it may block)."""
        box, self._box = self._box, None
        if box is not None:
            box.close()
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
