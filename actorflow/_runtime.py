"""The runtime: owns the journal, the live broker, the clock, and every run actor."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, nullcontext
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import anyio.abc
import attrs

from ._clock import SystemClock
from ._codec import encode_value
from ._exceptions import (
    ActorflowError,
    RunFinished,
    RunNotFound,
    ValidationError,
)
from ._follow import follow
from ._handle import RunHandle
from ._history import fold
from ._instrument import hooks_of
from ._journals import open_journal
from ._live import Broker, Overflow, run_pattern
from ._logging import LOGGING
from ._outcome import outcome, wait_event
from ._registry import Workflow, lookup_workflow, registered_workflows
from ._run import CancelRun, Deliver, RunActor, RunServices
from ._stream_reader import StreamReaders
from ._validate import validate_key, validate_run_id
from .abc import (
    Clock,
    Instrument,
    Journal,
    LiveBroker,
    LiveSubscription,
    RunInfo,
    RunStatus,
    StreamEntry,
)
from .records import MessageSent, RunStarted, StreamClose
from .records import RunFinished as RunFinishedRecord

__all__ = ("Runtime",)

O = TypeVar("O")  # noqa: E741


def _not_open() -> ActorflowError:
    return ActorflowError("the runtime is not open; use `async with af.Runtime(...)`")


@attrs.define(eq=False, init=False)
class Runtime:
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

    def __init__(
        self,
        journal: Journal | str | os.PathLike[str] | None = None,
        *,
        broker: LiveBroker | None = None,
        clock: Clock | None = None,
        instrument: Instrument | None = None,
    ) -> None:
        self.journal = open_journal(journal)
        self.broker = Broker() if broker is None else broker
        self.clock = SystemClock() if clock is None else clock
        self._services = RunServices(
            self.journal, self.broker, self.clock, hooks_of(LOGGING, instrument), self._ended
        )
        self._tg = None
        self._tg_cm = None
        self._actors = {}
        self._starts = 0
        self._ends = 0
        self._stream_readers = StreamReaders(self.journal)

    def __repr__(self) -> str:
        return f"<Runtime journal={self.journal!r} active_runs={len(self._actors)}>"

    async def __aenter__(self) -> Self:
        await self.journal.open()
        try:
            self._tg_cm = anyio.create_task_group()
            self._tg = await self._tg_cm.__aenter__()
            await self._tg.start(self.broker.run)
            if self._services.hooks.committed is not None:
                self._tg.start_soon(self._report_commits, self._services.hooks.committed)
            await self._recover()
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
        workflows = registered_workflows()
        for status in (RunStatus.PENDING, RunStatus.RUNNING):
            for info in await self.journal.list_runs(status):
                wf = workflows.get(info.workflow)
                if wf is not None and info.run_id not in self._actors:
                    history = await self.journal.load_history(info.run_id)
                    actor = RunActor(
                        self._services, info.run_id, wf, info.input, fold(history), resumed=True
                    )
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
            existing = active.workflow.name if active else (info.workflow if info else None)
            if existing is not None:
                if existing != wf.name:
                    raise ValidationError(
                        f"run {run_id!r} already exists with workflow {existing!r}, not "
                        f"{wf.name!r}; choose another run_id"
                    )
                return RunHandle(self, run_id)
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

    async def run(
        self, workflow: Workflow[Any, O] | str, input: Any = None, *, run_id: str | None = None
    ) -> O:
        """Start a run and return its result (see :meth:`start` and :meth:`result`)."""
        handle = await self.start(workflow, input, run_id=run_id)
        return await handle.result()

    def handle(self, run_id: str) -> RunHandle[Any]:
        """A handle on an existing run; its methods raise RunNotFound if there is none."""
        return RunHandle(self, run_id)

    async def list_runs(self, status: RunStatus | str | None = None) -> list[RunInfo]:
        """Runs in the journal, oldest first, optionally only those with ``status``."""
        wanted = None if status is None else _status(status)
        return await self.journal.list_runs(wanted)

    async def get_run(self, run_id: str) -> RunInfo:
        """The journal's view of one run.

        Raises:
            RunNotFound: no such run.
        """
        info = await self.journal.get_run(run_id)
        if info is None:
            raise RunNotFound(run_id)
        return info

    async def status(self, run_id: str) -> RunStatus:
        """The committed status of run ``run_id``.

        Raises:
            RunNotFound: no such run.
        """
        return (await self.get_run(run_id)).status

    async def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """Wait for run ``run_id`` to end and return its output.

        Works for runs another process executes too: it follows the journal.

        Args:
            run_id: the run.
            timeout: give up after this many seconds (``TimeoutError``).

        Raises:
            RunFailed: the workflow raised; carries its error type, message and traceback.
            RunCancelled: the run was cancelled.
            RunNotFound: no such run.
            TimeoutError: the timeout passed first.
            JournalError: the journal's record of the run's output is damaged.
        """
        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            info = await self._wait_finished(run_id)
        return outcome(info)

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunInfo:
        """Wait until run ``run_id`` has ended, however it ended; return its committed state.

        Raises:
            RunNotFound: no such run.
            TimeoutError: ``timeout`` seconds passed first.
        """
        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            return await self._wait_finished(run_id)

    async def _wait_finished(self, run_id: str) -> RunInfo:
        while True:
            actor = self._actors.get(run_id)
            if actor is not None:
                await actor.wait_finished()
                info = await self.get_run(run_id)
                if info.status.is_terminal:
                    return info
                if self._tg is None:
                    raise ActorflowError(
                        f"the runtime closed before run {run_id!r} finished; it resumes when "
                        "a runtime opens the journal again"
                    )
                continue

            async def look() -> RunInfo | None:
                info = await self.get_run(run_id)
                if info.status.is_terminal or run_id in self._actors:
                    return info
                return None

            info = await follow(self.journal, look)
            if info.status.is_terminal:
                return info

    async def cancel(self, run_id: str) -> None:
        """Cancel run ``run_id`` and wait until it has ended CANCELLED (no-op if it ended).

        Raises:
            RunNotFound: no such run.
        """
        actor = self._actors.get(run_id)
        if actor is not None and actor.tell(CancelRun()):
            await actor.wait_finished()
            return
        info = await self.get_run(run_id)
        if info.status.is_terminal or run_id in self._actors:
            if run_id in self._actors:
                await self._wait_finished(run_id)
            return
        for stream in await self.journal.list_streams(run_id):
            if not stream.closed:
                self.journal.append(StreamClose(run_id, key=stream.key))
        await self.journal.wait_committed(
            self.journal.append(RunFinishedRecord(run_id, status="CANCELLED", at=self.clock.time()))
        )
        self.broker.end_run(run_id)

    def cancel_nowait(self, run_id: str) -> bool:
        """Ask run ``run_id`` to stop if it executes in this runtime; do not wait.

        Returns whether it does (it then ends CANCELLED shortly). For a run
        executed elsewhere, or to wait for the end, use :meth:`cancel`.
        """
        actor = self._actors.get(run_id)
        return actor is not None and actor.tell(CancelRun())

    # -- streams ---------------------------------------------------------------------

    def subscribe(
        self, pattern: str, *, buffer: int = 1024, overflow: Overflow = "drop_oldest"
    ) -> LiveSubscription:
        """Subscribe to live stream messages on subjects matching ``pattern`` (NATS style).

        Raises:
            ValidationError: bad pattern, buffer or overflow policy.
        """
        return self.broker.subscribe(pattern, buffer=buffer, overflow=overflow)

    def subscribe_run(
        self,
        run_id: str,
        step: str | None = None,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
    ) -> LiveSubscription:
        """Subscribe to run ``run_id``'s live stream (one step's, or all), until the run ends.

        A run that does not execute in this runtime (it ended, or another
        process executes it) gives a subscription that is already finished.

        Raises:
            ValidationError: bad step id, buffer or overflow policy.
        """
        pattern = run_pattern(run_id, step)
        sub = self.broker.subscribe(pattern, buffer=buffer, overflow=overflow, run_id=run_id)
        if run_id not in self._actors:
            sub.finish()
        return sub

    async def read_stream(
        self, run_id: str, key: str, *, from_offset: int = 0
    ) -> AsyncIterator[object]:
        """Yield the values of a durable stream from ``from_offset``: replay, then live.

        Raises:
            RunNotFound: no such run.
            ValidationError: bad key or offset.
        """
        validate_key(key)
        # aclosing: a reader that stops early closes the inner generator too (trio
        # warns about async generators left to the garbage collector).
        async with aclosing(self._stream_readers.entries(run_id, key, from_offset)) as entries:
            async for entry in entries:
                yield entry.value

    async def read_stream_entries(
        self, run_id: str, key: str, *, from_offset: int = 0
    ) -> AsyncIterator[StreamEntry]:
        """Like :meth:`read_stream`, yielding :class:`~actorflow.StreamEntry` values."""
        validate_key(key)
        async with aclosing(self._stream_readers.entries(run_id, key, from_offset)) as entries:
            async for entry in entries:
                yield entry

    # -- signals and events -------------------------------------------------------------

    async def send(self, run_id: str, value: object, *, topic: str = "default") -> None:
        """Append ``value`` to the durable inbox of run ``run_id`` for ``topic``.

        Returns once the message is committed; the run's ``ctx.recv(topic)``
        receives it exactly once, even if it asks later or crashes meanwhile.

        Raises:
            RunNotFound: no such run.
            RunFinished: the run has ended, so nothing would ever receive it.
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
            ValidationError: bad topic.
        """
        validate_key(topic, "topic")
        data = encode_value(value, f"the message sent to run {run_id!r}")
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
        ticket = self.journal.append(MessageSent(run_id, topic, data, self.clock.time()))
        if actor is not None:
            actor.tell(Deliver(topic, data))
        await self.journal.wait_committed(ticket)

    async def get_event(self, run_id: str, key: str, *, timeout: float | None = None) -> Any:
        """Wait until run ``run_id`` sets event ``key`` and return its latest value.

        Works for runs of another process too: it follows the journal's commits.

        Raises:
            RunNotFound: no such run.
            RunFinished: the run ended without setting ``key``.
            TimeoutError: ``timeout`` seconds passed first.
        """
        validate_key(key, "event key")
        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            return await wait_event(self.journal, run_id, key)


def _finished(run_id: str, status: str) -> RunFinished:
    return RunFinished(
        f"run {run_id!r} is {status}, so no one would receive a message sent to it; start a "
        "new run instead"
    )


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(status.upper() if isinstance(status, str) else status)
    except ValueError:
        raise ValidationError(
            f"unknown run status {status!r}; use one of {', '.join(s.value for s in RunStatus)}"
        ) from None
