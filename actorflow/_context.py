"""The contexts a workflow body and a step receive as ``ctx``.

A context talks to its run through :class:`RunPort`, the few operations a run
actor offers its body and its steps, and never reaches into the actor. A step
attempt's context and the step actor that runs it share one
:class:`AttemptState` (as both ends of a trio channel share one state object):
the actor reads the heartbeat and the checkpoint from it, and marks it over
when the attempt is given up, after which the context refuses to write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import anyio
import anyio.from_thread
import attrs

from ._codec import decode_value, encode_value
from ._exceptions import ActorflowError

if TYPE_CHECKING:
    from ._registry import Step

__all__ = (
    "AttemptState",
    "RunPort",
    "StepContext",
    "ThreadStepContext",
    "WorkflowContext",
    "attempt_state",
    "run_concurrently",
    "run_port",
)

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class RunPort(Protocol):
    """What a run actor offers the contexts of its body and its steps."""

    run_id: str

    @property
    def workflow_name(self) -> str: ...

    def prepare_step(
        self, step: Step[Any, Any], input: Any, *, wait_commit: bool = True
    ) -> Callable[[], Awaitable[Any]]: ...

    async def put_stream(self, step_id: str, data: object, attempt: int = 0) -> None: ...

    def write_stream(self, key: str, value: object, step_id: str, attempt: int) -> bool: ...

    def close_stream(self, key: str, step_id: str) -> None: ...

    async def commit(self, ticket: int | None = None) -> None: ...

    async def recv(self, topic: str, timeout: float | None) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...

    async def set_event(self, key: str, value: object, from_body: bool) -> None: ...

    def save_checkpoint(self, position: int, attempt: int, data: bytes) -> int: ...

    def loop_time(self) -> float: ...


@attrs.define(eq=False)
class AttemptState:
    """One step attempt, shared by its context and the step actor running it.

    Invariant: touched only in the event loop's thread (a thread step's
    context hops to the loop for every operation).
    """

    run: RunPort
    step_id: str
    position: int
    attempt: int
    checkpoint: bytes | None
    last_heartbeat: float = 0.0
    # False once the attempt has ended (returned, failed, timed out): the
    # writes of a thread step that was abandoned on timeout are refused then.
    live: bool = True

    def check_live(self) -> None:
        """Raise if the attempt is over (its thread was abandoned and a retry may run)."""
        if not self.live:
            raise ActorflowError(
                f"attempt {self.attempt} of step {self.step_id!r} in run {self.run.run_id!r} "
                "has ended (it timed out or was cancelled); its writes are refused so that "
                "they cannot interleave with the next attempt's"
            )


async def run_concurrently(
    runners: Sequence[Callable[[], Awaitable[Any]]], *, return_exceptions: bool = False
) -> list[Any]:
    """Await prepared steps concurrently; return their outputs in order.

    Every runner runs to its end; then the first failure (in order) is raised,
    unless ``return_exceptions`` puts the exceptions in the list instead. One
    runner is awaited directly, with no task of its own.
    """
    results: list[Any] = [None] * len(runners)
    failures: dict[int, Exception] = {}

    async def run(i: int) -> None:
        try:
            results[i] = await runners[i]()
        except Exception as exc:
            failures[i] = exc
            results[i] = exc

    if len(runners) == 1:
        await run(0)
    else:
        async with anyio.create_task_group() as tg:
            for i in range(len(runners)):
                tg.start_soon(run, i)
    if failures and not return_exceptions:
        raise failures[min(failures)]
    return results


def run_port(ctx: WorkflowContext) -> RunPort:
    """The run behind a workflow context (for graph supersteps, which run inside one)."""
    return ctx._run


def attempt_state(ctx: StepContext) -> AttemptState:
    """The attempt behind a step context (for graph nodes, which are steps)."""
    return ctx._state


class WorkflowContext:
    """What a workflow body can do durably. Every call is journaled or replayed.

    Attributes:
        run_id: the id of the run this body executes.
        workflow: the workflow's registered name.
    """

    __slots__ = ("_run", "run_id", "workflow")

    def __init__(self, run: RunPort) -> None:
        self._run = run
        self.run_id = run.run_id
        self.workflow = run.workflow_name

    def __repr__(self) -> str:
        return f"<WorkflowContext run_id={self.run_id!r} workflow={self.workflow!r}>"

    @overload
    async def step(self, step: Step[None, O]) -> O: ...
    @overload
    async def step(self, step: Step[I, O], input: I) -> O: ...

    async def step(self, step: Step[Any, O], input: Any = None) -> O:
        """Run ``step`` with ``input`` as a child actor of this run and return its output.

        On replay, a step the journal recorded as completed returns its recorded
        output without running.

        Raises:
            StepFailed: the step exhausted its retries (catchable here).
            EncodeError: ``input`` or the step's output is not msgspec-encodable.
            NonDeterminism: the journal recorded a different call at this position.
        """
        result: O = await self._run.prepare_step(step, input)()
        return result

    async def gather(
        self, *calls: tuple[Step[Any, Any], Any], return_exceptions: bool = False
    ) -> list[Any]:
        """Run several steps concurrently; return their outputs in call order.

        ``await ctx.gather((fetch, url1), (fetch, url2))``. Positions are taken
        in argument order, so replay is deterministic however the steps
        interleave. Every step runs to its end; then the first failure (in
        argument order) is raised, unless ``return_exceptions`` puts the
        exceptions in the list instead.

        Raises:
            StepFailed: a step exhausted its retries.
        """
        runners = [self._run.prepare_step(step, input) for step, input in calls]
        return await run_concurrently(runners, return_exceptions=return_exceptions)

    async def put_stream(self, data: object) -> None:
        """Publish ``data`` live on ``stream.<run_id>.main`` (nothing is stored)."""
        await self._run.put_stream("main", data)

    async def write_stream(self, key: str, value: object) -> None:
        """Append ``value`` to the durable stream ``key``; returns once queued.

        A body write is never repeated by recovery. Like a step's write, it is
        a schedule point only once every 64 writes (see ``StepContext.write_stream``).

        Raises:
            ValidationError: bad key.
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
            StreamClosed: the stream was closed.
        """
        if self._run.write_stream(key, value, "main", 1):
            await anyio.lowlevel.checkpoint()

    async def close_stream(self, key: str) -> None:
        """Close the durable stream ``key``: its readers stop after its last entry."""
        self._run.close_stream(key, "main")
        await anyio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Return once everything this run queued in the journal is committed."""
        await self._run.commit()

    async def recv(self, topic: str = "default", *, timeout: float | None = None) -> Any:
        """Return the next message sent to this run on ``topic``.

        Each message is received exactly once, across crashes: a message sent
        before the run asks is kept. The wait is durable: after a restart only
        what is left of ``timeout`` remains.

        Raises:
            TimeoutError: no message came within ``timeout`` seconds.
            ValidationError: bad topic or timeout.
        """
        return await self._run.recv(topic, timeout)

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is journaled, so a restart does not restart it."""
        await self._run.sleep(seconds)

    async def set_event(self, key: str, value: object) -> None:
        """Publish ``value`` as event ``key`` of this run (see ``RunHandle.get_event``).

        Raises:
            ValidationError: bad key.
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
        """
        await self._run.set_event(key, value, from_body=True)


class StepContext:
    """What an ``async def`` step can do.

    Attributes:
        run_id: the run this step belongs to.
        step_id: this step's id in the run (its name, then ``<name>-2``, ...).
        attempt: this attempt's number, from 1.
    """

    __slots__ = ("_state", "attempt", "run_id", "step_id")

    def __init__(self, state: AttemptState) -> None:
        self._state = state
        self.run_id = state.run.run_id
        self.step_id = state.step_id
        self.attempt = state.attempt

    def __repr__(self) -> str:
        return (
            f"<StepContext run_id={self.run_id!r} step_id={self.step_id!r} attempt={self.attempt}>"
        )

    @property
    def checkpoint(self) -> Any:
        """The value last saved with :meth:`save_checkpoint` by an earlier attempt, or None."""
        data = self._state.checkpoint
        return None if data is None else decode_value(data)

    def heartbeat(self) -> None:
        """Tell the runtime this attempt is alive (see ``heartbeat_timeout``)."""
        state = self._state
        state.last_heartbeat = state.run.loop_time()

    async def put_stream(self, data: object) -> None:
        """Publish ``data`` live on ``stream.<run_id>.<step_id>`` (nothing is stored)."""
        state = self._state
        if not state.live:
            state.check_live()
        await state.run.put_stream(self.step_id, data, state.attempt)

    async def write_stream(self, key: str, value: object) -> None:
        """Append ``value`` to the run's durable stream ``key``; returns once queued.

        Readers see it once it is committed: at the latest when this step
        completes, or at :meth:`flush`. Queueing does not wait, so it is a
        schedule point (lets other tasks run, and takes a pending cancel) only
        once every 64 writes: a tight loop of writes costs about a microsecond
        each, not the price of an event-loop round trip.

        Raises:
            ValidationError: bad key.
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
            StreamClosed: the stream was closed.
            ActorflowError: this attempt has ended (a thread step that timed out).
        """
        state = self._state
        if not state.live:
            state.check_live()
        if state.run.write_stream(key, value, self.step_id, self.attempt):
            await anyio.lowlevel.checkpoint()

    async def close_stream(self, key: str) -> None:
        """Close the run's durable stream ``key``; closing it again does nothing."""
        self._state.check_live()
        self._state.run.close_stream(key, self.step_id)
        await anyio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Return once everything this run queued in the journal is committed."""
        await self._state.run.commit()

    async def set_event(self, key: str, value: object) -> None:
        """Publish ``value`` as event ``key`` of this run (see ``RunHandle.get_event``)."""
        self._state.check_live()
        await self._state.run.set_event(key, value, from_body=False)

    async def save_checkpoint(self, value: object) -> None:
        """Save ``value`` durably; the next attempt of this step finds it in ``ctx.checkpoint``.

        Raises:
            EncodeError: ``value`` is not msgspec-encodable (nothing is written).
        """
        state = self._state
        state.check_live()
        data = encode_value(value, f"the checkpoint of step {self.step_id!r}")
        ticket = state.run.save_checkpoint(state.position, state.attempt, data)
        state.checkpoint = data
        await state.run.commit(ticket)


class ThreadStepContext:
    """What a plain ``def`` step can do: the operations of :class:`StepContext`, blocking.

    It is handed to steps that run in a worker thread; each call hops to the
    event loop and waits for it there. Once the attempt has ended (it timed
    out and its thread was abandoned), every operation raises instead.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: StepContext) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return repr(self._inner).replace("StepContext", "ThreadStepContext", 1)

    @property
    def run_id(self) -> str:
        """The run this step belongs to."""
        return self._inner.run_id

    @property
    def step_id(self) -> str:
        """This step's id in the run."""
        return self._inner.step_id

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self._inner.attempt

    @property
    def checkpoint(self) -> Any:
        """The value an earlier attempt saved, or None."""
        return self._inner.checkpoint

    def heartbeat(self) -> None:
        """Tell the runtime this attempt is alive."""
        anyio.from_thread.run_sync(self._inner.heartbeat)

    def put_stream(self, data: object) -> None:
        """Publish ``data`` live; blocks until published."""
        anyio.from_thread.run(self._inner.put_stream, data)

    def write_stream(self, key: str, value: object) -> None:
        """Append to a durable stream; blocks until queued."""
        anyio.from_thread.run(self._inner.write_stream, key, value)

    def close_stream(self, key: str) -> None:
        """Close a durable stream."""
        anyio.from_thread.run(self._inner.close_stream, key)

    def flush(self) -> None:
        """Block until everything this run queued is committed."""
        anyio.from_thread.run(self._inner.flush)

    def set_event(self, key: str, value: object) -> None:
        """Publish an event of this run; blocks until committed."""
        anyio.from_thread.run(self._inner.set_event, key, value)

    def save_checkpoint(self, value: object) -> None:
        """Save a checkpoint durably; blocks until committed."""
        anyio.from_thread.run(self._inner.save_checkpoint, value)
