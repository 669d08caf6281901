"""The writing side of an open journal: the writer thread, inline commits, the checkpoint thread.

Appends are committed once a tick (see ``SQLiteJournal.append``), by a
dedicated writer thread, which drains every hand-off it finds into one
transaction and wakes every waiter of it at once through the loop's
``call_soon``; or, when the writer thread has nothing in hand, the batch is
small and commits do not fsync, right there in the loop's thread (an *inline
commit*). A hand-off to a thread and back costs two thread wake-ups, three
times a small WAL commit, and a sequential workflow pays it once per step;
under load the thread commits while the loop runs, so big batches always go
there. SQLite's automatic checkpoint is off on the writing connection, so no
checkpoint (which fsyncs) runs inline; a checkpoint thread with a connection
of its own checkpoints instead, while commits go on, and holds commits off
only to copy the last few frames.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import attrs

from ..._eventloop import CallSoon
from ..._exceptions import JournalError
from ...abc import CommitWatch
from ._batch import Batch, BatchWriter
from ._errors import map_sqlite_errors

__all__ = (
    "Counters",
    "SQLiteJournalStatistics",
    "Writer",
)

_MAX_BATCH = 5000
# The once-a-tick flush commits in the event loop's thread when the writer
# thread is idle and at most this many records are pending: a hand-off to the
# thread and back costs two thread wake-ups, three times the commit itself.
# Bigger batches, and every batch while the thread works, go to the thread.
_INLINE_MAX = 64
# WAL pages after which the checkpoint thread checkpoints (SQLite's own
# automatic checkpoint is off, so that it never runs inside an inline commit).
_CHECKPOINT_PAGES = 1000
# Every this many commits (and at close) the writer checks that its file is
# still at its path: a deleted journal would take every commit with it
# silently. Two system calls, so not on every commit.
_CHECK_FILE_EVERY = 32


@attrs.define(eq=False)
class Counters:
    """What a journal committed since it was opened.

    Invariant: written under the writer's lock; read without it by
    ``statistics()``, which may see a count one commit old (each field is one
    reference, replaced whole).
    """

    records: int = 0
    commits: int = 0
    largest_batch: int = 0
    inline_commits: int = 0


@attrs.define(eq=False)
class Writer:
    """One open journal's connection for writing, with the threads that use it.

    ``on_commit`` runs in the loop's thread after each commit, before waiters
    wake; ``on_fail`` runs, holding ``lock``, in whichever thread saw the
    writer fail.
    """

    batch_writer: BatchWriter  # Invariant: used only holding `lock`
    synchronous: str  # Invariant: immutable
    call_soon: CallSoon  # Invariant: immutable; safe from any thread
    watch: CommitWatch  # Invariant: advanced and failed in the loop thread only
    counters: Counters  # Invariant: see Counters
    on_commit: Callable[[Batch], None]  # Invariant: immutable; called in the loop thread
    on_fail: Callable[[BaseException], None]  # Invariant: immutable; called holding `lock`
    # Raises JournalError if the file was deleted or replaced (see JournalFile.check).
    check_file: Callable[[], None]  # Invariant: immutable; called holding `lock`
    # Serializes the writing connection between the loop thread (inline
    # commits), the writer thread and the checkpoint thread's last copy.
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    # Invariant: put by the loop thread, got by the writer thread (a thread-safe queue).
    handoffs: queue.SimpleQueue[Batch | None] = attrs.field(factory=queue.SimpleQueue)
    # Checkpoint requests (True) for the checkpoint thread; None stops it.
    # Invariant: put holding `lock` (or by stop), got by the checkpoint thread.
    checkpoints: queue.SimpleQueue[bool | None] = attrs.field(factory=queue.SimpleQueue)
    # Hand-offs the writer thread has not reported committed yet.
    # Invariant: loop thread only (the thread's report comes through call_soon).
    in_flight: int = 0
    # Invariant: written holding `lock`; read without it by the loop thread only
    # to decide whether to commit inline, which takes `lock` and checks again.
    error: BaseException | None = None
    # Invariant: both started and joined by the loop thread (or a worker thread it awaits).
    thread: threading.Thread | None = None
    checkpointer: threading.Thread | None = None

    def start(self, path: str) -> None:
        """Start the writer and checkpoint threads."""
        self.thread = threading.Thread(
            target=self._write_loop, name=f"actorflow journal writer ({path})", daemon=True
        )
        self.thread.start()
        self.checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            name=f"actorflow journal checkpointer ({path})",
            daemon=True,
        )
        self.checkpointer.start()

    def stop(self) -> None:
        """Stop both threads and close the connection (blocking: run it in a worker thread).

        Everything handed off before is committed first, unless the writer
        failed. Then the whole WAL is copied into the file and truncated, so a
        cleanly closed journal is one self-contained file (a copy of it alone
        has everything). A file deleted or moved meanwhile fails the writer
        now, so ``close`` reports it; the checkpoint comes first, so a moved
        file still gets everything committed.
        """
        self.handoffs.put(None)
        if self.thread is not None:
            self.thread.join()
        self.checkpoints.put(None)
        if self.checkpointer is not None:
            self.checkpointer.join()
        with self.lock:
            try:
                if self.error is None:
                    with map_sqlite_errors(f"cannot checkpoint {self.batch_writer.path!r}"):
                        self.batch_writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    self.check_file()
            except JournalError as exc:
                self._fail(exc)
            finally:
                self.batch_writer.conn.close()

    # -- in the loop's thread --------------------------------------------------

    def hand_off(self, batch: Batch) -> None:
        """Give ``batch`` to the writer thread."""
        self.in_flight += 1
        self.handoffs.put(batch)

    def commit_inline(self, batch: Batch) -> bool:
        """Commit ``batch`` here, in the loop's thread; False if it may not.

        Only when the writer thread has nothing in hand (so commits stay in
        order and the connection is free), the batch is small, and a commit
        does not fsync (``synchronous="normal"``: a WAL commit is a write to
        the page cache, tens of microseconds). SQLite's automatic checkpoint,
        which does fsync, is off; the checkpoint thread checkpoints instead.
        """
        lock = self.lock
        if (
            self.in_flight
            or len(batch) > _INLINE_MAX
            or self.synchronous != "normal"
            or not lock.acquire(blocking=False)
        ):
            return False
        try:
            if self.error is not None:
                return True  # refused: appends after the failure are never committed
            try:
                self._commit(batch)
            except BaseException as exc:
                self._fail(exc)
                self.watch.fail(exc)
                return True
            self.counters.inline_commits += 1
            self._ask_checkpoint()
        finally:
            lock.release()
        self.on_commit(batch)
        self.watch.advance(batch[-1][0])
        return True

    def _committed(self, batch: Batch, batches: int) -> None:
        # After the writer thread committed ``batches`` hand-offs.
        self.in_flight -= batches
        self.on_commit(batch)
        self.watch.advance(batch[-1][0])

    # -- holding the lock, in any thread ----------------------------------------

    def _commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction."""
        counters = self.counters
        if not counters.commits % _CHECK_FILE_EVERY:
            self.check_file()
        self.batch_writer.write(batch)
        counters.records += len(batch)
        counters.commits += 1
        counters.largest_batch = max(counters.largest_batch, len(batch))

    def _ask_checkpoint(self) -> None:
        """After a commit: wake the checkpoint thread if it is time."""
        writer = self.batch_writer
        if writer.unchecked_pages >= _CHECKPOINT_PAGES and not writer.checkpoint_asked:
            writer.checkpoint_asked = True
            self.checkpoints.put(True)

    def _fail(self, exc: BaseException) -> None:
        """The writer failed: refuse appends, undo the transaction."""
        self.error = exc
        self.on_fail(exc)
        conn = self.batch_writer.conn
        # It is (or will be) closed either way.
        with contextlib.suppress(JournalError), map_sqlite_errors("cannot roll back"):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # -- the threads -------------------------------------------------------------

    def _write_loop(self) -> None:
        pending, lock = self.handoffs, self.lock
        stop = False
        while not stop:
            item = pending.get()
            batch: Batch = []
            batches = 0
            while True:
                if item is None:
                    stop = True
                    break
                batch += item
                batches += 1
                if len(batch) >= _MAX_BATCH:
                    break
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
            if not batch:
                continue
            with lock:
                if self.error is not None:
                    return
                try:
                    self._commit(batch)
                except BaseException as exc:
                    self._fail(exc)
                    _notify(self.call_soon, self.watch.fail, exc)
                    return
                self._ask_checkpoint()
            _notify(self.call_soon, self._committed, batch, batches)

    def _checkpoint_loop(self) -> None:
        """The checkpoint thread: copy the WAL back into the file while commits go on.

        A PASSIVE checkpoint on a connection of its own does the bulk of the
        work (copying pages, two fsyncs) without ``lock``, so the loop's
        inline commits and the writer thread carry on meanwhile. A second one,
        holding the lock, copies the few frames committed in between: the
        checkpoint then completes, and the next commit starts the WAL over
        (without it, steady commits would keep the WAL from ever restarting).
        """
        lock, writer, requests = self.lock, self.batch_writer, self.checkpoints
        conn: sqlite3.Connection | None = None
        try:
            while requests.get():
                try:
                    if conn is None:
                        conn = writer.connect_checkpointer()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    with lock:
                        if self.error is not None:
                            return
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        writer.unchecked_pages = 0
                        writer.checkpoint_asked = False
                except BaseException as exc:
                    with lock:
                        if self.error is None:
                            self._fail(exc)
                            _notify(self.call_soon, self.watch.fail, exc)
                    return
        finally:
            if conn is not None:
                conn.close()


def _notify(call_soon: CallSoon, fn: Callable[..., object], *args: Any) -> None:
    # RuntimeError: the event loop has stopped, so nobody waits; close() catches up.
    with contextlib.suppress(RuntimeError):
        call_soon(fn, *args)


@attrs.frozen
class SQLiteJournalStatistics:
    """Counters of a :class:`SQLiteJournal` since it was opened (``statistics()``).

    Attributes:
        appends: records appended (the last ticket handed out).
        records: records written by committed transactions.
        commits: transactions committed; ``records / commits`` is the mean batch.
        largest_batch: the most records one transaction committed.
        inline_commits: the commits made in the event loop's thread rather
            than the writer thread (see the ``_writer`` module docs).
    """

    appends: int
    records: int
    commits: int
    largest_batch: int
    inline_commits: int = 0
