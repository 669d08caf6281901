"""The SQLite journal: one file in WAL mode, one writer thread, group commit.

Layout of a journal file (schema version 2, ``PRAGMA user_version``; the file
is marked as an actorflow journal by ``PRAGMA application_id``):

- ``runs``: one row per run, in start order; RunResumed and RunFinished update
  it, and ``last_record`` is the ``seq`` of its last record.
- ``records``: every record :meth:`SQLiteJournal.load_history` returns, msgpack
  encoded, in log order (``seq``). ``prev`` links each to the previous record of
  its run, so a run's history is a walk back from ``runs.last_record``. There is
  no index by run: with many runs interleaving, such an index takes an insert
  in a different page per run per commit, and those page writes made up most
  of a commit's cost; the chain costs one updated ``runs`` row per run.
- ``streams``: per ``(run_id, key)`` an integer id, its length and whether it
  was closed; the length is updated once per stream per batch, not per entry.
- ``stream_entries``: one row per durable stream entry, clustered by
  ``(stream id, offset)`` so a page of a stream is one range scan.

Writes: :meth:`SQLiteJournal.append` runs on the event loop's thread and only
takes a ticket and queues the record. Once a tick (a callback the loop runs
after the tasks that appended), what was queued is committed as one
transaction: by a dedicated writer thread, which drains every hand-off it
finds into one transaction and wakes every waiter of it at once through the
loop's ``call_soon``; or, when the writer thread has nothing in hand, the batch
is small and commits do not fsync, right there in the loop's thread (an
*inline commit*). A hand-off to a thread and back costs two thread wake-ups,
~150 us on a 2-core VM, three times a small WAL commit, and a sequential
workflow pays it once per step; under load the thread commits while the loop
runs, so big batches always go there. SQLite's automatic checkpoint is off on
the writing connection, so no checkpoint (which fsyncs) runs inline; a
checkpoint thread with a connection of its own checkpoints instead, while
commits go on, and holds commits off only to copy the last few frames.

Reads run in worker threads on their own read-only connections, each query in
one read transaction, so they only ever see a committed snapshot.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs
import msgspec

from .._codec import decode_value
from .._eventloop import CallSoon, current_call_here, current_call_soon
from .._exceptions import JournalError, JournalLocked, ValidationError
from ..abc import (
    CommitWatch,
    RunHistory,
    RunInfo,
    RunStatus,
    StreamEntry,
    StreamInfo,
    StreamPage,
)
from ..records import (
    ErrorInfo,
    Record,
    RunFinished,
    RunResumed,
    RunStarted,
    StreamClose,
    StreamWrite,
    record_decoder,
    record_encoder,
)

__all__ = ("APPLICATION_ID", "SCHEMA_VERSION", "SQLiteJournal", "SQLiteJournalStatistics")

APPLICATION_ID = 0x41466C77
"""``PRAGMA application_id`` of every actorflow journal (``"AFlw"``)."""

SCHEMA_VERSION = 2
"""The schema version this actorflow writes, kept in ``PRAGMA user_version``.

Version 1 files (records indexed by run, no chain) are read as they are and
upgraded in place when a runtime opens them for writing.
"""

_MAX_BATCH = 5000
# The once-a-tick flush commits in the event loop's thread when the writer
# thread is idle and at most this many records are pending: a hand-off to the
# thread and back costs ~150 us on a 2-core VM (two thread wake-ups), three
# times the commit itself. Bigger batches, and every batch while the thread
# works, go to the thread. See _inline_commit.
_INLINE_MAX = 64
# WAL pages after which the checkpoint thread checkpoints (SQLite's own
# automatic checkpoint is off, so that it never runs inside an inline commit).
_CHECKPOINT_PAGES = 1000
# Committed tails kept in memory for streams being read (see _Tails): how many
# streams, and how many entries each.
_MAX_TAILS = 1024
_TAIL_ENTRIES = 1024
_MAX_CACHED_STREAMS = 10_000
# A readonly journal polls ``PRAGMA data_version`` for commits of another process:
# every millisecond right after one, backing off to _POLL_MAX while none comes, so
# a busy writer is followed closely and an idle one costs ~1% of a core.
_POLL_MIN = 0.001
_POLL_MAX = 0.010
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in RunStatus if s.is_terminal)

_SCHEMA = f"""
BEGIN IMMEDIATE;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    input BLOB NOT NULL,
    output BLOB,
    error BLOB,
    last_record INTEGER
);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    body BLOB NOT NULL,
    prev INTEGER
);
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    length INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, key)
);
CREATE TABLE stream_entries (
    stream INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    value BLOB NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    position INTEGER,
    PRIMARY KEY (stream, "offset")
) WITHOUT ROWID;
COMMIT;
"""

_INSERT_RECORDS = "INSERT INTO records (seq, run_id, body, prev) VALUES {rows}"
_RECORD_COLUMNS = 4
_SET_LAST_COLUMNS = 2
_SET_LAST_RECORDS = (
    "UPDATE runs SET last_record = v.last FROM (SELECT column1 AS run_id, column2 AS last "
    "FROM (VALUES {rows})) AS v WHERE runs.run_id = v.run_id"
)
_LAST_RECORD = "SELECT last_record FROM runs WHERE run_id = ?"
# A run's records (seq, prev, body), walking its chain back from the record ``?``.
_CHAIN = (
    "WITH RECURSIVE chain(seq, prev, body) AS ("
    "SELECT seq, prev, body FROM records WHERE seq = ? "
    "UNION ALL SELECT r.seq, r.prev, r.body FROM records AS r JOIN chain ON r.seq = chain.prev)"
)
_UPGRADE_FROM_1 = f"""
BEGIN IMMEDIATE;
ALTER TABLE runs ADD COLUMN last_record INTEGER;
ALTER TABLE records ADD COLUMN prev INTEGER;
UPDATE records SET prev = (
    SELECT max(r.seq) FROM records AS r WHERE r.run_id = records.run_id AND r.seq < records.seq
);
UPDATE runs SET last_record = (SELECT max(seq) FROM records WHERE run_id = runs.run_id);
DROP INDEX records_by_run;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
_INSERT_ENTRIES = "INSERT INTO stream_entries VALUES {rows}"
_ENTRY_COLUMNS = 6  # of stream_entries, inserted in schema order
_MAX_ROWS_PER_INSERT = 1024
_EXACT_ROWS = 8
_GROW_STREAM = "UPDATE streams SET length = ? WHERE id = ?"
_START_RUN = (
    "INSERT INTO runs (run_id, workflow, status, started_at, input) VALUES (?, ?, 'PENDING', ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET workflow = excluded.workflow, status = 'PENDING', "
    "started_at = excluded.started_at, finished_at = NULL, input = excluded.input, "
    "output = NULL, error = NULL, last_record = NULL"
)
_RESUME_RUN = (
    f"UPDATE runs SET status = 'RUNNING' WHERE run_id = ? AND status NOT IN ({_TERMINAL_SQL})"
)
_FINISH_RUN = "UPDATE runs SET status = ?, finished_at = ?, output = ?, error = ? WHERE run_id = ?"
_RUN_COLUMNS = "run_id, workflow, status, started_at, finished_at, input, output, error"

