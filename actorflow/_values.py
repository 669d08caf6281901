"""The values the journal protocol takes and returns (re-exported by :mod:`actorflow.abc`)."""

from __future__ import annotations

import enum

import anyio
import attrs

from ._exceptions import JournalError as _JournalError
from .records import ErrorInfo, Record

__all__ = (
    "CommitWatch",
    "Request",
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
            raise _JournalError(
                f"the journal writer failed ({self.failure!r}); records after the last "
                "commit were not written: fix the cause and open the journal again"
            ) from self.failure
        if self.closed:
            raise _JournalError(
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


@attrs.frozen
class Request:
    """A request to the writer of a journal: ``start``, ``send`` or ``cancel`` a run.

    Attributes:
        seq: its number, in the order requests were made.
        kind: ``"start"``, ``"send"`` or ``"cancel"``.
        run_id: the run it is about.
        body: for ``send``, the msgpack of ``(topic, value, key)``.
    """

    seq: int
    kind: str
    run_id: str
    body: bytes | None
