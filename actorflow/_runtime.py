"""The runtime: owns the journal, the live-stream broker, and every run actor."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, nullcontext
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
import anyio.abc
import attrs

from ._actors import CancelRun, RunActor, validate_key
from ._codec import decode_value, encode_value
from ._exceptions import (
    ActorflowError,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunNotFound,
    ValidationError,
)
from ._history import fold
from ._journals import open_journal
from ._live import Broker, Overflow, Subscription
from ._registry import Workflow, lookup_workflow, registered_workflows
from ._stream_reader import StreamReaders
from .abc import Journal, RunInfo, RunStatus, StreamEntry
from .records import EventSet, MessageSent, RunStarted, StreamClose
from .records import RunFinished as RunFinishedRecord

__all__ = ("RunHandle", "Runtime")

O = TypeVar("O")  # noqa: E741
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@attrs.define(eq=False, init=False)
class Runtime:
    """Runs workflows, journaling them; an async context manager that owns one task group.

    ``async with Runtime("runs.db") as rt`` opens the journal and resumes every
    unfinished run whose workflow is registered. Leaving the block cancels
    whatever still runs; those runs stay unfinished in the journal and resume
    the next time a runtime opens it.

    Args:
        journal: ``None`` for an in-memory journal, a path for a SQLite
            journal, or any :class:`~actorflow.Journal`.
    """

    journal: Journal
    broker: Broker
    _tg: anyio.abc.TaskGroup | None
    _tg_cm: Any
    _actors: dict[str, RunActor]
    _starts: int  # starts committed: a read of a run that misses one is read again
    _stream_readers: StreamReaders

    def __init__(self, journal: Journal | str | os.PathLike[str] | None = None) -> None:
        self.journal = open_journal(journal)
        self.broker = Broker()
        self._tg = None
        self._tg_cm = None
        self._actors = {}
        self._starts = 0
        self._stream_readers = StreamReaders(self.journal)

    def __repr__(self) -> str:
        return f"<Runtime journal={self.journal!r} active_runs={len(self._actors)}>"

    async def __aenter__(self) -> Self:
        await self.journal.open()
        try:
            self._tg_cm = anyio.create_task_group()
            self._tg = await self._tg_cm.__aenter__()
            await self._tg.start(self.broker.run)
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

    async def _recover(self) -> None:
        if getattr(self.journal, "readonly", False):
            # A reader of a journal another runtime writes (SQLiteJournal(path,
            # readonly=True)): that runtime owns the runs; this one only reads.
            return
        workflows = registered_workflows()
        for status in (RunStatus.PENDING, RunStatus.RUNNING):
            for info in await self.journal.list_runs(status):
                wf = workflows.get(info.workflow)
                if wf is not None and info.run_id not in self._actors:
                    history = await self.journal.load_history(info.run_id)
                    self._spawn(info.run_id, wf, info.input, fold(history))

    def _spawn(self, run_id: str, wf: Workflow[Any, Any], data: bytes, replay: Any) -> RunActor:
        if self._tg is None:
            raise ActorflowError("the runtime is not open; use `async with af.Runtime(...)`")
        actor = RunActor(self, run_id, wf, data, replay)
        self._actors[run_id] = actor
        self._tg.start_soon(actor.run, name=f"actorflow run {run_id}")
        return actor

    def _forget(self, actor: RunActor) -> None:
        if self._actors.get(actor.run_id) is actor:
            del self._actors[actor.run_id]

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
            raise ActorflowError("the runtime is not open; use `async with af.Runtime(...)`")
        if run_id is None:
            run_id = uuid.uuid4().hex
        else:
            if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
                raise ValidationError(
                    f"invalid run_id {run_id!r}: use 1 to 128 letters, digits, '_' or '-'"
                )
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
        actor = RunActor(self, run_id, wf, data, fold(None))
        self._actors[run_id] = actor
        try:
            await self.journal.wait_committed(
                self.journal.append(
                    RunStarted(run_id, workflow=wf.name, input=data, at=time.time())
                )
            )
        except BaseException:
            self._forget(actor)
            raise
        self._starts += 1
        self._tg.start_soon(actor.run, name=f"actorflow run {run_id}")
        return RunHandle(self, run_id)

    async def run(
        self, workflow: Workflow[Any, O] | str, input: Any = None, *, run_id: str | None = None
    ) -> O:
        """Start a run and return its result (see :meth:`start` and :meth:`RunHandle.result`)."""
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

    # -- streams ---------------------------------------------------------------------

    def subscribe(
        self, pattern: str, *, buffer: int = 1024, overflow: Overflow = "drop_oldest"
    ) -> Subscription:
        """Subscribe to live stream messages on subjects matching ``pattern`` (NATS style).

        Raises:
            ValidationError: bad pattern, buffer or overflow policy.
        """
        return self.broker.subscribe(pattern, buffer=buffer, overflow=overflow)

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
        actor = self._actors.get(run_id)
        if actor is None:
            info = await self.journal.get_run(run_id)
            if info is None:
                raise RunNotFound(run_id)
            if info.status.is_terminal:
                raise RunFinished(
                    f"run {run_id!r} is {info.status.value}, so no one would receive a message "
                    "sent to it; start a new run instead"
                )
            actor = self._actors.get(run_id)
        ticket = self.journal.append(MessageSent(run_id, topic, data, time.time()))
        if actor is not None:
            actor.deliver(topic, data)
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
            while True:
                seen = self.journal.committed
                history = await self.journal.load_history(run_id)
                if history is None:
                    raise RunNotFound(run_id)
                for record in reversed(history.records):
                    if isinstance(record, EventSet) and record.key == key:
                        return decode_value(record.value)
                if history.info.status.is_terminal:
                    raise RunFinished(
                        f"run {run_id!r} ended ({history.info.status.value}) without setting "
                        f"event {key!r}"
                    )
                await self.journal.wait_for_commit(seen)

    # -- used by handles -----------------------------------------------------------------

    async def _wait_finished(self, run_id: str) -> RunInfo:
        while True:
            actor = self._actors.get(run_id)
            if actor is not None:
                await actor.finished.wait()
            seen = self.journal.committed
            info = await self.journal.get_run(run_id)
            if info is None:
                raise RunNotFound(run_id)
            if info.status.is_terminal:
                return info
            if actor is not None and self._tg is None:
                raise ActorflowError(
                    f"the runtime closed before run {run_id!r} finished; it resumes when a "
                    "runtime opens the journal again"
                )
            if run_id not in self._actors:
                await self.journal.wait_for_commit(seen)

    async def _cancel(self, run_id: str) -> None:
        actor = self._actors.get(run_id)
        if actor is not None:
            await actor.tell(CancelRun())
            await actor.finished.wait()
            return
        info = await self.journal.get_run(run_id)
        if info is None:
            raise RunNotFound(run_id)
        if info.status.is_terminal:
            return
        for stream in await self.journal.list_streams(run_id):
            if not stream.closed:
                self.journal.append(StreamClose(run_id, key=stream.key))
        await self.journal.wait_committed(
            self.journal.append(RunFinishedRecord(run_id, status="CANCELLED", at=time.time()))
        )
        self.broker.end_run(run_id)


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(status.upper() if isinstance(status, str) else status)
    except ValueError:
        raise ValidationError(
            f"unknown run status {status!r}; use one of {', '.join(s.value for s in RunStatus)}"
        ) from None


@attrs.frozen
class RunHandle(Generic[O]):
    """A handle on one run, in this runtime's journal.

    Attributes:
        run_id: the run's id.
    """

    _runtime: Runtime = attrs.field(repr=False)
    run_id: str

    async def status(self) -> RunStatus:
        """The run's committed status.

        Raises:
            RunNotFound: no such run.
        """
        return (await self._runtime.get_run(self.run_id)).status

    async def result(self, timeout: float | None = None) -> O:
        """Wait for the run to end and return its output.

        Args:
            timeout: give up after this many seconds (``TimeoutError``).

        Raises:
            RunFailed: the workflow raised; carries its error type, message and traceback.
            RunCancelled: the run was cancelled.
            RunNotFound: no such run.
            TimeoutError: the timeout passed first.
        """
        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            info = await self._runtime._wait_finished(self.run_id)
        if info.status is RunStatus.COMPLETED:
            assert info.output is not None
            wf = registered_workflows().get(info.workflow)
            output: O = decode_value(info.output, wf.output_type if wf else Any)
            return output
        if info.status is RunStatus.CANCELLED:
            raise RunCancelled(self.run_id)
        error = info.error
        raise RunFailed(
            self.run_id,
            error.type if error else "Exception",
            error.message if error else "",
            error.traceback if error else "",
        )

    async def cancel(self) -> None:
        """Cancel the run and wait until it has ended CANCELLED (no-op if it already ended).

        Raises:
            RunNotFound: no such run.
        """
        await self._runtime._cancel(self.run_id)

    async def send(self, value: object, *, topic: str = "default") -> None:
        """Send ``value`` to this run's durable inbox (see :meth:`Runtime.send`)."""
        await self._runtime.send(self.run_id, value, topic=topic)

    async def get_event(self, key: str, *, timeout: float | None = None) -> Any:
        """Wait for event ``key`` of this run (see :meth:`Runtime.get_event`)."""
        return await self._runtime.get_event(self.run_id, key, timeout=timeout)

    def subscribe(
        self,
        step: str | None = None,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
    ) -> Subscription:
        """Subscribe to this run's live stream (one step's, or all), until the run ends."""
        pattern = f"stream.{self.run_id}.{'>' if step is None else step}"
        sub = self._runtime.broker.subscribe(
            pattern, buffer=buffer, overflow=overflow, run_id=self.run_id
        )
        if self.run_id not in self._runtime._actors:
            sub.finish()
        return sub

    def read_stream(self, key: str, *, from_offset: int = 0) -> AsyncIterator[object]:
        """The values of durable stream ``key``: replay from ``from_offset``, then live."""
        return self._runtime.read_stream(self.run_id, key, from_offset=from_offset)

    def read_stream_entries(self, key: str, *, from_offset: int = 0) -> AsyncIterator[StreamEntry]:
        """The entries of durable stream ``key``, as :class:`~actorflow.StreamEntry`."""
        return self._runtime.read_stream_entries(self.run_id, key, from_offset=from_offset)
