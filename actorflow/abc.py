"""The journal protocol, and the values its backends return.

A journal is one ordered log of :mod:`actorflow._records` records. Appends are
queued in order and committed in batches; a reader only ever sees a committed
prefix. Backends live side by side behind :class:`Journal`:
:class:`~actorflow.MemoryJournal` and :class:`~actorflow.SQLiteJournal`. A third
one (Postgres, ...) is a class that implements this protocol, not a fork.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

import anyio
import attrs

from ._exceptions import JournalError
from .records import ErrorInfo, Record

__all__ = (
    "CommitWatch",
    "Journal",
    "RunHistory",
    "RunInfo",
    "RunStatus",
    "StreamEntry",
    "StreamInfo",
    "StreamPage",
)


class RunStatus(enum.StrEnum):
    """Where a run is in its life. COMPLETED, FAILED and CANCELLED are terminal."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


@attrs.frozen
class RunInfo:
    """What the journal knows of one run (committed state).

    Attributes:
        run_id: the run's id.
        workflow: the registered name of its workflow.
        status: its status.
        started_at: when it was started (UNIX time).
        finished_at: when it ended, or ``None``.
        input: its input, msgpack-encoded.
        output: its output, msgpack-encoded, once COMPLETED.
        error: the workflow's exception, once FAILED.
    """

    run_id: str
    workflow: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    input: bytes = attrs.field(default=b"", repr=False)
    output: bytes | None = attrs.field(default=None, repr=False)
    error: ErrorInfo | None = None


@attrs.frozen
class StreamEntry:
    """One committed entry of a durable stream.

    Attributes:
        offset: its 0-based offset in the stream.
        value: the value as written (decoded from msgpack).
        step_id: the step that wrote it (``"main"`` for the workflow body).
        attempt: the attempt of that step that wrote it (1 for the body).
    """

    offset: int
    value: object
    step_id: str
    attempt: int


@attrs.frozen
class StreamPage:
    """A slice of a durable stream read in one committed snapshot.

    Attributes:
        entries: entries from the requested offset, in offset order.
        closed: no entry will ever follow ``entries`` (the stream was closed, or
            its run ended), as of the same snapshot.
    """

    entries: list[StreamEntry]
    closed: bool


@attrs.frozen
class StreamInfo:
    """A durable stream of a run: its key, how many entries it has, whether it is closed."""

    key: str
    length: int
    closed: bool


@attrs.frozen
class RunHistory:
    """Everything recovery needs to resume a run.

    Attributes:
        info: the run.
        records: the run's records in log order, except stream writes made by
            steps (``StreamWrite`` with ``position=None``), which only count
            towards ``stream_lengths``.
        stream_lengths: the committed length of each of the run's streams.
    """

    info: RunInfo
    records: list[Record]
    stream_lengths: dict[str, int]


@runtime_checkable
class Journal(Protocol):
    """The storage a :class:`~actorflow.Runtime` writes its log to.

    Lifecycle: ``await open()`` (takes the writer lock, creates or checks the
    schema), then any number of ``append`` / reads, then ``await close()``
    (commits what is queued, releases the lock). ``committed`` is the ticket of
    the last committed record; tickets increase by one per ``append``.

    A journal may also define ``read_stream_nowait(run_id, key, from_offset,
    limit) -> StreamPage | None``: the page ``read_stream`` would return, when
    it can answer without waiting (from memory), else None. Readers following
    a stream call it first, if it exists, and ``read_stream`` when it says None.
    """

    @property
    def committed(self) -> int:
        """The ticket of the last committed record (0 before any)."""
        ...

    async def open(self) -> None:
        """Open for writing.

        Raises:
            JournalLocked: another runtime writes this journal.
            JournalError: it is not a journal, or one of a newer schema.
        """
        ...

    async def close(self) -> None:
        """Commit everything queued and release the journal."""
        ...

    def append(self, record: Record) -> int:
        """Queue ``record`` after every record appended before it; return its ticket.

        Raises:
            JournalError: the journal is closed or its writer has failed.
        """
        ...

    async def wait_committed(self, ticket: int) -> None:
        """Return once the record with ``ticket`` (and so all before it) is committed."""
        ...

    async def wait_for_commit(self, after: int) -> int:
        """Return the new ``committed`` once it exceeds ``after``."""
        ...

    async def get_run(self, run_id: str) -> RunInfo | None:
        """The committed state of one run, or ``None`` if there is no such run."""
        ...

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """Committed runs, oldest first, optionally only those with ``status``."""
        ...

    async def load_history(self, run_id: str) -> RunHistory | None:
        """The committed history of one run (see :class:`RunHistory`)."""
        ...

    async def read_stream(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage:
        """Committed entries of stream ``key`` from ``from_offset``, at most ``limit``."""
        ...

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """The committed streams of one run, by key."""
        ...


@attrs.define(eq=False)
class CommitWatch:
    """The committed ticket, and a way to wait for it to move.

    A backend calls :meth:`advance` once per committed batch, in the event
    loop's thread, which wakes every waiter of that batch at once.
    """

    committed: int = 0
    failure: BaseException | None = None
    _event: anyio.Event | None = None

    def advance(self, ticket: int) -> None:
        """Mark everything up to ``ticket`` committed and wake the waiters."""
        if ticket > self.committed:
            self.committed = ticket
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """The writer died: every waiter, present and future, gets a JournalError."""
        self.failure = exc
        self._wake()

    def _wake(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    def check(self) -> None:
        """Raise JournalError if the writer has failed."""
        if self.failure is not None:
            raise JournalError(
                f"the journal writer failed ({self.failure!r}); records after the last "
                "commit were not written: fix the cause and open the journal again"
            ) from self.failure

    async def wait_for(self, ticket: int) -> None:
        """Wait until ``committed >= ticket``."""
        while self.committed < ticket:
            self.check()
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()

    async def wait_after(self, after: int) -> int:
        """Wait until ``committed > after`` and return it."""
        await self.wait_for(after + 1)
        return self.committed
