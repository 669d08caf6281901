"""The seams of actorflow: the protocols a backend implements, and every value they use.

This is the public module for people who extend actorflow rather than use it
(as ``trio.abc`` and ``anyio.abc`` are):

- :class:`Journal`: the storage a runtime writes its log to. One ordered log
  of :mod:`actorflow.records` records; appends are queued in order and
  committed in batches; a reader only ever sees a committed prefix. Backends
  live side by side behind it (:class:`~actorflow.MemoryJournal`,
  :class:`~actorflow.SQLiteJournal`); a new one is a class, not a fork, and
  proves itself with ``actorflow.testing.check_journal(factory)``.
- :class:`LiveBroker`, :class:`LivePublisher` and :class:`LiveSubscription`:
  where ``ctx.put_stream`` messages go and how subscribers get them.
- :class:`Clock`: the one source of time (loop time for timeouts, heartbeats
  and backoff; wall time for the records and durable deadlines).
- :class:`Instrument`: hooks that observe runs, step attempts, streams and
  commits (logging and OpenTelemetry plug in here); every hook is optional.
"""

from __future__ import annotations

import enum
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import anyio
import anyio.abc
import attrs

from ._exceptions import JournalError
from ._live import Message, Overflow, SubscriptionStatistics
from .records import ErrorInfo, Record

