"""A run as an actor: one workflow body, its positions, streams, inbox and steps.

A :class:`RunActor` is one task. Its mailbox carries what the run receives
from outside: messages sent to it (``send``) and cancel requests. Both are
handled at once by :meth:`RunActor.tell`, in the caller's synchronous block,
with no task of its own: a message lands in the inbox in journal order, and a
cancel cancels the body's scope. So an idle run (blocked in ``ctx.recv``)
costs one task and a handful of small objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
import msgspec

from ._codec import _encoder, decode_value, encode_value, error_info
from ._context import WorkflowContext
from ._exceptions import (
    EncodeError,
    JournalError,
    NonDeterminism,
    StepFailed,
    StreamClosed,
    ValidationError,
)
from ._history import BodyOp, ReplayState
from ._instrument import Hooks
from ._registry import Step, Workflow
from ._step import StepActor
from ._validate import validate_key
from .abc import Clock, Journal, LiveBroker, LivePublisher, RunStatus
from .records import (
    ErrorInfo,
    EventSet,
    MessageReceived,
    Record,
    RecvTimedOut,
    RunEnded,
    RunResumed,
    StepCheckpoint,
    StreamEnded,
    StreamWrite,
    WaitStarted,
)

__all__ = ("CancelRun", "Deliver", "RunActor", "RunMessage", "RunServices")

# A step writing in a tight loop yields this often: readers and commit wake-ups
# wait at most this many writes, and a cancel takes effect as soon.
_WRITES_PER_YIELD = 64
_encode = _encoder.encode


class CancelRun(msgspec.Struct, frozen=True, tag="cancel_run"):
    """Ask the run to stop: it ends CANCELLED."""


class Deliver(msgspec.Struct, frozen=True, tag="deliver"):
    """A message for the run's inbox, already appended to the journal."""

    topic: str
    value: bytes
    key: str | None = None


RunMessage = CancelRun | Deliver


@attrs.frozen
class RunServices:
    """What a runtime lends its run actors: the journal, the broker, time and hooks.

    ``ended`` is called, in the run's task, right after the run's end is
    committed; the runtime forgets the actor and ends its live subscriptions
    there, in one synchronous block, so no one can find the actor after its
    subscriptions ended.
    """

    journal: Journal
    broker: LiveBroker
    clock: Clock
    hooks: Hooks
    ended: Callable[[RunActor], None]


