"""Several runtimes on one journal: the writer, the runtimes waiting to take over, clients.

A journal that one runtime at a time may write (SQLite) is shared this way:

- The runtime that writes it executes every run (the *writer*). It also
  follows the journal through a reader twin and applies the requests other
  runtimes commit (:func:`serve_requests`): starting a run, delivering a
  message, cancelling a run.
- Every other runtime reads through a reader twin (``journal.reader()``)
  and asks the writer through ``journal.requests`` (:class:`Requester`). One
  made with ``execute=True`` (the default) also waits to take the writer's
  place (:func:`wait_to_write`): when the writer's process dies its lock goes
  with it, and the first waiting runtime opens the journal for writing and
  resumes every unfinished run, as a runtime that opens a journal after a
  crash does.

The writer lock is the fence: a process that holds it is the only one that
can append, and the kernel releases it when the process dies, so two
runtimes never execute one run at once, and a paused writer (SIGSTOP) keeps
its runs, and resumes them when it continues, rather than being overtaken.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
import msgspec

from ._exceptions import (
    ActorflowError,
    JournalLocked,
    RunFinished,
    RunNotFound,
    ValidationError,
    WorkflowNotFound,
)
from ._follow import follow
from .abc import Journal, Request, RequestQueue

__all__ = ("Requester", "Sharing", "serve_requests", "wait_to_write")

_log = logging.getLogger("actorflow.workers")
# How often a waiting runtime tries the writer lock: a dead writer's runs
# resume within this (plus recovery).
TAKEOVER_POLL = 0.1
_ERRORS: dict[str, Callable[[str, str], ActorflowError]] = {
    "RunFinished": lambda run_id, message: RunFinished(message),
    "RunNotFound": lambda run_id, message: RunNotFound(run_id),
    "WorkflowNotFound": lambda run_id, message: WorkflowNotFound(message),
    "ValidationError": lambda run_id, message: ValidationError(message),
}
_encode = msgspec.msgpack.encode


def encode_outcome(exc: ActorflowError) -> bytes:
    """A request's failed outcome, as the asker decodes it."""
    return _encode((type(exc).__name__, str(exc)))


@attrs.frozen
class Requester:
    """What a runtime that does not write asks the writer, through the journal.

    ``journal`` is this runtime's reader: waits for an outcome follow it.
    """

    journal: Journal
    requests: RequestQueue

    async def start(self, run_id: str, workflow: str, at: float, input: bytes) -> str:
        """Commit a PENDING run; return the workflow of the run with that id."""
        return await self.requests.start(run_id, workflow, at, input)

    async def send(self, run_id: str, topic: str, data: bytes, key: str | None) -> None:
        """Ask the writer to deliver a message; return once it did.

        Without a key the request gets one of its own, so a writer that
        crashes while applying it delivers it once, not twice.

        Raises:
            RunFinished: the run ended before the message could be delivered.
            RunNotFound: no such run.
        """
        key = key if key is not None else f"request-{uuid.uuid4().hex}"
        seq = await self.requests.submit("send", run_id, _encode((topic, data, key)))
        await self._outcome(run_id, seq)

    async def cancel(self, run_id: str) -> None:
        """Ask the writer to cancel a run (the caller then waits for the run's end)."""
        await self.requests.submit("cancel", run_id, None)

    async def _outcome(self, run_id: str, seq: int) -> None:
        async def look() -> tuple[bytes | None] | None:
            done, outcome = await self.requests.outcome(seq)
            return (outcome,) if done else None

        (outcome,) = await follow(self.journal, look)
        if outcome is not None:
            kind, message = msgspec.msgpack.decode(outcome)
            make = _ERRORS.get(kind)
            raise make(run_id, message) if make else ActorflowError(message)


@attrs.define(eq=False)
class Sharing:
    """How one runtime shares its journal: writer, waiting to write, or client.

    ``use`` makes the runtime read and write another journal object (the
    reader twin, or the journal itself once it can write it).
    """

    execute: bool
    use: Callable[[Journal], None]
    # Set while the runtime reads a journal that another runtime writes.
    requester: Requester | None = None
    # The journal to write once its writer lets go of it.
    candidate: Journal | None = None
    twins: list[Journal] = attrs.field(factory=list)  # reader twins opened here

    async def open(self, journal: Journal) -> None:
        """Open ``journal`` to write it, or (if another runtime does) a reader twin."""
        if not self.execute and not journal.readonly:
            await self._read_only(journal)
            return
        try:
            await journal.open()
        except JournalLocked:
            if not self.execute or journal.reader() is None:
                raise
            await self._read_only(journal)
            self.candidate = journal

    async def _read_only(self, journal: Journal) -> None:
        requests = journal.requests
        reader = await self.open_reader(journal)
        if requests is None:
            raise ValidationError(
                f"{journal!r} cannot be shared by several runtimes; use execute=True, or a "
                "journal other processes can open (a SQLite file)"
            )
        self.use(reader)
        self.requester = Requester(reader, requests)

    async def open_reader(self, journal: Journal) -> Journal:
        """Open a reader twin of ``journal`` (closed with the runtime)."""
        reader = journal.reader()
        if reader is None:
            raise ValidationError(
                f"{journal!r} cannot be read by another runtime; use execute=True, or a "
                "journal other processes can open (a SQLite file)"
            )
        await reader.open()
        self.twins.append(reader)
        return reader

    async def take_over(self, begin: Callable[[], Awaitable[None]]) -> None:
        """Wait to write the candidate journal; then write it and execute its runs."""
        journal = self.candidate
        assert journal is not None
        assert self.requester is not None
        await wait_to_write(journal)
        _log.info("this runtime now writes %r and executes its runs", journal)
        self.requester = self.candidate = None
        self.use(journal)
        await begin()

    async def close(self) -> None:
        """Close the reader twins (shielded by the caller)."""
        for twin in self.twins:
            await twin.close()


async def wait_to_write(journal: Journal) -> None:
    """Open ``journal`` for writing as soon as its writer lets go of it."""
    while True:
        try:
            await journal.open()
        except JournalLocked:
            await anyio.sleep(TAKEOVER_POLL)
        else:
            return


async def serve_requests(
    requests: RequestQueue,
    apply: Callable[[Request], Awaitable[bytes | None]],
    task_group: anyio.abc.TaskGroup,
) -> None:
    """Apply the requests of other runtimes, in the order they were made, until cancelled.

    It waits on the requests' own signal (``wait_for_request``), not on the
    journal's commits: the writer's own commits, the hot path, do not wake
    it. A ``cancel`` is applied in a task of its own, since it waits for the
    run to end; the others in order, here.
    """
    started: set[int] = set()  # cancels in flight

    async def cancel(request: Request) -> None:
        await requests.finish([(request.seq, await _applied(apply, request))])
        started.discard(request.seq)

    while True:
        outcomes = []
        pending = [r for r in await requests.pending() if r.seq not in started]
        for request in pending:
            if request.kind == "cancel":
                started.add(request.seq)
                task_group.start_soon(cancel, request)
            else:
                outcomes.append((request.seq, await _applied(apply, request)))
        if outcomes:
            await requests.finish(outcomes)
        if not pending:
            await requests.wait_for_request()


async def _applied(apply: Callable[[Request], Awaitable[bytes | None]], request: Request) -> Any:
    try:
        return await apply(request)
    except ActorflowError as exc:
        return encode_outcome(exc)
    except Exception:
        _log.exception("request %r failed", request)
        return encode_outcome(ActorflowError(f"the writer could not apply {request.kind!r}"))
