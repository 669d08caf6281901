"""The runtime: owns the journal, the live broker, the clock, and every run actor."""

from __future__ import annotations

import os
import uuid
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import anyio
import anyio.abc
import attrs
import msgspec

from ._background import close_runtime, open_runtime
from ._clock import SystemClock
from ._codec import encode_value
from ._exceptions import (
    ActorflowError,
    RunFinished,
    RunNotFound,
    ValidationError,
)
from ._handle import RunHandle
from ._history import fold
from ._instrument import Hooks, hooks_of
from ._journals import open_journal
from ._live import Broker
from ._logging import LOGGING
from ._reading import RunReading
from ._recovery import resumable_runs
from ._registry import Workflow, lookup_workflow, validate_name
from ._run import CancelRun, Deliver, RunActor, RunServices
from ._sharing import Sharing, serve_requests
from ._stream_reader import StreamReaders
from ._validate import validate_key, validate_run_id
from .abc import (
    Clock,
    Instrument,
    Journal,
    LiveBroker,
    Request,
)
from .records import MessageSent, RunEnded, RunStarted, StreamEnded

__all__ = ("Runtime",)

I = TypeVar("I")  # noqa: E741
T = TypeVar("T")
O = TypeVar("O")  # noqa: E741


def _not_open() -> ActorflowError:
    return ActorflowError("the runtime is not open; use `async with af.Runtime(...)`")


