"""Reading runs: their state, outcomes, events, and streams (the read half of the runtime).

:class:`RunReading` is the part of :class:`~actorflow.Runtime` that only
reads the journal and waits on it, so it works the same in a runtime that
writes the journal and in one that only reads it (``execute=False``). The
runtime inherits it; the attributes below are the runtime's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import anyio
import anyio.abc

from ._exceptions import ActorflowError, RunNotFound, ValidationError
from ._follow import follow
from ._handle import RunHandle
from ._live import Overflow, run_pattern
from ._outcome import outcome, wait_event
from ._restarts import StreamRestart
from ._stream_reader import StreamReaders
from ._validate import validate_key, validate_run_id
from .abc import Journal, LiveBroker, LiveSubscription, RunInfo, RunStatus, StreamEntry

if TYPE_CHECKING:
    from ._run import RunActor

__all__ = ("RunReading",)

T = TypeVar("T")

# Seconds a subscription to a run executed elsewhere stays open after the
# journal says the run ended, for live messages still in flight.
_REMOTE_END_GRACE = 1.0


class RunReading:
    """The operations of a runtime that read the journal (see the module docs)."""

    journal: Journal
    broker: LiveBroker
    # Invariant: as the runtime says (loop thread only).
    _actors: dict[str, RunActor]
    _stream_readers: StreamReaders
    _tg: anyio.abc.TaskGroup | None
    # Run-scoped subscriptions to runs executed elsewhere, by run, while one
    # task follows the run's end in the journal (loop thread only).
    _followed: dict[str, list[LiveSubscription]]

    async def list_runs(self, status: RunStatus | str | None = None) -> list[RunInfo]:
        """Runs in the journal, oldest first, optionally only those with ``status``."""
        wanted = None if status is None else _status(status)
        return await self.journal.list_runs(wanted)

    async def page_runs(
        self,
        status: RunStatus | str | None = None,
        *,
        workflow: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """One page of runs, newest first, without loading the others.

        Args:
            status: only runs with this status.
            workflow: only runs of this workflow.
            before: the cursor: the run id of the last run of the previous
                page; the page holds runs started before it.
            limit: at most this many runs.

        Raises:
            ValidationError: a bad status or limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be an int >= 1, not {limit!r}")
        wanted = None if status is None else _status(status)
        return await self.journal.page_runs(wanted, workflow=workflow, before=before, limit=limit)

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

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunHandle[Any]:
        """Wait until a run with id ``run_id`` exists, and return its handle.

        For a reader that may come before the run: a web worker serving a
        stream of a run that another process is about to start. Its
        ``result()``, ``get_event()`` and ``read_stream()`` then work as usual
        (without it they raise :class:`~actorflow.RunNotFound` at once).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ValidationError: a bad run id.
        """
        validate_run_id(run_id)

        async def look() -> RunInfo | None:
            return await self.journal.get_run(run_id)

        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            await follow(self.journal, look)
        return RunHandle(self, run_id)  # type: ignore[arg-type]  # self is a Runtime

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
        process executes it) gives a subscription that is already finished,
        unless the broker crosses processes: then it follows the run until
        the run's end arrives through the broker, or the journal says the run
        ended (at once if it already has; else a moment later, for messages
        still in flight).

        Raises:
            ValidationError: bad step id, buffer or overflow policy.
        """
        pattern = run_pattern(run_id, step)
        sub = self.broker.subscribe(pattern, buffer=buffer, overflow=overflow, run_id=run_id)
        if run_id in self._actors:
            return sub
        if not self.broker.crosses_processes or self._tg is None:
            sub.finish()
            return sub
        followed = self._followed.get(run_id)
        if followed is None:
            self._followed[run_id] = [sub]
            self._tg.start_soon(self._follow_remote_run, run_id)
        else:
            followed.append(sub)
        return sub

    async def _follow_remote_run(self, run_id: str) -> None:
        """Finish the run's subscriptions once the journal says it ended (see subscribe_run)."""
        ended = False
        try:
            # Read the journal only once the broker's server has the subscriptions:
            # a run that ends after this read is then sure to reach them.
            await self.broker.synchronize()
            info = await self.journal.get_run(run_id)
            if info is None:
                return  # not in this journal: only the broker can end them
            if not info.status.is_terminal:
                # The run's end normally comes through the broker first; this is
                # the backstop for a runtime that does not publish there. The
                # moment's wait lets messages still in flight arrive.
                await self._wait_finished(run_id)
                await anyio.sleep(_REMOTE_END_GRACE)
            ended = True
        finally:
            followed = self._followed.pop(run_id, [])
            if ended:
                for sub in followed:
                    sub.finish()

    @overload
    def read_stream(
        self, run_id: str, key: str, *, from_offset: int = 0, restarts: bool = False
    ) -> AsyncIterator[object]: ...
    @overload
    def read_stream(
        self,
        run_id: str,
        key: str,
        *,
        from_offset: int = 0,
        type: type[T],
        restarts: Literal[False] = False,
    ) -> AsyncIterator[T]: ...
    @overload
    def read_stream(
        self, run_id: str, key: str, *, from_offset: int = 0, type: type[T], restarts: Literal[True]
    ) -> AsyncIterator[T | StreamRestart]: ...

    @overload
    def read_stream(
        self,
        run_id: str,
        key: str,
        *,
        from_offset: int = 0,
        type: Any = None,
        restarts: bool = False,
    ) -> AsyncIterator[Any]: ...

    def read_stream(
        self,
        run_id: str,
        key: str,
        *,
        from_offset: int = 0,
        type: Any = None,
        restarts: bool = False,
    ) -> AsyncIterator[Any]:
        """Yield the values of a durable stream from ``from_offset``: replay, then live.

        Args:
            run_id: the run.
            key: the stream's key.
            from_offset: the first offset to read.
            type: convert each value to this type (``msgspec.convert``: a
                Struct written as a Struct comes back as one).
            restarts: yield a :class:`~actorflow.StreamRestart` before the first
                value of a step's retried attempt (see ``read_stream_entries``).

        Raises:
            RunNotFound: no such run.
            ValidationError: bad key or offset, or a value that is not a ``type``.
        """
        return self._stream_readers.values(run_id, key, from_offset, type=type, restarts=restarts)

    @overload
    def read_stream_entries(
        self, run_id: str, key: str, *, from_offset: int = 0, restarts: Literal[False] = False
    ) -> AsyncIterator[StreamEntry]: ...
    @overload
    def read_stream_entries(
        self, run_id: str, key: str, *, from_offset: int = 0, restarts: bool
    ) -> AsyncIterator[StreamEntry | StreamRestart]: ...

    def read_stream_entries(
        self, run_id: str, key: str, *, from_offset: int = 0, restarts: bool = False
    ) -> AsyncIterator[StreamEntry | StreamRestart]:
        """Like :meth:`read_stream`, yielding :class:`~actorflow.StreamEntry` values.

        With ``restarts=True``, a :class:`~actorflow.StreamRestart` comes just
        before the first entry of a step's retried attempt, naming the earlier
        attempt's entries it supersedes (a reader resuming mid-stream learns of
        it too): drop or mark them, and the output shows once.
        """
        return self._stream_readers.read(run_id, key, from_offset, restarts=restarts)

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


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(status.upper() if isinstance(status, str) else status)
    except ValueError:
        raise ValidationError(
            f"unknown run status {status!r}; use one of {', '.join(s.value for s in RunStatus)}"
        ) from None