_error_encoder = msgspec.msgpack.Encoder()
_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)

# Real paths this process writes: a second SQLiteJournal on one of them in this
# process is refused before flock, whose locks belong to open file descriptions.
_LOCKED_PATHS: set[str] = set()
_LOCKED_PATHS_GUARD = threading.Lock()

_T = TypeVar("_T")
_Batch = list[tuple[int, Record]]


def _fspath(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def _check_synchronous(_: object, __: object, value: str) -> None:
    if value not in ("normal", "full"):
        raise ValidationError(f'synchronous={value!r} is not supported; use "normal" or "full"')


@attrs.frozen
class SQLiteJournalStatistics:
    """Counters of a :class:`SQLiteJournal` since it was opened (``statistics()``).

    Attributes:
        appends: records appended (the last ticket handed out).
        records: records written by committed transactions.
        commits: transactions committed; ``records / commits`` is the mean batch.
        largest_batch: the most records one transaction committed.
        inline_commits: the commits made in the event loop's thread rather
            than the writer thread (see the module docs).
    """

    appends: int
    records: int
    commits: int
    largest_batch: int
    inline_commits: int = 0


# on_setattr=NO_OP: with a validated field, attrs would route every attribute
# assignment (one per append) through a Python-level __setattr__, ~0.5 us each.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class SQLiteJournal:
    """A journal in an SQLite file: durable, shared with readers in other processes.

    It implements :class:`~actorflow.Journal`. ``Runtime("runs.db")`` uses one.
    Appends are committed in batches, once per event-loop tick, by a writer
    thread or, for a small batch while that thread is idle, in the loop's own
    thread (group commit; see the module docs). Readers use their own
    connections and only see committed data. One runtime may write a file at a
    time; any number of ``readonly=True`` journals may read it meanwhile, in
    this process or others.

    ``append`` must be called from the thread of the event loop that opened the
    journal.

    Args:
        path: the journal file. A missing or empty file becomes a new journal
            (unless ``readonly``).
        synchronous: ``"normal"`` (SQLite's ``synchronous=NORMAL`` in WAL mode:
            a power loss may lose the last commits, never corrupt the file) or
            ``"full"`` (every commit is on disk before waiters wake).
        readonly: read only: no writer lock, ``append`` raises, and
            ``wait_for_commit`` follows the commits of the runtime writing the
            file from another process.

    Raises:
        ValidationError: ``synchronous`` is neither ``"normal"`` nor ``"full"``.
    """

    path: str = attrs.field(converter=_fspath)
    synchronous: Literal["normal", "full"] = attrs.field(
        default="normal", kw_only=True, validator=_check_synchronous
    )
    readonly: bool = attrs.field(default=False, kw_only=True)

    _watch: CommitWatch = attrs.field(factory=CommitWatch, init=False, repr=False)
    _open: bool = attrs.field(default=False, init=False, repr=False)
    _accepting: bool = attrs.field(default=False, init=False, repr=False)
    _ticket: int = attrs.field(default=0, init=False, repr=False)
    _queue: queue.SimpleQueue[_Batch | None] = attrs.field(
        factory=queue.SimpleQueue, init=False, repr=False
    )
    # Checkpoint requests (True) for the checkpoint thread; None stops it.
    _checkpoints: queue.SimpleQueue[bool | None] = attrs.field(
        factory=queue.SimpleQueue, init=False, repr=False
    )
    _checkpointer: threading.Thread | None = attrs.field(default=None, init=False, repr=False)
    _pending: _Batch = attrs.field(factory=list, init=False, repr=False)
    _flush_scheduled: bool = attrs.field(default=False, init=False, repr=False)
    _in_flight: int = attrs.field(default=0, init=False, repr=False)
    _call_here: CallSoon = attrs.field(default=None, init=False, repr=False)
    _writer: threading.Thread | None = attrs.field(default=None, init=False, repr=False)
    _batch_writer: _BatchWriter | None = attrs.field(default=None, init=False, repr=False)
    _conn_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _tails: _Tails = attrs.field(factory=lambda: _Tails(), init=False, repr=False)
    _writer_error: BaseException | None = attrs.field(default=None, init=False, repr=False)
    _lock_fd: int | None = attrs.field(default=None, init=False, repr=False)
    _locked_path: str | None = attrs.field(default=None, init=False, repr=False)
    _reader_uri: str = attrs.field(default="", init=False, repr=False)
    _readers: list[sqlite3.Connection] = attrs.field(factory=list, init=False, repr=False)
    _readers_guard: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _poller: sqlite3.Connection | None = attrs.field(default=None, init=False, repr=False)
    _data_version: int = attrs.field(default=0, init=False, repr=False)
    _schema_version: int = attrs.field(default=SCHEMA_VERSION, init=False, repr=False)
    _commits: int = attrs.field(default=0, init=False, repr=False)
    _records: int = attrs.field(default=0, init=False, repr=False)
    _largest_batch: int = attrs.field(default=0, init=False, repr=False)
    _inline_commits: int = attrs.field(default=0, init=False, repr=False)

    # -- lifecycle -----------------------------------------------------------

    @property
    def committed(self) -> int:
        """The ticket of the last committed record (0 before any, since ``open``).

        With ``readonly=True`` it counts the commits seen from other processes.
        """
        return self._watch.committed

    async def open(self) -> None:
        """Open the journal: lock it and start the writer (or, if readonly, just check it).

        Raises:
            JournalLocked: another runtime, in this process or another, writes the file.
            JournalError: the file is not an actorflow journal, was written by a
                newer actorflow, cannot be created, or (readonly) does not exist.
        """
        if self._open:
            raise JournalError(f"{self!r} is already open; close it before opening it again")
        self._watch = CommitWatch()
        self._ticket = self._commits = self._records = self._largest_batch = 0
        self._inline_commits = 0
        self._writer_error = None
        # Shielded: a cancelled open must not leave the file locked by nobody.
        with anyio.CancelScope(shield=True):
            if self.readonly:
                await anyio.to_thread.run_sync(self._open_readonly)
                self._open = True
                return
            call_soon = current_call_soon()
            self._call_here = current_call_here()
            writer = await anyio.to_thread.run_sync(self._open_writer)
        self._queue = queue.SimpleQueue()
        self._checkpoints = queue.SimpleQueue()
        self._pending, self._flush_scheduled, self._in_flight = [], False, 0
        self._tails = _Tails()
        self._batch_writer = writer
        self._writer = threading.Thread(
            target=self._write_loop,
            args=(writer, self._queue, call_soon, self._watch),
            name=f"actorflow journal writer ({self.path})",
            daemon=True,
        )
        self._writer.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(writer, self._checkpoints, call_soon, self._watch),
            name=f"actorflow journal checkpointer ({self.path})",
            daemon=True,
        )
        self._checkpointer.start()
        self._open = self._accepting = True

    async def close(self) -> None:
        """Commit everything queued, stop the writer and release the file.

        It may be opened again afterwards.

        Raises:
            JournalError: the writer had failed, so records queued after its
                last commit were not written.
        """
        if not self._open:
            return
        self._open = self._accepting = False
        with anyio.CancelScope(shield=True):
            writer, self._writer = self._writer, None
            if writer is not None:
                if self._pending:
                    self._hand_off()
                self._queue.put(None)
                await anyio.to_thread.run_sync(writer.join)
                if self._writer_error is None:
                    self._watch.advance(self._ticket)
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                self._checkpoints.put(None)
                await anyio.to_thread.run_sync(checkpointer.join)
            await anyio.to_thread.run_sync(self._release)
        self._watch.close()
        if self._writer_error is not None:
            self._watch.fail(self._writer_error)
            self._watch.check()

    def _open_writer(self) -> _BatchWriter:
        real = os.path.realpath(self.path)
        # Check before creating the lock file, so a foreign file gets no side file.
        _check_header(self.path, real)
        self._lock(real)
        try:
            exists = _check_header(self.path, real)
            conn = _translate(
                lambda: sqlite3.connect(real, isolation_level=None, check_same_thread=False),
                f"cannot open {self.path!r}",
            )
            try:
                _translate(lambda: self._prepare(conn, exists), f"cannot set up {self.path!r}")
                writer = _translate(
                    lambda: _BatchWriter(conn, real, self.synchronous),
                    f"cannot set up {self.path!r}",
                )
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._unlock()
            raise
        self._reader_uri = pathlib.Path(real).as_uri() + "?mode=ro"
        return writer

    def _prepare(self, conn: sqlite3.Connection, exists: bool) -> None:
        version = SCHEMA_VERSION
        if exists:
            version = _check_pragmas(conn, self.path)
        else:
            # Created in rollback-journal mode, so the header that marks the file
            # as a journal is in the main file before any WAL exists.
            try:
                conn.executescript(_SCHEMA)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(
                f"{self.path!r} cannot use SQLite's WAL mode (got {mode!r}); "
                "put the journal on a local file system"
            )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the writer thread checkpoints
        if version == 1:
            try:
                conn.executescript(_UPGRADE_FROM_1)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        self._schema_version = SCHEMA_VERSION

    def _open_readonly(self) -> None:
        real = os.path.realpath(self.path)
        if not _check_header(self.path, real):
            raise JournalError(
                f"no journal at {self.path!r}; check the path, or open it without "
                "readonly=True to create one"
            )
        self._reader_uri = pathlib.Path(real).as_uri() + "?mode=ro"
        poller = self._connect_reader()
        try:
            self._schema_version = _translate(
                lambda: _check_pragmas(poller, self.path), f"cannot read {self.path!r}"
            )
            self._data_version = poller.execute("PRAGMA data_version").fetchone()[0]
        except BaseException:
            poller.close()
            raise
        self._poller = poller

    def _lock(self, real: str) -> None:
        try:
            # Imported here, not with the module: `import actorflow` works on
            # platforms without it, where only writing a SQLite journal fails.
            import fcntl
        except ImportError:
            raise JournalError(
                f"cannot open {self.path!r} for writing: a writing SQLite journal needs POSIX "
                f"file locks (fcntl), which {sys.platform!r} lacks; run it on Linux or macOS "
                "(readonly=True readers work anywhere)"
            ) from None
        message = (
            f"{self.path!r} is being written by another runtime; "
            "close it first or open with readonly=True"
        )
        lock_path = real + "-lock"
        with _LOCKED_PATHS_GUARD:
            if real in _LOCKED_PATHS:
                raise JournalLocked(message)
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the lock file {lock_path!r} ({exc}); "
                    "check that its directory is writable"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise JournalLocked(message) from None
            except OSError as exc:
                os.close(fd)
                raise JournalError(f"cannot lock {lock_path!r} ({exc})") from exc
            _LOCKED_PATHS.add(real)
        self._lock_fd, self._locked_path = fd, real

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        real, self._locked_path = self._locked_path, None
        if fd is not None:
            os.close(fd)  # releases the flock
        if real is not None:
            with _LOCKED_PATHS_GUARD:
                _LOCKED_PATHS.discard(real)

    def _release(self) -> None:
        with self._readers_guard:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.close()
        self._unlock()

    # -- writing -------------------------------------------------------------

    def append(self, record: Record) -> int:
        """Queue ``record`` for the writer thread and return its ticket.

        Raises:
            JournalError: the journal is closed or readonly, or its writer failed.
            ValidationError: a RunFinished record carries an unknown status.
        """
        if not self._accepting:
            raise self._refusal()
        if type(record) is RunFinished:
            _check_status(record.status)
        self._ticket = ticket = self._ticket + 1
        self._pending.append((ticket, record))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_here(self._flush)
        return ticket

    def _flush(self) -> None:
        """Commit what this tick appended, here or in the writer thread.

        The loop calls it once a tick in which something was appended, after
        the tasks that ran in that tick, so one commit takes all their records.
        """
        self._flush_scheduled = False
        if self._pending and self._writer is not None and not self._inline_commit():
            self._hand_off()

    def _hand_off(self) -> None:
        batch, self._pending = self._pending, []
        self._in_flight += 1
        self._queue.put(batch)

    def _committed_batches(self, watch: CommitWatch, batch: _Batch, batches: int) -> None:
        # In the loop's thread, after the writer thread committed ``batches`` hand-offs.
        if watch is not self._watch:
            return  # a commit of before close() and open() again: close() caught up
        self._in_flight -= batches
        self._tails.committed(batch)
        watch.advance(batch[-1][0])

    def _inline_commit(self) -> bool:
        """Commit the pending records here, in the loop's thread; False if it may not.

        Only when the writer thread has nothing in hand (so commits stay in
        order and the connection is free), the batch is small, and a commit
        does not fsync (``synchronous="normal"``: a WAL commit is a write to
        the page cache, tens of microseconds). SQLite's automatic checkpoint,
        which does fsync, is off; the writer thread checkpoints instead.
        """
        writer = self._batch_writer
        if (
            writer is None
            or self._in_flight
            or len(self._pending) > _INLINE_MAX
            or self.synchronous != "normal"
            or not self._conn_lock.acquire(blocking=False)
        ):
            return False
        try:
            batch, self._pending = self._pending, []
            try:
                self._commit(writer, batch)
            except BaseException as exc:
                self._fail(writer, exc)
                self._watch.fail(exc)
                return True
            self._inline_commits += 1
            self._ask_checkpoint(writer)
        finally:
            self._conn_lock.release()
        self._tails.committed(batch)
        self._watch.advance(batch[-1][0])
        return True

    def _ask_checkpoint(self, writer: _BatchWriter) -> None:
        """After a commit (holding ``_conn_lock``): wake the checkpoint thread if it is time."""
        if writer.unchecked_pages >= _CHECKPOINT_PAGES and not writer.checkpoint_asked:
            writer.checkpoint_asked = True
            self._checkpoints.put(True)

    def _commit(self, writer: _BatchWriter, batch: _Batch) -> None:
        """Write ``batch`` in one transaction (holding ``_conn_lock``)."""
        writer.write(batch)
        self._records += len(batch)
        self._commits += 1
        self._largest_batch = max(self._largest_batch, len(batch))

    def _fail(self, writer: _BatchWriter, exc: BaseException) -> None:
        """The writer failed (holding ``_conn_lock``): refuse appends, undo the transaction."""
        self._accepting = False
        self._writer_error = exc
        with contextlib.suppress(sqlite3.Error):  # it is (or will be) closed either way
            if writer.conn.in_transaction:
                writer.conn.execute("ROLLBACK")

    def _refusal(self) -> JournalError:
        if self.readonly:
            return JournalError(
                f"{self!r} is readonly; open the journal without readonly=True to write"
            )
        if self._writer_error is not None:
            return JournalError(
                f"the writer of {self.path!r} failed ({self._writer_error!r}); "
                "fix the cause and open the journal again"
            )
        return JournalError(f"{self!r} is not open; use it through `async with Runtime`")

    def _write_loop(
        self,
        writer: _BatchWriter,
        pending: queue.SimpleQueue[_Batch | None],
        call_soon: CallSoon,
        watch: CommitWatch,
    ) -> None:
        lock = self._conn_lock
        try:
            stop = False
            while not stop:
                item = pending.get()
                batch: _Batch = []
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
                    if self._writer_error is not None:
                        return
                    try:
                        self._commit(writer, batch)
                    except BaseException as exc:
                        self._fail(writer, exc)
                        _notify(call_soon, watch.fail, exc)
                        return
                    self._ask_checkpoint(writer)
                _notify(call_soon, self._committed_batches, watch, batch, batches)
        finally:
            with lock:
                writer.conn.close()

    def _checkpoint_loop(
        self,
        writer: _BatchWriter,
        requests: queue.SimpleQueue[bool | None],
        call_soon: CallSoon,
        watch: CommitWatch,
    ) -> None:
        """The checkpoint thread: copy the WAL back into the file while commits go on.

        A PASSIVE checkpoint on a connection of its own does the bulk of the
        work (copying pages, two fsyncs) without ``_conn_lock``, so the loop's
        inline commits and the writer thread carry on meanwhile. A second one,
        holding the lock, copies the few frames committed in between: the
        checkpoint then completes, and the next commit starts the WAL over
        (without it, steady commits would keep the WAL from ever restarting).
        """
        lock = self._conn_lock
        conn: sqlite3.Connection | None = None
        try:
            while requests.get():
                try:
                    if conn is None:
                        conn = writer.connect_checkpointer()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    with lock:
                        if self._writer_error is not None:
                            return
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        writer.unchecked_pages = 0
                        writer.checkpoint_asked = False
                except BaseException as exc:
                    with lock:
                        if self._writer_error is None:
                            self._fail(writer, exc)
                            _notify(call_soon, watch.fail, exc)
                    return
        finally:
            if conn is not None:
                conn.close()

    async def wait_committed(self, ticket: int) -> None:
        """Return once the record with ``ticket`` (and every one before it) is committed.

        Raises:
            JournalError: the writer failed before committing it.
        """
        if self.readonly:
            while self._watch.committed < ticket:
                await self.wait_for_commit(self._watch.committed)
            return
        if self._flush_scheduled and not self._in_flight and self._watch.committed < ticket:
            # The flush callback will most likely commit inline; yielding once
            # runs it and returns here, without an event to wait on and set.
            await anyio.lowlevel.checkpoint()
        await self._watch.wait_for(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """Return the new ``committed`` once it exceeds ``after``.

        With ``readonly=True`` this notices commits made by another process
        (by watching SQLite's ``data_version``), polling every millisecond at
        first and backing off to every 10 ms while nothing is committed.

        Raises:
            JournalError: the writer failed.
        """
        if not self.readonly:
            return await self._watch.wait_after(after)
        interval = _POLL_MIN
        while self._watch.committed <= after:
            self._poll()
            if self._watch.committed > after:
                break
            await anyio.sleep(interval)
            interval = min(interval * 2, _POLL_MAX)
        return self._watch.committed

    def _poll(self) -> None:
        poller = self._poller
        if poller is None:
            raise self._refusal()
        version = _translate(
            lambda: poller.execute("PRAGMA data_version").fetchone()[0],
            f"cannot watch {self.path!r} for commits",
        )
        if version != self._data_version:
            self._data_version = version
            self._watch.advance(self._watch.committed + 1)

    def statistics(self) -> SQLiteJournalStatistics:
        """Counters since ``open``: appends, committed records and commits (batching)."""
        return SQLiteJournalStatistics(
            appends=self._ticket,
            records=self._records,
            commits=self._commits,
            largest_batch=self._largest_batch,
            inline_commits=self._inline_commits,
        )

    # -- reading -------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo | None:
        """The committed state of one run, or ``None`` if there is no such run."""
        return await self._query(lambda conn: _get_run(conn, run_id))

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """Committed runs in start order, optionally only those with ``status``."""

        def query(conn: sqlite3.Connection) -> list[RunInfo]:
            if status is None:
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq")
            else:
                rows = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = ? ORDER BY seq",
                    (RunStatus(status).value,),
                )
            return [_run_info(row) for row in rows]

        return await self._query(query)

    async def load_history(self, run_id: str) -> RunHistory | None:
        """The committed history of one run (see :class:`~actorflow.RunHistory`)."""

        def query(conn: sqlite3.Connection) -> RunHistory | None:
            info = _get_run(conn, run_id)
            if info is None:
                return None
            if self._schema_version == 1:  # a readonly journal of a file not yet upgraded
                rows = conn.execute(
                    "SELECT body FROM records WHERE run_id = ? ORDER BY seq", (run_id,)
                )
            else:
                rows = conn.execute(
                    f"{_CHAIN} SELECT body FROM chain ORDER BY seq",
                    (conn.execute(_LAST_RECORD, (run_id,)).fetchone()[0],),
                )
            records = [record_decoder.decode(body) for (body,) in rows]
            lengths = conn.execute(
                "SELECT key, length FROM streams WHERE run_id = ? AND length > 0", (run_id,)
            )
            return RunHistory(info=info, records=records, stream_lengths=dict(lengths.fetchall()))

        return await self._query(query)

    def read_stream_nowait(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage | None:
        """What :meth:`read_stream` would return, if the committed tail in memory has it.

        The first call for a stream starts keeping its tail: the entries
        committed from then on (see ``_Tails``). None when the tail does not
        have the page (the first call, an offset before the tail, a readonly
        journal): then call ``read_stream``.
        """
        if self._writer is None:
            return None
        return self._tails.read(run_id, key, from_offset, limit)

    async def read_stream(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage:
        """Committed entries of stream ``key`` from ``from_offset``, at most ``limit``.

        The entries and ``closed`` come from one committed snapshot, read in a
        worker thread (see :meth:`read_stream_nowait` for reads from memory).
        """
        tail = self._tails.streams.get((run_id, key))

        def query(conn: sqlite3.Connection) -> tuple[StreamPage, bool]:
            stream = conn.execute(
                "SELECT id, length, closed FROM streams WHERE run_id = ? AND key = ?",
                (run_id, key),
            ).fetchone()
            if stream is None:
                ended = _is_terminal(conn, run_id)
                return StreamPage([], ended and from_offset >= 0), ended
            sid, length, closed = stream
            rows = conn.execute(
                'SELECT "offset", value, step_id, attempt FROM stream_entries '
                'WHERE stream = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (sid, from_offset, max(limit, 0)),
            )
            entries = [StreamEntry(o, decode_value(v), s, a) for o, v, s, a in rows]
            closed = bool(closed) or _is_terminal(conn, run_id)
            return StreamPage(entries, closed and from_offset + len(entries) >= length), closed

        page, closed = await self._query(query)
        if closed and tail is not None:
            # The stream was closed, or its run ended, before its tail began:
            # the tail cannot tell from the commits it sees. Both last until the
            # run is started again, which drops the tail.
            tail.closed = True
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """The committed streams of one run, by key."""

        def query(conn: sqlite3.Connection) -> list[StreamInfo]:
            rows = conn.execute(
                "SELECT key, length, closed FROM streams WHERE run_id = ?", (run_id,)
            )
            return sorted(
                (StreamInfo(key, length, bool(closed)) for key, length, closed in rows),
                key=lambda s: s.key,
            )

        return await self._query(query)

    async def _query(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        if not self._open:
            raise self._refusal()
        return await anyio.to_thread.run_sync(self._read, query)

    def _read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._readers_guard:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._connect_reader()
        try:
            conn.execute("BEGIN")
            try:
                result = query(conn)
            finally:
                conn.execute("ROLLBACK")
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            conn.close()
            raise JournalError(
                f"cannot read {self.path!r} ({exc}); the file is damaged or from an "
                "incompatible actorflow: check it, or restore it from a backup"
            ) from exc
        except BaseException:
            conn.close()
            raise
        with self._readers_guard:
            self._readers.append(conn)
        return result

    def _connect_reader(self) -> sqlite3.Connection:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self._reader_uri, uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only = 1")
            return conn

        return _translate(connect, f"cannot open {self.path!r} for reading")


# -- helpers -----------------------------------------------------------------


def _translate(fn: Callable[[], _T], what: str) -> _T:
    """Run ``fn``, turning an ``sqlite3.Error`` into a JournalError that says ``what`` failed."""
    try:
        return fn()
    except sqlite3.Error as exc:
        raise JournalError(f"{what} ({exc}); check the file and its permissions") from exc


def _check_header(path: str, real: str) -> bool:
    """Check the file at ``real`` without writing to it; False if it is missing or empty."""
    try:
        with open(real, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise JournalError(
            f"cannot read {path!r} ({exc}); check the path and its permissions"
        ) from exc
    if not header:
        return False
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise JournalError(
            f"{path!r} is not an actorflow journal (not an SQLite database); "
            "pass the path of a journal, or of a new file to create one"
        )
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    _check_identity(path, app_id, int.from_bytes(header[60:64], "big", signed=True))
    return True


def _check_pragmas(conn: sqlite3.Connection, path: str) -> int:
    """Check the identity again through SQLite (the header in the file may lag the WAL).

    Returns the schema version.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    _check_identity(path, app_id, version)
    return version


def _check_identity(path: str, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise JournalError(
            f"{path!r} is an SQLite database of another application "
            f"(application_id {app_id:#x}), not an actorflow journal; pass another path"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path!r} was written by a newer actorflow (journal schema version {version}; "
            f"this one reads up to {SCHEMA_VERSION}); upgrade actorflow to open it"
        )
    if version < 1:
        raise JournalError(
            f"{path!r} is a damaged actorflow journal (no schema version); "
            "restore it from a backup or start a new journal"
        )


def _check_status(status: str) -> None:
    try:
        RunStatus(status)
    except ValueError:
        raise ValidationError(
            f"RunFinished status {status!r} is not a RunStatus; use one of "
            + ", ".join(s.value for s in RunStatus)
        ) from None


def _notify(call_soon: CallSoon, fn: Callable[..., object], *args: Any) -> None:
    # RuntimeError: the event loop has stopped, so nobody waits; close() catches up.
    with contextlib.suppress(RuntimeError):
        call_soon(fn, *args)


@attrs.define(eq=False)
class _Tail:
    """The entries of one stream committed since a reader first asked for it."""

    run_id: str
    key: str
    start: int = -1  # the offset of entries[0]; -1 while there is none
    entries: list[StreamWrite] = attrs.field(factory=list)
    closed: bool = False


@attrs.define(eq=False)
class _Tails:
    """Committed tails of the streams being read, kept by the loop's thread.

    A reader following a stream of a run in progress asks for the next page
    after every commit; through SQLite that is a worker-thread hop (~150 us
    on a 2-core VM) for a few entries the journal just had in hand. The first
    read of a stream starts its tail (and goes to SQLite); every commit then
    adds that stream's entries, its close, or its run's end, in the loop's
    thread, before waiters wake. A read from an offset the tail covers is
    answered from it, values decoded afresh for each read, as SQLite would.
    Tails are bounded: ``_TAIL_ENTRIES`` entries each (older ones go to
    SQLite), ``_MAX_TAILS`` streams (the oldest tail is dropped).
    """

    streams: dict[tuple[str, str], _Tail] = attrs.field(factory=dict)
    by_run: dict[str, list[_Tail]] = attrs.field(factory=dict)

    def read(self, run_id: str, key: str, offset: int, limit: int) -> StreamPage | None:
        """The page from ``offset``, or None if the tail does not cover it."""
        tail = self.streams.get((run_id, key))
        if tail is None:
            self._start(run_id, key)
            return None
        start, n, closed = tail.start, len(tail.entries), tail.closed
        i = offset - start
        if start < 0 or i < 0 or i > n or limit < 1:
            return None
        chunk = tail.entries[i : i + limit]
        entries = [
            StreamEntry(w.offset, decode_value(w.value), w.step_id, w.attempt) for w in chunk
        ]
        return StreamPage(entries, closed and i + len(chunk) == n)

    def _start(self, run_id: str, key: str) -> None:
        if len(self.streams) >= _MAX_TAILS:
            (old_run, old_key), old = next(iter(self.streams.items()))
            del self.streams[old_run, old_key]
            self.by_run[old_run].remove(old)
            if not self.by_run[old_run]:
                del self.by_run[old_run]
        tail = self.streams[run_id, key] = _Tail(run_id, key)
        self.by_run.setdefault(run_id, []).append(tail)

    def committed(self, batch: _Batch) -> None:
        """Add what ``batch`` (just committed) did to the streams being read."""
        if not self.streams:
            return
        streams, by_run = self.streams, self.by_run
        for _, record in batch:
            kind = type(record)
            if kind is StreamWrite:
                record = cast(StreamWrite, record)
                tail = streams.get((record.run_id, record.key))
                if tail is not None:
                    if tail.start < 0:
                        tail.start = record.offset
                    elif len(tail.entries) >= _TAIL_ENTRIES:
                        del tail.entries[: _TAIL_ENTRIES // 2]
                        tail.start = tail.entries[0].offset
                    tail.entries.append(record)
            elif record.run_id not in by_run:
                continue
            elif kind is StreamClose:
                record = cast(StreamClose, record)
                tail = streams.get((record.run_id, record.key))
                if tail is not None:
                    tail.closed = True
            elif kind is RunFinished:
                for tail in by_run[record.run_id]:
                    tail.closed = True
            elif kind is RunStarted:  # a run started again from scratch: forget it
                for tail in by_run.pop(record.run_id):
                    del streams[tail.run_id, tail.key]


@attrs.define(eq=False)
class _RowInserter:
    """Runs a statement over many rows at once: ``INSERT ... VALUES (...), (...), ...``.

    Statements hold up to ``_MAX_ROWS_PER_INSERT`` rows, then halving sizes
    for the rest, so every statement text is cached; up to ``_EXACT_ROWS`` rows
    (a step's or a superstep's few records) take one statement of their exact
    size, since each statement costs ~10 us even for one row. ``executemany`` would
    release and re-acquire the GIL around every row's ``sqlite3_step``, and
    while the event loop's thread is busy each re-acquisition can wait for a
    whole switch interval; one statement per batch waits once.
    """

    execute: Callable[..., Any]
    columns: int
    max_rows: int
    sql: dict[int, str]

    @classmethod
    def create(cls, conn: sqlite3.Connection, template: str, columns: int) -> _RowInserter:
        """``template`` has ``{rows}`` where the ``(?, ?, ...), ...`` rows go."""
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // columns
        rows = 1
        while rows * 2 <= min(limit, _MAX_ROWS_PER_INSERT):
            rows *= 2
        row = "(" + ", ".join("?" * columns) + ")"
        sizes = set(range(1, min(rows, _EXACT_ROWS) + 1))
        size = rows
        while size:
            sizes.add(size)
            size //= 2
        sql = {size: template.format(rows=", ".join([row] * size)) for size in sizes}
        return cls(conn.execute, columns, rows, sql)

    def insert(self, values: list[Any]) -> None:
        """Insert rows given as one flat list of column values, in order."""
        execute, sql, columns = self.execute, self.sql, self.columns
        rows, start, size = len(values) // columns, 0, self.max_rows
        if rows <= _EXACT_ROWS:
            execute(sql[rows], values)
            return
        while rows:
            while size > rows:
                size //= 2
            stop = start + size * columns
            execute(sql[size], values[start:stop])
            start, rows = stop, rows - size


@attrs.define(eq=False)
class _BatchWriter:
    """The writer thread's side: writes a batch in one transaction.

    Records and stream entries are inserted by :class:`_RowInserter`, a few
    statements per batch rather than one per row. The writer numbers records
    itself (``seq``), so it can link each to the previous record of its run
    (``prev``) before inserting it; the last ``seq`` of recently written runs
    is cached, and ``runs.last_record`` is updated once per run per batch.

    Stream entries are keyed by a small integer stream id rather than by
    ``(run_id, key)``: binding and comparing two texts per entry would halve
    the rate of the hot path. The ids of recently written streams are cached.
    """

    conn: sqlite3.Connection
    path: str
    synchronous: str
    stream_ids: dict[tuple[str, str], int] = attrs.field(factory=dict)
    last_records: dict[str, int | None] = attrs.field(factory=dict)
    records: _RowInserter = attrs.field(init=False)
    entries: _RowInserter = attrs.field(init=False)
    set_last: _RowInserter = attrs.field(init=False)
    next_seq: int = attrs.field(init=False)
    unchecked_pages: int = 0  # an estimate of the WAL pages since the last checkpoint
    checkpoint_asked: bool = False

    def __attrs_post_init__(self) -> None:
        conn = self.conn
        self.records = _RowInserter.create(conn, _INSERT_RECORDS, _RECORD_COLUMNS)
        self.entries = _RowInserter.create(conn, _INSERT_ENTRIES, _ENTRY_COLUMNS)
        self.set_last = _RowInserter.create(conn, _SET_LAST_RECORDS, _SET_LAST_COLUMNS)
        self.next_seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM records").fetchone()[0]

    def last_record(self, run_id: str) -> int | None:
        """The ``seq`` of the last record of ``run_id`` written so far (None: none)."""
        row = self.conn.execute(_LAST_RECORD, (run_id,)).fetchone()
        last = self.last_records[run_id] = None if row is None else row[0]
        return last

    def stream_id(self, run_id: str, key: str) -> int:
        if len(self.stream_ids) >= _MAX_CACHED_STREAMS:
            self.stream_ids.clear()
        row = self.conn.execute(
            "SELECT id FROM streams WHERE run_id = ? AND key = ?", (run_id, key)
        ).fetchone()
        if row is None:
            cursor = self.conn.execute(
                "INSERT INTO streams (run_id, key) VALUES (?, ?)", (run_id, key)
            )
            row = (cursor.lastrowid,)
        self.stream_ids[run_id, key] = row[0]
        return int(row[0])

    def write(self, batch: _Batch) -> None:
        conn, ids, last_records = self.conn, self.stream_ids, self.last_records
        if len(last_records) >= _MAX_CACHED_STREAMS:
            last_records.clear()
        records: list[Any] = []  # seq, run_id, body, prev, seq, run_id, ...
        add_record = records.extend
        seq = self.next_seq
        touched: dict[str, int] = {}  # run id -> the seq of its last record in this batch
        entries: list[Any] = []
        add_entry = entries.extend
        lengths: dict[int, int] = {}  # stream id -> its new length (offsets are contiguous)
        closes: list[tuple[int]] = []
        encode = record_encoder.encode
        conn.execute("BEGIN")
        last_run, last_key, sid = "", "", 0
        for _, record in batch:
            if type(record) is StreamWrite:
                # Consecutive entries mostly go to one stream: skip the dict then.
                if record.key != last_key or record.run_id != last_run:
                    last_run, last_key = record.run_id, record.key
                    sid = ids.get((last_run, last_key)) or self.stream_id(last_run, last_key)
                add_entry(
                    (
                        sid,
                        record.offset,
                        record.value,
                        record.step_id,
                        record.attempt,
                        record.position,
                    )
                )
                lengths[sid] = record.offset + 1
                if record.position is None:
                    continue
                kind: type[Record] = StreamWrite
            else:
                kind = type(record)
            if kind is RunStarted:
                record = cast(RunStarted, record)
                # A start resets the run's records (as MemoryJournal does): write the
                # ones queued before it first, so the DELETE sees them.
                if records:
                    self.records.insert(records)
                    records.clear()
                run_id = record.run_id
                last = last_records[run_id] if run_id in last_records else self.last_record(run_id)
                conn.execute(_START_RUN, (run_id, record.workflow, record.at, record.input))
                if last is not None:
                    conn.execute(
                        f"DELETE FROM records WHERE seq IN ({_CHAIN} SELECT seq FROM chain)",
                        (last,),
                    )
                last_records[run_id] = None
            elif kind is RunResumed:
                conn.execute(_RESUME_RUN, (record.run_id,))
            elif kind is RunFinished:
                record = cast(RunFinished, record)
                error = None if record.error is None else _error_encoder.encode(record.error)
                conn.execute(
                    _FINISH_RUN, (record.status, record.at, record.output, error, record.run_id)
                )
            elif kind is StreamClose:
                record = cast(StreamClose, record)
                run_id, key = record.run_id, record.key
                closes.append((ids.get((run_id, key)) or self.stream_id(run_id, key),))
            run_id = record.run_id
            prev = last_records[run_id] if run_id in last_records else self.last_record(run_id)
            add_record((seq, run_id, encode(record), prev))
            last_records[run_id] = touched[run_id] = seq
            seq += 1
        if records:
            self.records.insert(records)
        if len(touched) == 1:  # the common case of a lone run: skip the VALUES table
            ((run_id, last),) = touched.items()
            conn.execute("UPDATE runs SET last_record = ? WHERE run_id = ?", (last, run_id))
        elif touched:
            self.set_last.insert([v for item in touched.items() for v in item])
        if entries:
            self.entries.insert(entries)
        if lengths:
            conn.executemany(_GROW_STREAM, [(n, sid) for sid, n in lengths.items()])
        if closes:
            conn.executemany("UPDATE streams SET closed = 1 WHERE id = ?", closes)
        conn.execute("COMMIT")
        self.next_seq = seq
        # Every page a commit touches is a WAL frame: the runs rows, the tail of
        # the records, and about one page per 30 records or entries.
        self.unchecked_pages += 2 + len(touched) + len(batch) // 30

    def connect_checkpointer(self) -> sqlite3.Connection:
        """A second connection to the file, for the checkpoint thread."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        except BaseException:
            conn.close()
            raise
        return conn


def _is_terminal(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and RunStatus(row[0]).is_terminal


def _get_run(conn: sqlite3.Connection, run_id: str) -> RunInfo | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run_info(row)


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, workflow, status, started_at, finished_at, input_, output, error = row
    return RunInfo(
        run_id=run_id,
        workflow=workflow,
        status=RunStatus(status),
        started_at=started_at,
        finished_at=finished_at,
        input=input_,
        output=output,
        error=None if error is None else _error_decoder.decode(error),
    )