@attrs.define(eq=False, init=False)
class Runtime(RunReading):
    """Runs workflows, journaling them; an async context manager that owns one task group.

    ``async with Runtime("runs.db") as rt`` opens the journal and resumes every
    unfinished run whose workflow is registered. Leaving the block cancels
    whatever still runs; those runs stay unfinished in the journal and resume
    the next time a runtime opens it.

    Args:
        journal: ``None`` for an in-memory journal, a path or ``sqlite:///path``
            for a SQLite journal, or any :class:`actorflow.abc.Journal`.
        broker: where live streams go (:class:`actorflow.abc.LiveBroker`);
            default: an in-process broker.
        clock: the source of time (:class:`actorflow.abc.Clock`); default:
            :class:`~actorflow.SystemClock`.
        instrument: hooks observing runs, steps, streams and commits
            (:class:`actorflow.abc.Instrument`), called after the built-in
            ones that log to the ``actorflow`` loggers; default: none.
        execute: whether this runtime executes runs. A runtime that cannot
            write the journal because another one does (a second worker of
            a web server on one SQLite file) reads it, sends its starts,
            messages and cancels to the writer, and takes the writer's place
            when it goes away. With ``execute=False`` it is only a client: it
            starts, signals, cancels and reads runs, and never executes one.
    """

    journal: Journal
    broker: LiveBroker
    clock: Clock
    _services: RunServices
    _tg: anyio.abc.TaskGroup | None
    _tg_cm: Any
    # Invariant: a run id is in _actors from the moment a start or a recovery
    # claims it until its end is committed (or the runtime stops it), all in
    # the event loop's thread.
    _actors: dict[str, RunActor]
    _starts: int  # starts committed: a read of a run that misses one is read again
    _ends: int  # run ends committed here: a send that misses one reads again
    _stream_readers: StreamReaders
    _hooks: Hooks
    _sharing: Sharing

    def __init__(
        self,
        journal: Journal | str | os.PathLike[str] | None = None,
        *,
        broker: LiveBroker | None = None,
        clock: Clock | None = None,
        instrument: Instrument | None = None,
        execute: bool = True,
    ) -> None:
        self.broker = Broker() if broker is None else broker
        self.clock = SystemClock() if clock is None else clock
        self._hooks = hooks_of(LOGGING, instrument)
        self._sharing = Sharing(execute, self._use)
        self._use(open_journal(journal))
        self._tg = None
        self._tg_cm = None
        self._actors = {}
        self._starts = 0
        self._ends = 0

    def _use(self, journal: Journal) -> None:
        """Make ``journal`` the one this runtime writes and reads from now on."""
        self.journal = journal
        self._services = RunServices(journal, self.broker, self.clock, self._hooks, self._ended)
        self._stream_readers = StreamReaders(journal)
        self._followed = {}

    def __repr__(self) -> str:
        return f"<Runtime journal={self.journal!r} active_runs={len(self._actors)}>"

    async def open(self) -> Self:
        """Open the runtime without ``async with``; :meth:`aclose` closes it, from any task.

        For notebooks: ``rt = await af.Runtime("runs.db").open()`` in one cell,
        ``await rt.aclose()`` in another. The runtime's task group lives in a
        background task (a task group must be left in the task that entered it).

        Raises:
            ActorflowError: the runtime is open already.
        """
        await open_runtime(self)
        return self

    async def aclose(self) -> None:
        """Close a runtime opened with :meth:`open` (a no-op if it is not open)."""
        await close_runtime(self)

    @property
    def is_open(self) -> bool:
        """Whether the runtime is open (inside ``async with``, or between open and close)."""
        return self._tg is not None

    async def __aenter__(self) -> Self:
        await self._sharing.open(self.journal)
        try:
            self._tg_cm = anyio.create_task_group()
            self._tg = await self._tg_cm.__aenter__()
            await self._tg.start(self.broker.run)
            if self._hooks.committed is not None:
                self._tg.start_soon(self._report_commits, self._hooks.committed)
            if self._sharing.candidate is not None:
                self._tg.start_soon(self._sharing.take_over, self._begin_writing)
            elif not self.journal.readonly:
                await self._begin_writing()
        except BaseException:
            await self._aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self._aclose()
        return None

    async def _aclose(self) -> None:
        # The caller's own exception propagates as it is: the task group only
        # holds run actors, which never raise, so it is exited as if clean.
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg_cm.__aexit__(None, None, None)
        finally:
            self._tg = None
            self.broker.close()
            with anyio.CancelScope(shield=True):
                await self.journal.close()
                await self._sharing.close()

    async def _begin_writing(self) -> None:
        """Resume the journal's unfinished runs, and serve other runtimes' requests."""
        await self._recover()
        requests = self.journal.requests
        if requests is not None and self._tg is not None:
            self._tg.start_soon(serve_requests, requests, self._apply, self._tg)

    async def _apply(self, request: Request) -> bytes | None:
        """Apply another runtime's request; its outcome (None: done)."""
        run_id = request.run_id
        if request.kind == "start":
            if run_id not in self._actors:
                for actor in await resumable_runs(self._services, only=run_id):
                    self._spawn(actor)
        elif request.kind == "send":
            assert request.body is not None
            topic, data, key = msgspec.msgpack.decode(request.body)
            await self._send(run_id, topic, data, key)
        elif request.kind == "cancel":
            await self.cancel(run_id)
        return None

    async def _report_commits(self, hook: Any) -> None:
        committed = self.journal.committed
        while True:
            committed = await self.journal.wait_for_commit(committed)
            hook(committed)

    async def _recover(self) -> None:
        if self.journal.readonly:
            # A reader of a journal another runtime writes: that runtime holds
            # the runs; this one only reads.
            return
        for actor in await resumable_runs(self._services, skip=self._actors.keys()):
            self._spawn(actor)

    def _spawn(self, actor: RunActor) -> None:
        if self._tg is None:
            raise _not_open()
        self._actors[actor.run_id] = actor
        self._tg.start_soon(actor.run, name=f"actorflow run {actor.run_id}")

    def _ended(self, actor: RunActor) -> None:
        """A run's end is committed (or the runtime stopped it): forget it, end its streams."""
        if self._actors.get(actor.run_id) is actor:
            del self._actors[actor.run_id]
        if actor.ending:
            self._ends += 1
        self.broker.end_run(actor.run_id)

    # -- starting and finding runs --------------------------------------------------

    @overload
    async def start(
        self, workflow: Workflow[None, O], input: None = None, *, run_id: str | None = None
    ) -> RunHandle[O]: ...
    @overload
    async def start(
        self, workflow: Workflow[I, O], input: I, *, run_id: str | None = None
    ) -> RunHandle[O]: ...
    @overload
    async def start(
        self, workflow: str, input: Any = None, *, run_id: str | None = None
    ) -> RunHandle[Any]: ...

    async def start(
        self, workflow: Workflow[Any, O] | str, input: Any = None, *, run_id: str | None = None
    ) -> RunHandle[O]:
        """Start a run of ``workflow``; return once the start is committed.

        Starting again with an existing ``run_id`` returns that run's handle.

        Args:
            workflow: an ``@af.workflow`` function, or a registered name.
            input: the run's input (msgspec-encodable).
            run_id: the run's id; a new UUID if omitted.

        Raises:
            EncodeError: ``input`` is not msgspec-encodable; nothing is written.
            ValidationError: a bad ``run_id``, or one that exists with another workflow.
            WorkflowNotFound: no workflow is registered under that name.
        """
        requester = self._sharing.requester
        if requester is not None and isinstance(workflow, str):
            # A client starts a workflow by name that only the writer may know.
            name = validate_name(workflow, "workflow name")
            data = encode_value(input, f"the input of workflow {name!r}")
            run_id = uuid.uuid4().hex if run_id is None else validate_run_id(run_id)
            existing = await requester.start(run_id, name, self.clock.time(), data)
            return self._started(run_id, name, existing)
        wf = lookup_workflow(workflow) if isinstance(workflow, str) else workflow
        if not isinstance(wf, Workflow):
            raise ValidationError(f"start() takes an @af.workflow function, not {workflow!r}")
        data = encode_value(input, f"the input of workflow {wf.name!r}")
        if self._tg is None:
            raise _not_open()
        if run_id is None:
            run_id = uuid.uuid4().hex
        else:
            validate_run_id(run_id)
            while True:
                starts = self._starts
                info = None if run_id in self._actors else await self.journal.get_run(run_id)
                # Read the active runs after the await: a concurrent start of the same
                # id may have claimed it meanwhile, or even committed and finished
                # it, after the read's snapshot: then read again.
                active = self._actors.get(run_id)
                if active is not None or info is not None or self._starts == starts:
                    break
            known = active.workflow.name if active else (info.workflow if info else None)
            if known is not None:
                return self._started(run_id, wf.name, known)
        if requester is not None:  # another runtime writes: commit a PENDING run
            known = await requester.start(run_id, wf.name, self.clock.time(), data)
            return self._started(run_id, wf.name, known)
        # Claim the id with no await since the check above, so that a concurrent start
        # of the same id finds it; the actor begins once the start record is committed.
        actor = RunActor(self._services, run_id, wf, data, fold(None))
        self._actors[run_id] = actor
        try:
            await self.journal.wait_committed(
                self.journal.append(
                    RunStarted(run_id, workflow=wf.name, input=data, at=self.clock.time())
                )
            )
        except BaseException:
            if self._actors.get(run_id) is actor:
                del self._actors[run_id]
            raise
        self._starts += 1
        self._tg.start_soon(actor.run, name=f"actorflow run {run_id}")
        return RunHandle(self, run_id)

    def _started(self, run_id: str, name: str, existing: str) -> RunHandle[Any]:
        if existing != name:
            raise ValidationError(
                f"run {run_id!r} already exists with workflow {existing!r}, not {name!r}; "
                "choose another run_id"
            )
        return RunHandle(self, run_id)

    @overload
    async def run(
        self, workflow: Workflow[None, O], input: None = None, *, run_id: str | None = None
    ) -> O: ...
    @overload
    async def run(self, workflow: Workflow[I, O], input: I, *, run_id: str | None = None) -> O: ...
    @overload
    async def run(self, workflow: str, input: Any = None, *, run_id: str | None = None) -> Any: ...

    async def run(
        self, workflow: Workflow[Any, O] | str, input: Any = None, *, run_id: str | None = None
    ) -> O:
        """Start a run and return its result (see :meth:`start` and :meth:`result`)."""
        handle = await self.start(workflow, input, run_id=run_id)
        return await handle.result()

    def handle(self, run_id: str) -> RunHandle[Any]:
        """A handle on an existing run; its methods raise RunNotFound if there is none."""
        return RunHandle(self, run_id)

    async def cancel(self, run_id: str) -> None:
        """Cancel run ``run_id`` and wait until it has ended CANCELLED (no-op if it ended).

        Raises:
            RunNotFound: no such run.
        """
        requester = self._sharing.requester  # held across the awaits, as in send()
        actor = self._actors.get(run_id)
        if actor is not None and actor.tell(CancelRun()):
            await actor.wait_finished()
            return
        info = await self.get_run(run_id)
        if info.status.is_terminal or run_id in self._actors:
            if run_id in self._actors:
                await self._wait_finished(run_id)
            return
        if requester is not None:
            await requester.cancel(run_id)
            await self._wait_finished(run_id)
            return
        for stream in await self.journal.list_streams(run_id):
            if not stream.closed:
                self.journal.append(StreamEnded(run_id, key=stream.key))
        await self.journal.wait_committed(
            self.journal.append(RunEnded(run_id, status="CANCELLED", at=self.clock.time()))
        )
        self.broker.end_run(run_id)

    def cancel_nowait(self, run_id: str) -> bool:
        """Ask run ``run_id`` to stop if it executes in this runtime; do not wait.

        Returns whether it does (it then ends CANCELLED shortly). For a run
        executed elsewhere, or to wait for the end, use :meth:`cancel`.
        """
        actor = self._actors.get(run_id)
        return actor is not None and actor.tell(CancelRun())

    # -- signals and events -------------------------------------------------------------

    async def send(
        self, run_id: str, value: object, *, topic: str = "default", key: str | None = None
    ) -> None:
        """Append ``value`` to the durable inbox of run ``run_id`` for ``topic``.

        Returns once the message is committed; the run's ``ctx.recv(topic)``
        receives it exactly once, even if it asks later or crashes meanwhile.
        From a runtime that does not write the journal, it returns once the
        writer has delivered it.

        Args:
            run_id: the run.
            value: the message (msgspec-encodable).
            topic: the inbox it goes to.
            key: an idempotency key: a message sent to the same run with a key
                already used is not sent again (a client retrying a send after
                a crash delivers it once).

        Raises:
            RunNotFound: no such run.
            RunFinished: the run has ended, so nothing would ever receive it.
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
            ValidationError: bad topic or key.
        """
        validate_key(topic, "topic")
        if key is not None:
            validate_key(key, "idempotency key")
        data = encode_value(value, f"the message sent to run {run_id!r}")
        # Held across the awaits: a request made just before this runtime took
        # over is still applied, by this runtime itself.
        requester = self._sharing.requester
        if requester is not None:
            info = await self.get_run(run_id)
            if info.status.is_terminal:
                raise _finished(run_id, info.status.value)
            await requester.send(run_id, topic, data, key)
            return
        await self._send(run_id, topic, data, key)

    async def _send(self, run_id: str, topic: str, data: bytes, key: str | None) -> None:
        while True:
            actor = self._actors.get(run_id)
            if actor is not None:
                if actor.ending:
                    raise _finished(run_id, "COMPLETED, FAILED or CANCELLED")
                break
            ends = self._ends
            info = await self.journal.get_run(run_id)
            if info is None:
                raise RunNotFound(run_id)
            if info.status.is_terminal:
                raise _finished(run_id, info.status.value)
            # A run of this runtime may have ended (or started) during the read,
            # after its snapshot: then read again.
            if self._ends == ends and run_id not in self._actors:
                break
        if key is not None:
            if actor is not None:
                if actor.has_message(key):
                    return
            elif key in fold(await self.journal.load_history(run_id)).sent_keys:
                return
        ticket = self.journal.append(MessageSent(run_id, topic, data, self.clock.time(), key))
        if actor is not None:
            actor.tell(Deliver(topic, data, key))
        await self.journal.wait_committed(ticket)


def _finished(run_id: str, status: str) -> RunFinished:
    return RunFinished(
        f"run {run_id!r} is {status}, so no one would receive a message sent to it; start a "
        "new run instead"
    )
