"""Journal records: the msgspec tagged union that every journal backend stores.

The journal is one ordered log of these records. A backend must keep, for
each run, the records in the order they were appended; it may index them
however it likes. User values (inputs, outputs, stream values, checkpoints)
are stored as msgpack bytes encoded at the call that passed them, so a bad
value fails there and never reaches the journal.

``position`` numbers the durable operations of one workflow body (steps,
stream writes and closes made by the body, ...) in call order; replay matches
operations by position, the way DBOS matches ``function_id``.
"""

from __future__ import annotations

import msgspec

__all__ = (
    "ErrorInfo",
    "EventSet",
    "MessageReceived",
    "MessageSent",
    "Record",
    "RecvTimedOut",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "StepAttemptFailed",
    "StepCheckpoint",
    "StepCompleted",
    "StepGaveUp",
    "StepStarted",
    "StreamEnded",
    "StreamWrite",
    "WaitStarted",
    "record_decoder",
    "record_encoder",
)


class ErrorInfo(msgspec.Struct, frozen=True):
    """An exception, as text: what survives a process boundary."""

    type: str
    message: str
    traceback: str = ""


class _Record(msgspec.Struct, frozen=True, tag_field="kind"):
    run_id: str


class RunStarted(_Record, frozen=True, tag="run_started"):
    """A run was started; committed before ``Runtime.start`` returns."""

    workflow: str
    input: bytes
    at: float


class RunResumed(_Record, frozen=True, tag="run_resumed"):
    """A runtime began (or resumed) executing the run: the run is RUNNING."""

    at: float


class RunEnded(_Record, frozen=True, tag="run_finished"):
    """The run ended. ``status`` is COMPLETED, FAILED or CANCELLED."""

    status: str
    at: float
    output: bytes | None = None
    error: ErrorInfo | None = None


class StepStarted(_Record, frozen=True, tag="step_started"):
    """An attempt of the step at ``position`` began (attempts count from 1)."""

    position: int
    step_id: str
    name: str
    attempt: int
    at: float


class StepAttemptFailed(_Record, frozen=True, tag="step_attempt_failed"):
    """An attempt raised or timed out; a retry may follow."""

    position: int
    attempt: int
    error: ErrorInfo
    at: float


class StepCheckpoint(_Record, frozen=True, tag="step_checkpoint"):
    """``ctx.save_checkpoint(value)`` during an attempt of the step at ``position``."""

    position: int
    attempt: int
    value: bytes


class StepCompleted(_Record, frozen=True, tag="step_completed"):
    """The step at ``position`` returned ``output``; replay returns it without running."""

    position: int
    attempt: int
    output: bytes
    at: float


class StepGaveUp(_Record, frozen=True, tag="step_gave_up"):
    """The step at ``position`` exhausted its retries; replay raises StepFailed again."""

    position: int
    attempts: int
    error: ErrorInfo
    at: float


class StreamWrite(_Record, frozen=True, tag="stream_write"):
    """One durable stream entry. ``position`` is set when the workflow body wrote it."""

    key: str
    offset: int
    value: bytes
    step_id: str
    attempt: int
    position: int | None = None


class StreamEnded(_Record, frozen=True, tag="stream_close"):
    """The durable stream ``key`` of the run is closed; nothing may follow."""

    key: str
    position: int | None = None


class MessageSent(_Record, frozen=True, tag="message_sent"):
    """``Runtime.send``: a message appended to the run's durable inbox for ``topic``.

    ``key`` is the sender's idempotency key, if it gave one: a second send
    with the same key to the same run is not journaled again.
    """

    topic: str
    value: bytes
    at: float
    key: str | None = None


class MessageReceived(_Record, frozen=True, tag="message_received"):
    """The body's ``recv`` at ``position`` took message number ``index`` of ``topic``."""

    position: int
    topic: str
    index: int


class WaitStarted(_Record, frozen=True, tag="wait_started"):
    """A durable wait began at ``position`` (``sleep``, or ``recv`` with a timeout).

    ``until`` is a wall-clock time (UNIX seconds): after a restart the wait
    lasts only for what is left of it.
    """

    position: int
    until: float
    op: str
    name: str = ""


class RecvTimedOut(_Record, frozen=True, tag="recv_timed_out"):
    """The body's ``recv`` at ``position`` timed out; replay raises TimeoutError again."""

    position: int
    topic: str


class EventSet(_Record, frozen=True, tag="event_set"):
    """``set_event``: ``key`` of the run now has ``value``. ``position`` is set for the body."""

    key: str
    value: bytes
    position: int | None = None


Record = (
    RunStarted
    | RunResumed
    | RunEnded
    | StepStarted
    | StepAttemptFailed
    | StepCheckpoint
    | StepCompleted
    | StepGaveUp
    | StreamWrite
    | StreamEnded
    | MessageSent
    | MessageReceived
    | WaitStarted
    | RecvTimedOut
    | EventSet
)

record_encoder = msgspec.msgpack.Encoder()
record_decoder: msgspec.msgpack.Decoder[Record] = msgspec.msgpack.Decoder(Record)
