"""Runs and steps as actors.

A :class:`RunActor` is a task with a bounded mailbox that runs one workflow
body. Each step call is a :class:`StepActor`: its attempts, retries, timeout
and heartbeat watchdog, run in the task of the body that awaits it, inside the
run's task group, so cancelling a run cancels its steps and nothing outlives
it. (A task per step would cap a run at the machine's anyio spawn rate, about
17k/s on 2 cores; see benchmarks/bench_runtime.py.) The mailbox carries control
messages from outside the run (``CancelRun``).
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._codec import _encoder, decode_value, encode_value
from ._context import StepContext, ThreadStepContext, WorkflowContext
from ._exceptions import NonDeterminism, StepFailed, StreamClosed, ValidationError
from ._history import BodyOp, ReplayState, StepRecord
from ._registry import Step, Workflow
from .abc import RunStatus
from .records import (
    ErrorInfo,
    EventSet,
    MessageReceived,
    Record,
    RecvTimedOut,
    RunFinished,
    RunResumed,
    StepAttemptFailed,
    StepCheckpoint,
    StepCompleted,
    StepGaveUp,
    StepStarted,
    StreamClose,
    StreamWrite,
    WaitStarted,
)

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ("CancelRun", "RunActor", "RunMessage", "StepActor", "error_info")

MAILBOX_SIZE = 64
# A step writing in a tight loop yields this often: readers and commit wake-ups
# wait at most this many writes (~0.1 ms), and a cancel takes effect as soon.
_WRITES_PER_YIELD = 64
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_MISSING: Any = object()
_encode = _encoder.encode


class CancelRun(msgspec.Struct, frozen=True, tag="cancel_run"):
    """Ask the run to stop: it ends CANCELLED."""


RunMessage = CancelRun


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception as text; public actorflow errors use their public name."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        name = cls.__qualname__
    elif module.startswith("actorflow."):
        name = f"actorflow.{cls.__qualname__}"
    else:
        name = f"{module}.{cls.__qualname__}"
    tb = "".join(traceback.format_exception(exc))
    return ErrorInfo(type=name, message=str(exc), traceback=tb)


def validate_key(key: object, what: str = "stream key") -> str:
    """Return ``key`` if it is a valid stream key, topic or event key.

    Raises:
        ValidationError: it does not match ``[A-Za-z0-9_.:-]{1,128}``.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValidationError(
            f"invalid {what} {key!r}: use 1 to 128 letters, digits, '_', '.', ':' or '-'"
        )
    return key


def _recv_timeout(topic: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"no message on topic {topic!r} within {timeout} s; send one with "
        "Runtime.send(run_id, value, topic=...) or raise the timeout"
    )


