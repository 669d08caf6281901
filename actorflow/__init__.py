"""actorflow: embeddable, in-process durable workflows whose steps stream output while they run."""

from ._exceptions import (
    ActorflowError,
    EncodeError,
    GraphError,
    JournalError,
    JournalLocked,
    NonDeterminism,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunNotFound,
    SlowConsumer,
    StepFailed,
    StreamClosed,
    ValidationError,
    WorkflowNotFound,
)
from ._journal import Journal, RunInfo, RunStatus, StreamEntry, StreamInfo
from ._memory_journal import MemoryJournal

__all__ = (
    "ActorflowError",
    "EncodeError",
    "GraphError",
    "Journal",
    "JournalError",
    "JournalLocked",
    "MemoryJournal",
    "NonDeterminism",
    "RunCancelled",
    "RunFailed",
    "RunFinished",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "SlowConsumer",
    "StepFailed",
    "StreamClosed",
    "StreamEntry",
    "StreamInfo",
    "ValidationError",
    "WorkflowNotFound",
)
