"""SQLiteJournal: a journal in one SQLite file in WAL mode, one writer thread, group commit.

Writes: :meth:`SQLiteJournal.append` runs on the event loop's thread and only
takes a ticket and queues the record. Once a tick (a callback the loop runs
after the tasks that appended), what was queued is committed as one
transaction, by the writer thread or inline (see ``_writer``). Reads run in
worker threads on their own read-only connections (see ``_readers``), each
query in one read transaction, so they only ever see a committed snapshot;
the committed tails of followed streams are also kept in memory (``_tails``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Literal, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from ..._eventloop import CallSoon, current_call_here, current_call_soon
from ..._exceptions import JournalError, ValidationError
from ...abc import CommitWatch, RunHistory, RunInfo, RunStatus, StreamInfo, StreamPage
from ...records import Record, RunEnded, StreamWrite
from . import _queries
from ._batch import Batch, BatchWriter
from ._errors import map_sqlite_errors
from ._limits import HEADROOM, SIZES, check_size, value_limit
from ._lock import JournalFile
from ._readers import Follower, Readers
from ._requests import Requests
from ._schema import SCHEMA_VERSION, check_header, prepare
from ._tails import Tails
from ._writer import Counters, SQLiteJournalStatistics, Writer

__all__ = ("SQLiteJournal",)

_T = TypeVar("_T")


def _fspath(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


def _check_synchronous(_: object, __: object, value: str) -> None:
    if value not in ("normal", "full"):
        raise ValidationError(f'synchronous={value!r} is not supported; use "normal" or "full"')


def _check_max_value_bytes(_: object, __: object, value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValidationError(f"max_value_bytes={value!r} is not a positive int; pass one, or None")


def _check_status(status: str) -> None:
    try:
        RunStatus(status)
    except ValueError:
        raise ValidationError(
            f"RunEnded status {status!r} is not a RunStatus; use one of "
            + ", ".join(s.value for s in RunStatus)
        ) from None


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
        max_value_bytes: refuse values (stream entries, outputs, inputs,
            messages) over this many encoded bytes; by default, what SQLite
            takes (see :attr:`value_limit`).

    Raises:
        ValidationError: ``synchronous`` is neither ``"normal"`` nor ``"full"``,
            or ``max_value_bytes`` is not a positive int.
    """

    # Invariant: the three arguments are immutable after construction.
    path: str = attrs.field(converter=_fspath)
    synchronous: Literal["normal", "full"] = attrs.field(
        default="normal", kw_only=True, validator=_check_synchronous
    )
    readonly: bool = attrs.field(default=False, kw_only=True)
    max_value_bytes: int | None = attrs.field(
        default=None, kw_only=True, repr=False, validator=_check_max_value_bytes
    )

    # Invariant: every field below is the loop thread's, except where it says
    # otherwise; open() and close() build and tear them down in worker threads
    # while the loop thread awaits them, so no two threads touch them at once.
    _watch: CommitWatch = attrs.field(factory=CommitWatch, init=False, repr=False)
    _open: bool = attrs.field(default=False, init=False, repr=False)
    # Invariant: set False by the writer's on_fail in any thread (holding the
    # writer's lock); read without a lock by append: a stale True lets one
    # more record be queued, which is never committed and whose waiter gets
    # the failure through the watch.
    _accepting: bool = attrs.field(default=False, init=False, repr=False)
    _ticket: int = attrs.field(default=0, init=False, repr=False)
    _pending: Batch = attrs.field(factory=list, init=False, repr=False)
    _flush_scheduled: bool = attrs.field(default=False, init=False, repr=False)
    _call_here: CallSoon = attrs.field(default=None, init=False, repr=False)
    _writer: Writer | None = attrs.field(default=None, init=False, repr=False)
    _counters: Counters = attrs.field(factory=Counters, init=False, repr=False)
    _tails: Tails = attrs.field(factory=Tails, init=False, repr=False)
    # Invariant: written by on_fail holding the writer's lock (any thread);
    # read by the loop thread for messages, after the watch reported the failure.
    _writer_error: BaseException | None = attrs.field(default=None, init=False, repr=False)
    _file: JournalFile | None = attrs.field(default=None, init=False, repr=False)
    # Invariant: immutable between open and close; its pool has its own lock.
    _readers: Readers | None = attrs.field(default=None, init=False, repr=False)
    _follower: Follower | None = attrs.field(default=None, init=False, repr=False)
    _schema_version: int = attrs.field(default=0, init=False, repr=False)
    _requests: Requests | None = attrs.field(default=None, init=False, repr=False)
    _value_limit: int = attrs.field(default=10**9 - HEADROOM, init=False, repr=False)

    # -- lifecycle -----------------------------------------------------------

    @property
    def value_limit(self) -> int:
        """The most bytes one encoded value may have: SQLite's limit less some room.

        ``append`` refuses a record with a bigger value (``EncodeError``), so
        the step or call that wrote it fails and the journal goes on. Known
        once the journal is open (SQLite's default limit before).
        """
        return self._value_limit

    @property
    def requests(self) -> Requests:
        """Requests to the runtime writing the file (``actorflow.abc.RequestQueue``)."""
        if self._requests is None:
            self._requests = Requests(self.path)
        return self._requests

    def reader(self) -> SQLiteJournal:
        """A new, unopened journal that reads this file (``readonly=True``)."""
        return SQLiteJournal(self.path, synchronous=self.synchronous, readonly=True)

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
        self._ticket = 0
        self._counters = Counters()
        self._writer_error = None
        # Shielded: a cancelled open must not leave the file locked by nobody.
        with anyio.CancelScope(shield=True):
            if self.readonly:
                await anyio.to_thread.run_sync(self._open_readonly, current_call_soon())
                self._open = True
                return
            call_soon = current_call_soon()
            self._call_here = current_call_here()
            batch_writer = await anyio.to_thread.run_sync(self._open_writer)
        self._pending, self._flush_scheduled = [], False
        self._tails = Tails()
        assert self._file is not None  # _open_writer set it
        self._writer = Writer(
            batch_writer,
            self.synchronous,
            call_soon,
            self._watch,
            self._counters,
            self._tails.committed,
            self._writer_failed,
            self._file.check,
        )
        self._writer.start(self.path)
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
                    batch, self._pending = self._pending, []
                    writer.hand_off(batch)
                await anyio.to_thread.run_sync(writer.stop)
                if self._writer_error is None:
                    self._watch.advance(self._ticket)
            await anyio.to_thread.run_sync(self._release)
            requests, self._requests = self._requests, None
            if requests is not None:
                await anyio.to_thread.run_sync(requests.close)
        self._watch.close()
        if self._writer_error is not None:
            self._watch.fail(self._writer_error)
            self._watch.check()

    def _open_writer(self) -> BatchWriter:
        real = os.path.realpath(self.path)
        file = JournalFile.open(self.path, real, create=True)
        if file is None:
            raise JournalError(
                f"cannot create {self.path!r}; check that its directory exists and is writable"
            )
        try:
            # Checked before locking, so a foreign file is refused as such.
            check_header(self.path, file.header())
            file.lock()
            exists = check_header(self.path, file.header())
            with map_sqlite_errors(f"cannot open {self.path!r}"):
                conn = sqlite3.connect(real, isolation_level=None, check_same_thread=False)
            try:
                with map_sqlite_errors(f"cannot set up {self.path!r}"):
                    prepare(conn, self.path, exists, self.synchronous)
                    self._value_limit = value_limit(conn, self.max_value_bytes)
                    writer = BatchWriter(conn, real, self.synchronous)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            file.close()
            raise
        self._file = file
        self._schema_version = SCHEMA_VERSION
        self._readers = Readers.of(self.path, real)
        return writer

    def _open_readonly(self, call_soon: CallSoon) -> None:
        real = os.path.realpath(self.path)
        file = JournalFile.open(self.path, real, create=False)
        try:
            if file is None or not check_header(self.path, file.header()):
                raise JournalError(
                    f"no journal at {self.path!r}; check the path, or open it without "
                    "readonly=True to create one"
                )
            readers = Readers.of(self.path, real)
            self._follower = Follower.open(readers)
            self._follower.start_watch(real, call_soon)
        except BaseException:
            if file is not None:
                file.close()
            raise
        self._file = file
        self._schema_version = self._follower.schema_version
        self._readers = readers

    def _release(self) -> None:
        # The file last: its descriptor may only close once no connection is left.
        if self._readers is not None:
            self._readers.close()
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.stop_watch()
            follower.close()
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _writer_failed(self, exc: BaseException) -> None:
        # Holding the writer's lock, in whichever thread saw the failure.
        self._accepting = False
        self._writer_error = exc

    # -- writing -------------------------------------------------------------

    def append(self, record: Record) -> int:
        """Queue ``record`` for the writer thread and return its ticket.

        Raises:
            JournalError: the journal is closed or readonly, or its writer failed.
            ValidationError: a RunEnded record carries an unknown status.
            EncodeError: a value of ``record`` is over :attr:`value_limit`
                (nothing is queued; the journal stays writable).
        """
        if not self._accepting:
            raise self._refusal()
        kind = type(record)
        if kind is StreamWrite:  # the hot path: one length to check
            if len(record.value) > self._value_limit:  # type: ignore[union-attr]
                check_size(record, self._value_limit, self.path)
        else:
            if kind is RunEnded:
                _check_status(record.status)  # type: ignore[union-attr]
            size = SIZES.get(kind)
            if size is not None and size(record) > self._value_limit:
                check_size(record, self._value_limit, self.path)
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
        batch, writer = self._pending, self._writer
        if batch and writer is not None:
            self._pending = []
            if not writer.commit_inline(batch):
                writer.hand_off(batch)

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

    async def wait_committed(self, ticket: int) -> None:
        """Return once the record with ``ticket`` (and every one before it) is committed.

        Raises:
            JournalError: the writer failed before committing it.
        """
        if self.readonly:
            while self._watch.committed < ticket:
                await self.wait_for_commit(self._watch.committed)
            return
        writer = self._writer
        if (
            self._flush_scheduled
            and writer is not None
            and not writer.in_flight
            and self._watch.committed < ticket
        ):
            # The flush callback will most likely commit inline; yielding once
            # runs it and returns here, without an event to wait on and set.
            await anyio.lowlevel.checkpoint()
        await self._watch.wait_for(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """Return the new ``committed`` once it exceeds ``after``.

        With ``readonly=True`` this notices commits made by another process
        (SQLite's ``data_version``), woken by writes to the journal's files
        where the platform reports them (inotify), else polling.

        Raises:
            JournalError: the writer failed.
        """
        if not self.readonly:
            return await self._watch.wait_after(after)
        while self._watch.committed <= after:
            follower = self._follower
            if follower is None:
                raise self._refusal()
            if await follower.changed(lambda: self._watch.committed > after):
                self._watch.advance(self._watch.committed + 1)
        return self._watch.committed

    def statistics(self) -> SQLiteJournalStatistics:
        """Counters since ``open``: appends, committed records and commits (batching)."""
        counters = self._counters
        return SQLiteJournalStatistics(
            appends=self._ticket,
            records=counters.records,
            commits=counters.commits,
            largest_batch=counters.largest_batch,
            inline_commits=counters.inline_commits,
        )

    # -- reading -------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo | None:
        """The committed state of one run, or ``None`` if there is no such run."""
        return await self._query(lambda conn: _queries.get_run(conn, run_id))

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """Committed runs in start order, optionally only those with ``status``."""
        return await self._query(lambda conn: _queries.list_runs(conn, status))

    async def page_runs(
        self,
        status: RunStatus | None = None,
        *,
        workflow: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """See :meth:`actorflow.abc.Journal.page_runs` (one indexed range scan)."""
        return await self._query(
            lambda conn: _queries.page_runs(conn, status, workflow, before, limit)
        )

    async def load_history(self, run_id: str) -> RunHistory | None:
        """The committed history of one run (see :class:`~actorflow.RunHistory`)."""
        version = self._schema_version
        return await self._query(lambda conn: _queries.load_history(conn, run_id, version))

    def read_stream_nowait(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage | None:
        """What :meth:`read_stream` would return, if the committed tail in memory has it.

        The first call for a stream starts keeping its tail: the entries
        committed from then on (see ``Tails``). None when the tail does not
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
        tail = self._tails.get(run_id, key)
        page, closed = await self._query(
            lambda conn: _queries.read_stream(conn, run_id, key, from_offset, limit)
        )
        if closed and tail is not None:
            # The stream was closed, or its run ended, before its tail began:
            # the tail cannot tell from the commits it sees. Both last until the
            # run is started again, which drops the tail.
            tail.closed = True
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """The committed streams of one run, by key."""
        return await self._query(lambda conn: _queries.list_streams(conn, run_id))

    async def _query(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        readers = self._readers
        if not self._open or readers is None:
            raise self._refusal()
        return await anyio.to_thread.run_sync(readers.query, query)