@attrs.define(eq=False)
class RunActor:
    """Runs one workflow body; owns its positions, streams, and step actors."""

    runtime: Runtime
    run_id: str
    workflow: Workflow[Any, Any]
    input: bytes
    replay: ReplayState
    finished: anyio.Event = attrs.field(factory=anyio.Event)
    _send: MemoryObjectSendStream[RunMessage] = attrs.field(init=False)
    _recv: MemoryObjectReceiveStream[RunMessage] = attrs.field(init=False)
    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _body_scope: anyio.CancelScope | None = attrs.field(default=None, init=False)
    _next_position: int = attrs.field(default=0, init=False)
    _name_counts: dict[str, int] = attrs.field(factory=dict, init=False)
    _lengths: dict[str, int] = attrs.field(factory=dict, init=False)
    _closed: set[str] = attrs.field(factory=set, init=False)
    _last_ticket: int = attrs.field(default=0, init=False)
    _unyielded_writes: int = attrs.field(default=0, init=False)
    _cancel_requested: bool = attrs.field(default=False, init=False)
    _nondeterminism: NonDeterminism | None = attrs.field(default=None, init=False)
    _publishers: dict[str, Any] = attrs.field(factory=dict, init=False)
    _inbox: dict[str, list[bytes]] = attrs.field(factory=dict, init=False)
    _consumed: dict[str, int] = attrs.field(factory=dict, init=False)
    _arrival: anyio.Event | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._recv = anyio.create_memory_object_stream[RunMessage](MAILBOX_SIZE)
        self._lengths = dict(self.replay.stream_lengths)
        self._closed = set(self.replay.closed_streams)
        self._inbox = {topic: list(values) for topic, values in self.replay.inbox.items()}

    # -- the journal ------------------------------------------------------------

    def append(self, record: Record) -> int:
        """Queue a record of this run in the journal; return its ticket."""
        self._last_ticket = self.runtime.journal.append(record)
        return self._last_ticket

    async def commit(self, ticket: int | None = None) -> None:
        """Wait until ``ticket`` (default: this run's last record) is committed."""
        await self.runtime.journal.wait_committed(self._last_ticket if ticket is None else ticket)

    # -- the mailbox ------------------------------------------------------------

    async def tell(self, message: RunMessage) -> None:
        """Send a message to this run's mailbox (waits while the mailbox is full)."""
        await self._send.send(message)

    async def _mailbox_loop(self) -> None:
        async for message in self._recv:
            if isinstance(message, CancelRun):
                self.cancel()

    # -- life -------------------------------------------------------------------

    async def run(self) -> None:
        """Execute the body, then record how the run ended (unless the runtime stopped it)."""
        try:
            with self._send, self._recv:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._mailbox_loop)
                    self.append(RunResumed(self.run_id, at=time.time()))
                    await self._execute()
                    tg.cancel_scope.cancel()
        finally:
            self.finished.set()
            self.runtime._forget(self)

    async def _execute(self) -> None:
        ctx = WorkflowContext(self)
        status: RunStatus | None = None
        output: bytes | None = None
        error: ErrorInfo | None = None
        with anyio.CancelScope() as scope:
            self._body_scope = scope
            if self._cancel_requested:
                scope.cancel()
            try:
                value = await self.workflow.fn(
                    ctx, decode_value(self.input, self.workflow.input_type)
                )
                output = encode_value(value, f"the output of workflow {self.workflow.name!r}")
                status = RunStatus.COMPLETED
            except Exception as exc:
                status, error = RunStatus.FAILED, error_info(exc)
        if self._nondeterminism is not None:
            status, output = RunStatus.FAILED, None
            error = error_info(self._nondeterminism)
        elif status is None or (scope.cancelled_caught and self._cancel_requested):
            status, output, error = RunStatus.CANCELLED, None, None
        with anyio.CancelScope(shield=True):
            await self._finish(status, output, error)

    async def _finish(
        self, status: RunStatus, output: bytes | None, error: ErrorInfo | None
    ) -> None:
        now = time.time()
        for key in sorted(self._lengths.keys() - self._closed):
            self.append(StreamClose(self.run_id, key=key))
            self._closed.add(key)
        self.append(
            RunFinished(self.run_id, status=status.value, at=now, output=output, error=error)
        )
        await self.commit()
        self.runtime.broker.end_run(self.run_id)

    # -- operations of the body ---------------------------------------------------

    def _claim(self, what: str, matches: Callable[[int], bool]) -> tuple[int, bool]:
        """Take the next position; return it and whether the journal already has it."""
        position = self._next_position
        self._next_position += 1
        recorded = self.replay.describe(position)
        if recorded is None:
            return position, False
        if matches(position):
            return position, True
        exc = NonDeterminism(
            f"run {self.run_id!r} diverged from its journal at position {position}: the "
            f"journal recorded {recorded} but the workflow now calls {what}; workflow bodies "
            "must make the same calls in the same order (move randomness into steps)"
        )
        self._nondeterminism = exc
        raise exc

    async def call_step(self, step: Step[Any, Any], input: Any) -> Any:
        """Run ``step`` as a child actor of this run, or return what the journal recorded."""
        return await self.prepare_step(step, input)()

    def prepare_step(
        self, step: Step[Any, Any], input: Any, *, wait_commit: bool = True
    ) -> Callable[[], Awaitable[Any]]:
        """Claim the next position for ``step`` now; return what runs (or replays) it.

        Claiming is synchronous so that concurrent steps (``ctx.gather``) get
        their positions in call order, whatever order their tasks start in.
        With ``wait_commit=False`` the step returns once its completion is
        queued, not committed: the caller must ``commit()`` before anything
        that depends on the output becomes visible (graph supersteps do, once
        per superstep).
        """
        if not isinstance(step, Step):
            raise ValidationError(f"ctx.step() takes an @af.step function, not {step!r}")
        encode_value(input, f"the input of step {step.name!r}")
        position, _ = self._claim(
            f"step {step.name!r}",
            lambda p: p in self.replay.steps and self.replay.steps[p].name == step.name,
        )
        count = self._name_counts[step.name] = self._name_counts.get(step.name, 0) + 1
        step_id = step.name if count == 1 else f"{step.name}-{count}"
        record = self.replay.steps.get(position)
        if record is not None and record.output is not None:
            output = decode_value(record.output, step.output_type)

            async def replayed() -> Any:
                return output

            return replayed
        if record is not None and record.gave_up is not None:
            failed = StepFailed(
                step_id, record.last_attempt, record.gave_up.type, record.gave_up.message
            )

            async def replay_failure() -> Any:
                raise failed

            return replay_failure
        return StepActor(self, step, input, position, step_id, record, wait_commit).run

    async def put_stream(self, step_id: str, data: object) -> None:
        """Publish ``data`` live on ``stream.<run_id>.<step_id>``."""
        publisher = self._publishers.get(step_id)
        if publisher is None:
            publisher = self._publishers[step_id] = self.runtime.broker.publisher(
                self.run_id, step_id
            )
        await publisher.publish(data)

    def write_stream(self, key: str, value: object, step_id: str, attempt: int) -> bool:
        """Queue a durable stream entry (from a step, or the body when step_id is main).

        Returns whether the caller should now yield to the event loop: a write
        only queues a record, and a schedule point per write would cost several
        times the write itself, so writers yield once every ``_WRITES_PER_YIELD``.
        """
        # Hot path: a key this run already has is valid, and the encoder is only
        # wrapped (for its error message) when it fails.
        if type(key) is not str or key not in self._lengths:
            validate_key(key)
        try:
            data = _encode(value)
        except (TypeError, ValueError, OverflowError):
            data = encode_value(value, f"the value written to stream {key!r}")
        position = None
        if step_id == "main":
            position, done = self._claim(
                f"write_stream {key!r}",
                lambda p: self.replay.body_ops.get(p) == BodyOp("write_stream", key),
            )
            if done:
                return self._pace()
        if key in self._closed:
            raise StreamClosed(
                f"stream {key!r} of run {self.run_id!r} is closed; write before close_stream(), "
                "or use another key"
            )
        offset = self._lengths.get(key, 0)
        self._lengths[key] = offset + 1
        self._last_ticket = self.runtime.journal.append(
            StreamWrite(self.run_id, key, offset, data, step_id, attempt, position)
        )
        return self._pace()

    def _pace(self) -> bool:
        self._unyielded_writes += 1
        if self._unyielded_writes < _WRITES_PER_YIELD:
            return False
        self._unyielded_writes = 0
        return True

    def close_stream(self, key: str, step_id: str) -> None:
        """Queue the close of a durable stream; closing a closed stream does nothing."""
        validate_key(key)
        position = None
        if step_id == "main":
            position, done = self._claim(
                f"close_stream {key!r}",
                lambda p: self.replay.body_ops.get(p) == BodyOp("close_stream", key),
            )
            if done:
                return
        if key in self._closed:
            return
        self._closed.add(key)
        self.append(StreamClose(self.run_id, key=key, position=position))

    # -- signals, events, durable sleep ------------------------------------------------

    def deliver(self, topic: str, value: bytes) -> None:
        """A message for ``topic`` was appended to the journal: put it in the inbox.

        Called in the same synchronous block as the journal append, so the
        inbox holds messages in journal order.
        """
        self._inbox.setdefault(topic, []).append(value)
        event, self._arrival = self._arrival, None
        if event is not None:
            event.set()

    async def recv(self, topic: str, timeout: float | None) -> Any:
        """The next message of ``topic``, each exactly once across crashes."""
        validate_key(topic, "topic")
        if timeout is not None and not timeout >= 0:
            raise ValidationError(f"timeout must be a number of seconds >= 0, not {timeout!r}")
        position, recorded = self._claim(
            f"recv {topic!r}", lambda p: self.replay.body_ops.get(p) == BodyOp("recv", topic)
        )
        if recorded and position in self.replay.timed_out:
            raise _recv_timeout(topic, timeout)
        if recorded and position in self.replay.received:
            _, index = self.replay.received[position]
            self._consumed[topic] = index + 1
            return decode_value(self._inbox[topic][index])
        index = self._consumed.get(topic, 0)
        if index >= len(self._inbox.get(topic, ())):
            until = float("inf")
            if timeout is not None:
                until = self.replay.waits.get(position, time.time() + timeout)
                if position not in self.replay.waits:
                    self.append(WaitStarted(self.run_id, position, until, "recv", topic))
            with anyio.move_on_after(until - time.time()):
                while index >= len(self._inbox.get(topic, ())):
                    if self._arrival is None:
                        self._arrival = anyio.Event()
                    await self._arrival.wait()
            if index >= len(self._inbox.get(topic, ())):
                await self.commit(self.append(RecvTimedOut(self.run_id, position, topic)))
                raise _recv_timeout(topic, timeout)
        self._consumed[topic] = index + 1
        await self.commit(self.append(MessageReceived(self.run_id, position, topic, index)))
        return decode_value(self._inbox[topic][index])

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is journaled before the wait begins."""
        if not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValidationError(f"sleep() takes a number of seconds >= 0, not {seconds!r}")
        position, recorded = self._claim(
            "sleep", lambda p: self.replay.body_ops.get(p) == BodyOp("sleep", "")
        )
        until = self.replay.waits.get(position) if recorded else None
        if until is None:
            until = time.time() + seconds
            await self.commit(self.append(WaitStarted(self.run_id, position, until, "sleep")))
            await anyio.sleep(seconds)
        else:
            await anyio.sleep(max(0.0, until - time.time()))

    async def set_event(self, key: str, value: object, from_body: bool) -> None:
        """Set event ``key`` to ``value``, committed before it returns."""
        validate_key(key, "event key")
        data = encode_value(value, f"the value of event {key!r}")
        position = None
        if from_body:
            position, recorded = self._claim(
                f"set_event {key!r}",
                lambda p: self.replay.body_ops.get(p) == BodyOp("set_event", key),
            )
            if recorded:
                return
        await self.commit(self.append(EventSet(self.run_id, key, data, position)))

    def cancel(self) -> None:
        """Cancel the body (from inside the event loop, without the mailbox)."""
        self._cancel_requested = True
        if self._body_scope is not None:
            self._body_scope.cancel()


@attrs.define(eq=False)
class StepActor:
    """One step call: its attempts, retries, timeouts and heartbeats."""

    parent: RunActor
    step: Step[Any, Any]
    input: Any
    position: int
    step_id: str
    record: StepRecord | None
    wait_commit: bool = True

    async def run(self) -> Any:
        """Run attempts until one succeeds or retries are exhausted; return the output.

        Raises:
            StepFailed: the retries are exhausted.
            EncodeError: the output is not msgspec-encodable.
        """
        step, run, rec = self.step, self.parent, self.record
        attempt = rec.last_attempt if rec else 0
        failures = rec.failures if rec else 0
        checkpoint = rec.checkpoint if rec else None
        while True:
            attempt += 1
            run.append(
                StepStarted(
                    run.run_id, self.position, self.step_id, step.name, attempt, time.time()
                )
            )
            ctx: StepContext | ThreadStepContext
            if step.is_async:
                ctx = StepContext(self, attempt, checkpoint)
            else:
                ctx = ThreadStepContext(StepContext(self, attempt, checkpoint))
            try:
                output = await self._attempt(ctx)
            except Exception as exc:
                failures += 1
                info = error_info(exc)
                run.append(StepAttemptFailed(run.run_id, self.position, attempt, info, time.time()))
                if failures > step.retries:
                    await run.commit(
                        run.append(
                            StepGaveUp(run.run_id, self.position, attempt, info, time.time())
                        )
                    )
                    raise StepFailed(self.step_id, attempt, info.type, info.message) from exc
                checkpoint = (ctx if isinstance(ctx, StepContext) else ctx._inner)._checkpoint
                await anyio.sleep(step.backoff.delay(failures))
                continue
            data = encode_value(output, f"the output of step {self.step_id!r}")
            ticket = run.append(
                StepCompleted(run.run_id, self.position, attempt, data, time.time())
            )
            if self.wait_commit:
                await run.commit(ticket)
            return output

    async def _attempt(self, ctx: StepContext | ThreadStepContext) -> Any:
        step = self.step

        async def call() -> Any:
            if step.is_async:
                return await step.fn(ctx, self.input)
            return await anyio.to_thread.run_sync(step.fn, ctx, self.input, abandon_on_cancel=True)

        with anyio.fail_after(step.timeout) if step.timeout is not None else nullcontext():
            if step.heartbeat_timeout is None:
                return await call()
            inner = ctx if isinstance(ctx, StepContext) else ctx._inner
            result, error = _MISSING, None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_heartbeats, inner, tg.cancel_scope)
                try:
                    result = await call()
                except Exception as exc:
                    error = exc
                tg.cancel_scope.cancel()
            if error is not None:
                raise error
            if result is _MISSING:
                raise TimeoutError(
                    f"step {self.step_id!r} sent no heartbeat for {step.heartbeat_timeout} s; "
                    "call ctx.heartbeat() more often or raise heartbeat_timeout"
                )
            return result

    async def _watch_heartbeats(self, ctx: StepContext, scope: anyio.CancelScope) -> None:
        assert self.step.heartbeat_timeout is not None
        while True:
            deadline = ctx._last_heartbeat + self.step.heartbeat_timeout
            if anyio.current_time() >= deadline:
                scope.cancel()
                return
            await anyio.sleep_until(deadline)

    def save_checkpoint(self, attempt: int, data: bytes) -> int:
        """Queue an encoded checkpoint of this step; return its ticket."""
        return self.parent.append(StepCheckpoint(self.parent.run_id, self.position, attempt, data))
