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

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import anyio
import anyio.abc

from ._live import Message, Overflow, SubscriptionStatistics
from ._values import (
    CommitWatch,
    Request,
    RunHistory,
    RunInfo,
    RunStatus,
    StreamEntry,
    StreamInfo,
    StreamPage,
)
from .records import ErrorInfo, Record

__all__ = (
    "Clock",
    "CommitWatch",
    "ErrorInfo",
    "Instrument",
    "Journal",
    "LiveBroker",
    "LivePublisher",
    "LiveSubscription",
    "Message",
    "Overflow",
    "Record",
    "Request",
    "RequestQueue",
    "RunHistory",
    "RunInfo",
    "RunStatus",
    "StreamEntry",
    "StreamInfo",
    "StreamPage",
    "SubscriptionStatistics",
)


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

    Several runtimes on one journal. A journal that one runtime at a time
    writes may still be shared: ``reader()`` gives a twin over the same
    storage that only reads, for a runtime that does not write (a client with
    ``execute=False``, or a worker waiting to take over), and ``requests``
    is how such a runtime asks the writer to start, signal or cancel a run.

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
    def requests(self) -> RequestQueue | None:
        """How a runtime that does not write asks the writer; None if no other can."""
        ...

    def reader(self) -> Journal | None:
        """A new, unopened twin that reads the same storage; None if it is private."""
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

    async def page_runs(
        self,
        status: RunStatus | None = None,
        *,
        workflow: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Committed runs, newest first: at most ``limit``, started before run ``before``.

        ``before`` is a cursor, the last run of the previous page (a run id
        this journal does not know gives no runs). A page costs what it holds,
        not what the journal holds.
        """
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


@runtime_checkable
class RequestQueue(Protocol):
    """Requests from runtimes that do not write a journal to the one that does.

    Every method commits (or reads committed state) before it returns.
    """

    async def start(self, run_id: str, workflow: str, at: float, input: bytes) -> str:
        """Commit a PENDING run and its start request; return the run's workflow.

        If the run exists, nothing is written and its workflow is returned.
        """
        ...

    async def submit(self, kind: str, run_id: str, body: bytes | None) -> int:
        """Commit a ``send`` or ``cancel`` request; return its number."""
        ...

    async def pending(self) -> list[Request]:
        """The requests not yet done, oldest first (for the writer)."""
        ...

    async def wait_for_request(self) -> None:
        """Return once a request may have been made since the last ``pending()`` (for the writer).

        It may return early (then ``pending()`` finds nothing new); it must not
        sleep through a request committed after that ``pending()`` began.
        """
        ...

    async def finish(self, outcomes: list[tuple[int, bytes | None]]) -> None:
        """Mark requests done, in one commit: ``(seq, outcome)`` pairs.

        An outcome is None (done), or the msgpack of ``(error type, message)``.
        """
        ...

    async def outcome(self, seq: int) -> tuple[bool, bytes | None]:
        """Whether a request is done, and its outcome; a done one is then forgotten."""
        ...


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

    async def publish(self, data: object, *, attempt: int = 0) -> None:
        """Publish ``data``; waits only for subscribers that chose ``overflow="block"``.

        ``attempt`` is the publishing step's attempt (0 for the workflow body);
        a broker that crosses processes may send it along.
        """
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

    @property
    def crosses_processes(self) -> bool:
        """Whether subscribers also receive what other processes publish.

        Then a run-scoped subscription to a run this runtime does not execute
        stays open until the run's end reaches it through the broker (or the
        journal says the run has already ended), instead of finishing at once.
        """
        ...

    async def synchronize(self) -> None:
        """Return once the subscriptions made so far receive every later publish.

        In-process that is at once; across processes it waits until the
        server has taken the subscriptions (a round trip).
        """
        ...

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
