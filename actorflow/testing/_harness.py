"""A harness that drives runtimes through crashes and restarts ("lives") in one event loop."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import anyio
import anyio.abc
import attrs

from .._exceptions import ActorflowError
from .._journals._memory import MemoryJournal
from .._live import Broker, Overflow, run_pattern
from .._registry import Workflow
from .._runtime import Runtime
from ..abc import Instrument, Journal, LiveBroker, RunInfo, RunStatus, StreamEntry
from ..records import Record
from ._clock import VirtualClock
from ._crash import CrashingJournal, CrashPlan, as_plan
from ._lives import Closing, Life, is_crash_fallout, only_deadlock
from ._recordings import Listener, LiveRecording, StreamRecording
from ._schedule import seed_schedule, watch_for_deadlock

__all__ = ("Harness", "harness")

T = TypeVar("T")


@attrs.define(eq=False)
class Harness:
    """Runtimes over one journal, crashed and restarted as a :class:`CrashPlan` says.

    Open it with ``async with Harness(...) as h`` (or :func:`harness`) inside a
    test that runs in virtual time. Its operations (:meth:`start`,
    :meth:`send`, :meth:`result`, ...) and its readers (:meth:`record_stream`,
    :meth:`record_live`) survive crashes: an operation interrupted by a crash
    is retried in the next life, and a reader reads on from where it was.
    Each life opens a :class:`~actorflow.Runtime` over a :class:`CrashingJournal`
    wrapping the same journal; after a crash, ``downtime`` virtual seconds
    pass, then the next life opens and resumes the unfinished runs.

    An exception leaving the ``async with`` block gets a note with
    :meth:`report`, the one line that reproduces it (the plan and the crash
    points).

    Args:
        plan: where each life crashes (a :class:`CrashPlan` or a tuple of append numbers).
        journal: the journal that survives crashes (default: a new MemoryJournal).
        clock: the clock of every life (default: a new VirtualClock).
        downtime: virtual seconds between a crash and the next life.
        instrument: passed to every life's runtime.
        broker: makes each life's live broker (default: the in-process one).
        seed: seeds Python's ``random`` while the harness is open (backoff
            jitter uses it), so a plan replays the same trace; the previous
            state is restored at exit.
        schedule: seeds the order in which ready tasks run (see
            :func:`seed_schedule`); ``None`` keeps the loop's own order.
        deadlock_grace: when every task waits, no timer is pending and
            nothing happens for this many real seconds while a harness
            operation waits, raise :class:`Deadlock` instead of hanging
            (``None``: never).
    """

    plan: CrashPlan = attrs.field(default=CrashPlan(), converter=as_plan)
    journal: Journal = attrs.field(factory=MemoryJournal)
    clock: VirtualClock = attrs.field(factory=VirtualClock)
    downtime: float = 0.0
    instrument: Instrument | None = None
    broker: Callable[[], LiveBroker] | None = None
    seed: int = 0
    schedule: int | None = None
    deadlock_grace: float | None = 1.0
    #: Every life so far, the current one last.
    lives: list[Life] = attrs.field(factory=list, init=False)
    #: Every record that reached the journal, in order, across lives.
    trace: list[Record] = attrs.field(factory=list, init=False)
    #: Run ids started through :meth:`start`, in order.
    run_ids: list[str] = attrs.field(factory=list, init=False)
    _life: Life | None = attrs.field(default=None, init=False)
    _changed: anyio.Event = attrs.field(factory=anyio.Event, init=False)
    _appends: int = attrs.field(default=0, init=False)
    _append_waiters: list[tuple[int, anyio.Event]] = attrs.field(factory=list, init=False)
    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _tg_cm: Any = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _random_state: Any = attrs.field(default=None, init=False)
    _pending: list[str] = attrs.field(factory=list, init=False)
    _done_ops: int = attrs.field(default=0, init=False)
    _recorders: list[StreamRecording] = attrs.field(factory=list, init=False)
    _listeners: list[Listener] = attrs.field(factory=list, init=False)

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._random_state = random.getstate()
        random.seed(self.seed)
        self._tg_cm = anyio.create_task_group()
        self._tg = await self._tg_cm.__aenter__()
        if self.schedule is not None:
            seed_schedule(self.schedule)
        try:
            await self._tg.start(self._supervise)
            if self.deadlock_grace is not None:
                self._tg.start_soon(
                    watch_for_deadlock, self._progress, self._awaited, self.deadlock_grace
                )
        except BaseException:
            await self._tg_cm.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if exc is None:
                await self._drain_live()
            self._closing = True
            if self._life is not None:
                self._life._scope.cancel()
            assert self._tg is not None
            self._tg.cancel_scope.cancel()
            await self._tg_cm.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            deadlock = only_deadlock(group)
            if deadlock is None:
                group.add_note(self.report())
                raise
            deadlock.add_note(self.report())
            raise deadlock from None
        except BaseException as inner:
            inner.add_note(self.report())
            raise
        finally:
            random.setstate(self._random_state)
            if self.schedule is not None:
                seed_schedule(None)
            for listener in self._listeners:
                listener.lives_in.close()
                listener.lives_out.close()
        if exc is not None:
            exc.add_note(self.report())
        return None

    async def _drain_live(self) -> None:
        """Let live subscribers take what is buffered for them before the runtime closes."""
        self._closing = True
        self._set_life(self._life)  # wake whoever waits for a life: none will come
        life = self._life
        if life is not None:
            for sub in list(life.subscriptions):
                sub.finish()
        for listener in self._listeners:
            listener.lives_in.close()
            await listener.done.wait()

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        started = False
        while not self._closing:
            index = len(self.lives) + 1
            journal = CrashingJournal(self.journal, self.plan.crash_at(index))
            life = Life(index, journal)
            journal.on_crash = lambda point, life=life: self._crash(life, point)
            journal.on_append = self._appended
            self.lives.append(life)
            broker = self.broker() if self.broker is not None else Broker()
            # Live subscribers subscribe before the runtime resumes runs that publish.
            for listener in self._listeners:
                listener.subscribe(life, broker)
            try:
                with life._scope:
                    async with Runtime(
                        journal, clock=self.clock, instrument=self.instrument, broker=broker
                    ) as rt:
                        life.runtime = rt
                        if life.crashed is None:
                            self._set_life(life)
                        if not started:
                            started = True
                            task_status.started()
                        await anyio.sleep_forever()
            except BaseException as exc:
                if life.crashed is None or not is_crash_fallout(exc):
                    raise
            finally:
                life.runtime = None
            if life.crashed is None:
                return
            if self.downtime:
                await anyio.sleep(self.downtime)

    def _set_life(self, life: Life | None) -> None:
        self._life = life
        event, self._changed = self._changed, anyio.Event()
        event.set()

    def _crash(self, life: Life, point: str) -> None:
        life.crashed = point
        life._scope.cancel()
        for scope in life.guards:
            scope.cancel()
        if self._life is life:
            self._set_life(None)

    def _appended(self, record: Record) -> None:
        self.trace.append(record)
        self._appends += 1
        if self._append_waiters:
            waiting = []
            for n, event in self._append_waiters:
                if self._appends >= n:
                    event.set()
                else:
                    waiting.append((n, event))
            self._append_waiters = waiting

    # -- running operations across lives ---------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime of the current life (it may crash under you: prefer the harness's methods).

        Raises:
            ActorflowError: no life is open right now (between a crash and the next life).
        """
        life = self._life
        if life is None or life.runtime is None:
            raise ActorflowError(f"{self!r} has no open runtime now; use its methods, which wait")
        return life.runtime

    @property
    def appends(self) -> int:
        """Records that reached the journal so far, across lives."""
        return self._appends

    @property
    def crashes(self) -> list[str]:
        """The crash point of every life that crashed, in order."""
        return [life.crashed for life in self.lives if life.crashed is not None]

    async def _current(self) -> Life:
        while True:
            life = self._life
            if life is not None and life.crashed is None and life.runtime is not None:
                return life
            if self._closing:
                raise Closing(f"{self!r} is closed; use it inside its `async with` block")
            await self._changed.wait()

    def _progress(self) -> object:
        return (self._appends, self._done_ops, [len(r.entries) for r in self._recorders])

    def _awaited(self) -> str | None:
        return ", ".join(self._pending) or None

    async def call(self, op: Callable[[Runtime], Awaitable[T]], *, what: str = "an operation") -> T:
        """Run ``op(runtime)`` in the current life; if a crash interrupts it, again in the next.

        ``op`` must be safe to repeat (idempotent); the harness's own methods
        are. ``what`` names it in a :class:`Deadlock` error.
        """
        self._pending.append(what)
        try:
            return await self._call(op)
        finally:
            self._pending.remove(what)
            self._done_ops += 1

    async def _call(self, op: Callable[[Runtime], Awaitable[T]]) -> T:
        while True:
            life = await self._current()
            runtime = life.runtime
            assert runtime is not None
            scope = anyio.CancelScope()
            life.guards.add(scope)
            try:
                with scope:
                    return await op(runtime)
            except BaseException as exc:
                if life.crashed is None or not is_crash_fallout(exc):
                    raise
            finally:
                life.guards.discard(scope)
            if life.crashed is None:
                raise ActorflowError(f"{self!r} closed while an operation was running")

    def crash_now(self) -> None:
        """Crash the current life now (SIGKILL between two appends); the next life starts.

        Nothing appended so far is lost. A no-op between a crash and the next life.
        """
        life = self._life
        if life is not None and life.crashed is None:
            life.journal.crash(f"crashed by crash_now() after append #{life.journal.appends}")

    async def wait_appends(self, n: int) -> None:
        """Wait until ``n`` records have reached the journal (across lives)."""
        if self._appends >= n:
            return
        event = anyio.Event()
        self._append_waiters.append((n, event))
        await event.wait()

    # -- the operations ------------------------------------------------------------------

    async def start(
        self, workflow: Workflow[Any, Any] | str, input: Any = None, *, run_id: str | None = None
    ) -> str:
        """Start a run (``Runtime.start``), surviving crashes; return its run id.

        Without ``run_id`` the runs are named ``run-1``, ``run-2``, ... so that
        traces repeat exactly, and so that a start lost to a crash is retried
        under the same id (an idempotent start).
        """
        if run_id is None:
            run_id = f"run-{len(self.run_ids) + 1}"
        if run_id not in self.run_ids:
            self.run_ids.append(run_id)

        async def op(rt: Runtime) -> str:
            return (await rt.start(workflow, input, run_id=run_id)).run_id

        return await self.call(op, what=f"start({run_id!r})")

    async def send(self, run_id: str, value: object, *, topic: str = "default") -> None:
        """Send a message to a run (``Runtime.send``), surviving crashes.

        A send whose append the crash lost is sent again in the next life. With
        a journal that commits as it appends (the default MemoryJournal) that
        delivers it exactly once.
        """

        async def op(rt: Runtime) -> None:
            await rt.send(run_id, value, topic=topic)

        await self.call(op, what=f"send({run_id!r})")

    async def result(self, run_id: str) -> Any:
        """The run's result (``Runtime.result``), waiting across crashes and restarts."""

        async def op(rt: Runtime) -> Any:
            return await rt.result(run_id)

        return await self.call(op, what=f"result({run_id!r})")

    async def wait(self, run_id: str) -> RunInfo:
        """Wait until the run has ended, however; return its committed state."""

        async def op(rt: Runtime) -> RunInfo:
            return await rt.wait(run_id)

        return await self.call(op, what=f"wait({run_id!r})")

    async def run(self, workflow: Workflow[Any, T] | str, input: Any = None) -> T:
        """Start a run and return its result, surviving crashes."""
        result: T = await self.result(await self.start(workflow, input))
        return result

    async def status(self, run_id: str) -> RunStatus:
        """The run's committed status."""
        info = await self.journal.get_run(run_id)
        if info is None:
            from .._exceptions import RunNotFound

            raise RunNotFound(run_id)
        return info.status

    async def run_until_complete(self) -> dict[str, RunInfo]:
        """Wait until every run started here has ended and every stream reader is done.

        Returns:
            each run's committed state, by run id.
        """
        infos = {run_id: await self.wait(run_id) for run_id in list(self.run_ids)}
        # Readers waiting for a moment that never came attach now, at the end.
        for _, event in self._append_waiters:
            event.set()
        self._append_waiters.clear()
        for recording in list(self._recorders):
            await recording.wait()
        return infos

    # -- readers ----------------------------------------------------------------------

    def record_stream(
        self, run_id: str, key: str, *, from_offset: int = 0, after_appends: int = 0
    ) -> StreamRecording:
        """Read a durable stream in the background, across crashes, into a recording.

        Args:
            run_id: the run (started already, or started before ``after_appends``).
            key: the stream.
            from_offset: where to start.
            after_appends: attach once this many records reached the journal
                (a "moment" of the run; 0 attaches now), or at
                :meth:`run_until_complete` if that comes first.
        """
        recording = StreamRecording(run_id, key, from_offset)
        self._recorders.append(recording)
        assert self._tg is not None
        self._tg.start_soon(self._read, recording, after_appends)
        return recording

    async def _read(self, recording: StreamRecording, after_appends: int) -> None:
        await self.wait_appends(after_appends)
        recording.attached_at = self._appends
        if self._closing:
            return

        async def op(rt: Runtime) -> None:
            # An async generator: closed at once when a crash cancels the reader.
            entries = cast(
                AsyncGenerator[StreamEntry, None],
                rt.read_stream_entries(
                    recording.run_id, recording.key, from_offset=recording.next_offset()
                ),
            )
            async with aclosing(entries):
                async for entry in entries:
                    recording.add(entry, len(self.lives))

        try:
            await self.call(
                op, what=f"a reader of stream {recording.key!r} of {recording.run_id!r}"
            )
        except Closing:
            return
        recording.finish()

    def read_stream(
        self, run_id: str, key: str, *, from_offset: int = 0
    ) -> AsyncIterator[StreamEntry]:
        """Iterate over a durable stream's entries across crashes (:meth:`record_stream`'s)."""
        return self.record_stream(run_id, key, from_offset=from_offset).follow()

    def record_live(
        self,
        run_id: str,
        step: str | None = None,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
        delay: float = 0.0,
    ) -> LiveRecording:
        """Subscribe to a run's live stream in every life, into a recording.

        Subscribe before the run publishes. At the harness's exit the
        subscriber takes what is still buffered for it, then stops.

        Args:
            run_id: the run.
            step: one step's stream, or all of the run's.
            buffer: the subscription's buffer.
            overflow: its overflow policy.
            delay: virtual seconds the subscriber spends on each message (a
                slow subscriber).
        """
        listener = Listener(LiveRecording(run_pattern(run_id, step)), buffer, overflow, delay)
        self._listeners.append(listener)
        life = self._life
        if life is not None and life.runtime is not None and life.crashed is None:
            # Subscribe now, so nothing published after this call is missed.
            listener.subscribe(life, life.runtime.broker)
        assert self._tg is not None
        self._tg.start_soon(listener.listen)
        return listener.recording

    def report(self) -> str:
        """One line that names the plan and where each life crashed (it reproduces a failure)."""
        crashes = "; ".join(f"life {lf.index} {lf.crashed}" for lf in self.lives if lf.crashed)
        schedule = "" if self.schedule is None else f", schedule={self.schedule}"
        return (
            f"actorflow.testing: {self.plan!r}, seed={self.seed}{schedule}, {crashes or 'no crash'}"
        )


def harness(plan: CrashPlan | Sequence[int] = (), **options: Any) -> Harness:
    """``async with harness(CrashPlan(5)) as h``: a :class:`Harness` (same arguments)."""
    return Harness(as_plan(plan), **options)