__all__ = (
    "Clock",
    "CommitWatch",
    "Instrument",
    "Journal",
    "LiveBroker",
    "LivePublisher",
    "LiveSubscription",
    "Message",
    "Overflow",
    "RunHistory",
    "RunInfo",
    "RunStatus",
    "StreamEntry",
    "StreamInfo",
    "StreamPage",
    "SubscriptionStatistics",
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

    Lifecycle: ``await open()`` (creates or checks the schema; a writer takes
    the right to write), then any number of ``append`` / reads, then ``await
    close()`` (commits what is queued and gives the right up). ``committed`` is
    the ticket of the last committed record; tickets increase by one per
    ``append``.

    Who writes what. The records of a run are appended by the runtime that
    executes it, and by no other: a run executes in exactly one runtime at a
    time, the one that holds it. A journal that one runtime at a time may open
    for writing (MemoryJournal, SQLiteJournal) makes that runtime the holder of
    every run in it, and refuses a second writer (:class:`~actorflow.JournalLocked`);
    a journal shared by several writers must instead record which runtime
    holds each run and refuse the commits of one that no longer holds it.
    Other runtimes, and other callers, only append records that ask something
    of a run: a start, a message (``send``), a cancel request. So ``send`` and
    ``cancel`` of a run executed elsewhere go through the journal, never
    straight to an actor of the process that called them; only the holder
    acts on them.

    Declared capabilities (instead of probed with ``getattr``):

    - ``readonly``: the journal reads only (a follower of a journal another
      process writes); ``append`` raises, and a runtime over it resumes
      nothing.
    - ``read_stream_nowait``: the page ``read_stream`` would return, when the
      journal can answer without waiting (from memory), else ``None``.
      Readers following a stream ask it first. Returning ``None`` always is
      a correct implementation.
    """

    @property
    def readonly(self) -> bool:
        """Whether this journal only reads (``append`` raises; nothing is resumed)."""
        ...

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

    def read_stream_nowait(
        self, run_id: str, key: str, from_offset: int, limit: int
    ) -> StreamPage | None:
        """The page :meth:`read_stream` would return, if known without waiting, else ``None``."""
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
    closed: bool = False
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

    def close(self) -> None:
        """The journal closed: every waiter, present and future, gets a JournalError."""
        self.closed = True
        self._wake()

    def reopen(self) -> None:
        """The journal opened again (a MemoryJournal can): waits work again."""
        self.closed = False

    def _wake(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    def check(self) -> None:
        """Raise JournalError if the writer has failed or the journal is closed."""
        if self.failure is not None:
            raise JournalError(
                f"the journal writer failed ({self.failure!r}); records after the last "
                "commit were not written: fix the cause and open the journal again"
            ) from self.failure
        if self.closed:
            raise JournalError(
                "the journal was closed (its runtime exited) while waiting for a commit; "
                "read or wait inside the `async with Runtime(...)` block, or open it again"
            )

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


@runtime_checkable
class Clock(Protocol):
    """The one source of time of a runtime: ``Runtime(clock=...)``.

    Two readings, kept together so that a virtual clock moves both at once:
    ``time()`` is wall time (UNIX seconds), written into records and used for
    durable deadlines (``ctx.sleep``, ``recv(timeout=...)``), which must
    survive a restart; ``current_time()`` is the event loop's time, for
    timeouts, heartbeats and backoff inside one process. ``sleep`` waits in
    loop time. The default, :class:`actorflow.SystemClock`, reads
    ``time.time()`` and the loop's clock; ``actorflow.testing.VirtualClock``
    derives wall time from the loop's (virtual) time, so a crash at virtual
    t=1000 of a durable 3600 s sleep still wakes at t=3600.
    """

    def time(self) -> float:
        """Wall time in UNIX seconds: what records say and durable deadlines use."""
        ...

    def current_time(self) -> float:
        """The event loop's time in seconds (``anyio.current_time()`` by default)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of loop time (``anyio.sleep`` by default)."""
        ...


class Instrument:
    """Hooks that observe a runtime: ``Runtime(instrument=...)``; subclass and override.

    Every hook is optional: the runtime calls only the hooks a subclass
    overrides, so an instrument that observes runs costs nothing per stream
    write, and a runtime without one pays nothing. Hooks run in the event
    loop's thread, synchronously, at the moment they name; they must be quick
    and must not raise (an exception is logged to the ``actorflow`` logger and
    dropped, so a broken instrument never breaks a run).

    ``run_id`` and ``step_id`` are as in records; ``attempt`` counts from 1.
    """

    def run_started(self, run_id: str, workflow: str, *, resumed: bool) -> None:
        """A run began executing in this runtime (``resumed``: after a restart)."""

    def run_finished(
        self, run_id: str, workflow: str, status: str, error: ErrorInfo | None
    ) -> None:
        """A run ended: ``status`` is COMPLETED, FAILED or CANCELLED."""

    def run_stopped(self, run_id: str, workflow: str) -> None:
        """The runtime closed while the run ran: it stays unfinished, and resumes later."""

    def step_started(self, run_id: str, step_id: str, attempt: int) -> None:
        """An attempt of a step began."""

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        """An attempt raised; ``retry_in`` is the backoff before the next, or None if none."""

    def step_finished(self, run_id: str, step_id: str, attempt: int) -> None:
        """An attempt returned; the step is complete."""

    def heartbeat_timeout(self, run_id: str, step_id: str, attempt: int, timeout: float) -> None:
        """An attempt sent no heartbeat for ``timeout`` s; it is cancelled (step_failed follows)."""

    def stream_written(self, run_id: str, key: str, offset: int, step_id: str) -> None:
        """A durable stream entry was queued."""

    def stream_closed(self, run_id: str, key: str) -> None:
        """A durable stream was closed."""

    def committed(self, ticket: int) -> None:
        """The journal committed everything up to ``ticket``."""

    def journal_failed(self, run_id: str, error: BaseException) -> None:
        """The journal failed under run ``run_id`` (a write or a commit raised ``error``)."""


@runtime_checkable
class LivePublisher(Protocol):
    """Publishes one step's live stream (subject ``stream.<run_id>.<step_id>``)."""

    @property
    def seq(self) -> int:
        """How many messages this step has published (the last ``Message.seq``)."""
        ...

    async def publish(self, data: object) -> None:
        """Publish ``data``; waits only for subscribers that chose ``overflow="block"``."""
        ...


@runtime_checkable
class LiveSubscription(Protocol):
    """A subscriber: an async context manager and async iterator of :class:`Message`."""

    @property
    def pattern(self) -> str:
        """The subject pattern it receives."""
        ...

    @property
    def dropped(self) -> int:
        """Messages lost to overflow so far."""
        ...

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of its counters."""
        ...

    def finish(self) -> None:
        """Stop receiving; the iterator drains what is buffered, then stops."""
        ...

    def close(self) -> None:
        """Unsubscribe now: buffered messages are discarded and the iterator stops."""
        ...

    async def aclose(self) -> None:
        """Unsubscribe now (see :meth:`close`)."""
        ...

    def __aiter__(self) -> Self: ...

    async def __anext__(self) -> Message: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class LiveBroker(Protocol):
    """Routes live-stream messages from publishers to subscribers: ``Runtime(broker=...)``.

    The in-process broker (the default) delivers the published object itself.
    A broker that crosses processes (NATS, ...) delivers copies: subscribers
    get a value decoded from what was sent, never the object a step
    published, and must not rely on identity or on mutations made after the
    publish. Either way, messages of one step reach each subscriber in publish
    order, minus drops, and every drop is counted and reported on the next
    delivered message (``dropped_before``).

    Lifecycle: the runtime starts ``run`` in its task group with
    ``task_group.start`` and calls ``close`` when it closes.
    """

    def publisher(self, run_id: str, step_id: str) -> LivePublisher:
        """The publisher of one step; the same one until :meth:`end_run` (``seq`` continues)."""
        ...

    def subscribe(
        self,
        pattern: str,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
        run_id: str | None = None,
    ) -> LiveSubscription:
        """Subscribe to subjects matching ``pattern``; ``run_id`` ends it with that run."""
        ...

    def end_run(self, run_id: str) -> None:
        """The run ended: finish its run-scoped subscriptions, forget its publishers."""
        ...

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = ...) -> None:
        """The broker's own work, if any, until cancelled; ``task_status.started()`` when ready."""
        ...

    def close(self) -> None:
        """Finish every subscription; later ones start finished."""
        ...
