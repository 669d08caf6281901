"""Folding a run's journal records into what replay and ``show`` need."""

from __future__ import annotations

import attrs

from ._exceptions import JournalError
from .abc import RunHistory
from .records import (
    ErrorInfo,
    EventSet,
    MessageReceived,
    MessageSent,
    Record,
    RecvTimedOut,
    StepAttemptFailed,
    StepCheckpoint,
    StepCompleted,
    StepGaveUp,
    StepStarted,
    StreamEnded,
    StreamWrite,
    WaitStarted,
)

__all__ = ("BodyOp", "ReplayState", "StepAttempt", "StepRecord", "fold")


@attrs.define
class StepAttempt:
    """One attempt of a step, for ``actorflow show``."""

    attempt: int
    started_at: float
    finished_at: float | None = None
    error: ErrorInfo | None = None


@attrs.define
class StepRecord:
    """What the journal says about the step at one position of a run."""

    position: int
    step_id: str
    name: str
    attempts: list[StepAttempt] = attrs.field(factory=list)
    failures: int = 0
    checkpoint: bytes | None = None
    output: bytes | None = None
    gave_up: ErrorInfo | None = None

    @property
    def last_attempt(self) -> int:
        """The number of the last attempt that started (0 if none)."""
        return self.attempts[-1].attempt if self.attempts else 0

    @property
    def status(self) -> str:
        """COMPLETED, FAILED, or RUNNING (started, never finished)."""
        if self.output is not None:
            return "COMPLETED"
        return "FAILED" if self.gave_up is not None else "RUNNING"


@attrs.frozen
class BodyOp:
    """A durable operation of the workflow body other than a step (a stream write, ...)."""

    kind: str
    name: str


@attrs.define
class ReplayState:
    """A run's history, by position, ready for replay."""

    steps: dict[int, StepRecord] = attrs.field(factory=dict)
    body_ops: dict[int, BodyOp] = attrs.field(factory=dict)
    stream_lengths: dict[str, int] = attrs.field(factory=dict)
    closed_streams: set[str] = attrs.field(factory=set)
    inbox: dict[str, list[bytes]] = attrs.field(factory=dict)
    received: dict[int, tuple[str, int]] = attrs.field(factory=dict)
    timed_out: set[int] = attrs.field(factory=set)
    waits: dict[int, float] = attrs.field(factory=dict)
    events: dict[str, bytes] = attrs.field(factory=dict)
    sent_keys: set[str] = attrs.field(factory=set)

    def describe(self, position: int) -> str | None:
        """What the journal recorded at ``position`` ("step 'fetch'"), or None."""
        if position in self.steps:
            return f"step {self.steps[position].name!r}"
        op = self.body_ops.get(position)
        return None if op is None else f"{op.kind} {op.name!r}"


def fold(history: RunHistory | None) -> ReplayState:
    """Fold the records of one run into a :class:`ReplayState`.

    Raises:
        JournalError: the records are not a history any runtime writes (a
            damaged journal): a step record comes before the step started.
    """
    state = ReplayState()
    if history is None:
        return state
    state.stream_lengths = dict(history.stream_lengths)
    for record in history.records:
        _apply(state, record)
    return state


def _apply(state: ReplayState, record: Record) -> None:
    if isinstance(record, StepStarted):
        step = state.steps.get(record.position)
        if step is None:
            step = state.steps[record.position] = StepRecord(
                record.position, record.step_id, record.name
            )
        step.attempts.append(StepAttempt(record.attempt, record.at))
    elif isinstance(record, StepAttemptFailed):
        step = _started(state, record)
        step.failures += 1
        if step.attempts:
            step.attempts[-1].finished_at = record.at
            step.attempts[-1].error = record.error
    elif isinstance(record, StepCheckpoint):
        _started(state, record).checkpoint = record.value
    elif isinstance(record, StepCompleted):
        step = _started(state, record)
        step.output = record.output
        if step.attempts:
            step.attempts[-1].finished_at = record.at
    elif isinstance(record, StepGaveUp):
        _started(state, record).gave_up = record.error
    elif isinstance(record, StreamWrite):
        if record.position is not None:
            state.body_ops[record.position] = BodyOp("write_stream", record.key)
    elif isinstance(record, StreamEnded):
        state.closed_streams.add(record.key)
        if record.position is not None:
            state.body_ops[record.position] = BodyOp("close_stream", record.key)
    elif isinstance(record, MessageSent):
        state.inbox.setdefault(record.topic, []).append(record.value)
        if record.key is not None:
            state.sent_keys.add(record.key)
    elif isinstance(record, MessageReceived):
        state.received[record.position] = (record.topic, record.index)
        state.body_ops[record.position] = BodyOp("recv", record.topic)
    elif isinstance(record, RecvTimedOut):
        state.timed_out.add(record.position)
        state.body_ops[record.position] = BodyOp("recv", record.topic)
    elif isinstance(record, WaitStarted):
        state.waits[record.position] = record.until
        state.body_ops.setdefault(record.position, BodyOp(record.op, record.name))
    elif isinstance(record, EventSet):
        state.events[record.key] = record.value
        if record.position is not None:
            state.body_ops[record.position] = BodyOp("set_event", record.key)


def _started(
    state: ReplayState, record: StepAttemptFailed | StepCheckpoint | StepCompleted | StepGaveUp
) -> StepRecord:
    """The step ``record`` is about, which a StepStarted record must have begun."""
    step = state.steps.get(record.position)
    if step is None:
        raise JournalError(
            f"the history of run {record.run_id!r} is damaged: its {type(record).__name__} "
            f"record at position {record.position} follows no StepStarted; restore the "
            "journal from a backup, or start the run again"
        )
    return step