def _recv_timeout(topic: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(
        f"no message on topic {topic!r} within {timeout} s; send one with "
        "Runtime.send(run_id, value, topic=...) or raise the timeout"
    )


@attrs.define(eq=False)
class RunActor:
    """Runs one workflow body; owns its positions, streams, inbox and step actors.

    Invariant: every field is touched only in the event loop's thread.
    """

    services: RunServices
    run_id: str
    workflow: Workflow[Any, Any]
    input: bytes
    replay: ReplayState
    resumed: bool = False
    # Set (and waited on) only when someone waits for the run to end.
    _finished: anyio.Event | None = attrs.field(default=None, init=False)
    _done: bool = attrs.field(default=False, init=False)
    # Set when the run's end is appended: nothing may be delivered after it.
    _ending: bool = attrs.field(default=False, init=False)
    _body_scope: anyio.CancelScope | None = attrs.field(default=None, init=False)
    _next_position: int = attrs.field(default=0, init=False)
    _name_counts: dict[str, int] = attrs.field(factory=dict, init=False)
    _lengths: dict[str, int] = attrs.field(factory=dict, init=False)
    _closed: set[str] = attrs.field(factory=set, init=False)
    _last_ticket: int = attrs.field(default=0, init=False)
    _unyielded_writes: int = attrs.field(default=0, init=False)
    _cancel_requested: bool = attrs.field(default=False, init=False)
    _nondeterminism: NonDeterminism | None = attrs.field(default=None, init=False)
    _publishers: dict[str, LivePublisher] | None = attrs.field(default=None, init=False)
    _inbox: dict[str, list[bytes]] = attrs.field(factory=dict, init=False)
    _consumed: dict[str, int] | None = attrs.field(default=None, init=False)
    _arrival: anyio.Event | None = attrs.field(default=None, init=False)
    _keys: set[str] | None = attrs.field(default=None, init=False)  # of messages delivered

    def __attrs_post_init__(self) -> None:
        replay = self.replay
        if replay.stream_lengths:
            self._lengths = dict(replay.stream_lengths)
        if replay.closed_streams:
            self._closed = set(replay.closed_streams)
        if replay.inbox:
            self._inbox = {topic: list(values) for topic, values in replay.inbox.items()}
        if replay.sent_keys:
            self._keys = set(replay.sent_keys)

    @property
    def workflow_name(self) -> str:
        """The run's workflow's registered name."""
        return self.workflow.name

    @property
    def clock(self) -> Clock:
        """The runtime's clock."""
        return self.services.clock

    @property
    def hooks(self) -> Hooks:
        """The runtime's instrument hooks."""
        return self.services.hooks

    def loop_time(self) -> float:
        """The clock's loop time (heartbeats)."""
        return self.services.clock.current_time()

    # -- the journal ------------------------------------------------------------

    def append(self, record: Record) -> int:
        """Queue a record of this run in the journal; return its ticket."""
        self._last_ticket = self.services.journal.append(record)
        return self._last_ticket

    async def commit(self, ticket: int | None = None) -> None:
        """Wait until ``ticket`` (default: this run's last record) is committed."""
        await self.services.journal.wait_committed(self._last_ticket if ticket is None else ticket)

    # -- the mailbox ------------------------------------------------------------

    def tell(self, message: RunMessage) -> bool:
        """Hand the run a message; return False if the run is ending and took none.

        A :class:`Deliver` must be told in the same synchronous block as its
        journal append, so the inbox holds messages in journal order.
        """
        if self._ending:
            return False
        if isinstance(message, Deliver):
            self._inbox.setdefault(message.topic, []).append(message.value)
            if message.key is not None:
                if self._keys is None:
                    self._keys = set()
                self._keys.add(message.key)
            event, self._arrival = self._arrival, None
            if event is not None:
                event.set()
        else:
            self._cancel_requested = True
            if self._body_scope is not None:
                self._body_scope.cancel()
        return True

    def has_message(self, key: str) -> bool:
        """Whether a message sent with idempotency key ``key`` was delivered to this run."""
        return self._keys is not None and key in self._keys

    @property
    def ending(self) -> bool:
        """Whether the run's end has been appended (it takes no more messages)."""
        return self._ending

    async def wait_finished(self) -> None:
        """Wait until the run's task is over (its end committed, or it was stopped)."""
        if self._done:
            return
        if self._finished is None:
            self._finished = anyio.Event()
        await self._finished.wait()

    # -- life -------------------------------------------------------------------

    async def run(self) -> None:
        """Execute the body, then record how the run ended (unless the runtime stopped it)."""
        hooks = self.services.hooks
        try:
            self.append(RunResumed(self.run_id, at=self.services.clock.time()))
            if hooks.run_started is not None:
                hooks.run_started(self.run_id, self.workflow.name, resumed=self.resumed)
            await self._execute()
        except JournalError as exc:
            if hooks.journal_failed is not None:
                hooks.journal_failed(self.run_id, exc)
            raise
        finally:
            self._done = True
            if self._finished is not None:
                self._finished.set()
            if not self._ending:  # stopped by the runtime: the run stays unfinished
                self.services.ended(self)
                if self.services.hooks.run_stopped is not None:
                    self.services.hooks.run_stopped(self.run_id, self.workflow.name)

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
        self._body_scope = None
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
        services = self.services
        for key in sorted(self._lengths.keys() - self._closed):
            self.append(StreamEnded(self.run_id, key=key))
            self._closed.add(key)
        self._ending = True
        at = services.clock.time()
        try:
            self.append(RunEnded(self.run_id, status.value, at, output, error))
        except EncodeError as exc:  # the output (or error) is over the journal's size limit
            full = error_info(exc)
            # Without the traceback: a journal with a small limit may refuse that too.
            status, error = RunStatus.FAILED, ErrorInfo(full.type, full.message[:500])
            self.append(RunEnded(self.run_id, status.value, at, None, error))
        await self.commit()
        services.ended(self)
        if services.hooks.run_finished is not None:
            services.hooks.run_finished(self.run_id, self.workflow.name, status.value, error)

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
        return StepActor(self, step, input, position, step_id, record, wait_commit).run_attempts

    def save_checkpoint(self, position: int, attempt: int, data: bytes) -> int:
        """Queue an encoded checkpoint of the step at ``position``; return its ticket."""
        return self.append(StepCheckpoint(self.run_id, position, attempt, data))

    async def put_stream(self, step_id: str, data: object, attempt: int = 0) -> None:
        """Publish ``data`` live on ``stream.<run_id>.<step_id>`` (from step ``attempt``)."""
        publishers = self._publishers
        if publishers is None:
            publishers = self._publishers = {}
        publisher = publishers.get(step_id)
        if publisher is None:
            publisher = publishers[step_id] = self.services.broker.publisher(self.run_id, step_id)
        await publisher.publish(data, attempt=attempt)

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
        except (TypeError, ValueError, OverflowError, RecursionError):
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
        self._last_ticket = self.services.journal.append(
            StreamWrite(self.run_id, key, offset, data, step_id, attempt, position)
        )
        hook = self.services.hooks.stream_written
        if hook is not None:
            hook(self.run_id, key, offset, step_id)
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
        self.append(StreamEnded(self.run_id, key=key, position=position))
        hook = self.services.hooks.stream_closed
        if hook is not None:
            hook(self.run_id, key)

    # -- signals, events, durable sleep ------------------------------------------------

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
        consumed = self._consumed
        if consumed is None:
            consumed = self._consumed = {}
        if recorded and position in self.replay.received:
            _, index = self.replay.received[position]
            consumed[topic] = index + 1
            return decode_value(self._inbox[topic][index])
        index = consumed.get(topic, 0)
        if index >= len(self._inbox.get(topic, ())):
            if timeout is None:
                await self._wait_message(topic, index)
            else:
                clock = self.services.clock
                until = self.replay.waits.get(position)
                if until is None:
                    until = clock.time() + timeout
                    self.append(WaitStarted(self.run_id, position, until, "recv", topic))
                with anyio.move_on_after(until - clock.time()):
                    await self._wait_message(topic, index)
                if index >= len(self._inbox.get(topic, ())):
                    await self.commit(self.append(RecvTimedOut(self.run_id, position, topic)))
                    raise _recv_timeout(topic, timeout)
        consumed[topic] = index + 1
        await self.commit(self.append(MessageReceived(self.run_id, position, topic, index)))
        return decode_value(self._inbox[topic][index])

    async def _wait_message(self, topic: str, index: int) -> None:
        while index >= len(self._inbox.get(topic, ())):
            if self._arrival is None:
                self._arrival = anyio.Event()
            await self._arrival.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wake-up time is journaled before the wait begins."""
        if not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValidationError(f"sleep() takes a number of seconds >= 0, not {seconds!r}")
        position, recorded = self._claim(
            "sleep", lambda p: self.replay.body_ops.get(p) == BodyOp("sleep", "")
        )
        clock = self.services.clock
        until = self.replay.waits.get(position) if recorded else None
        if until is None:
            until = clock.time() + seconds
            await self.commit(self.append(WaitStarted(self.run_id, position, until, "sleep")))
            await clock.sleep(seconds)
        else:
            await clock.sleep(max(0.0, until - clock.time()))

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
