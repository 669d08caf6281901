"""actorflow: embeddable, in-process durable workflows whose steps stream output while they run.

Define work with :func:`workflow` and :func:`step`, run it in a :class:`Runtime`
over a journal (in memory or a SQLite file), stream output live
(``ctx.put_stream`` → :meth:`Runtime.subscribe`) or durably
(``ctx.write_stream`` → :meth:`RunHandle.read_stream`).
"""

# General layout (dependencies point down; no import cycles, not even in
# function bodies):
#
#   web/, _cli/, testing/          tools over the public API
#   _runtime.py, _handle.py        the runtime and its handles
#   _run.py, _step.py, _graph/     run and step actors; graphs over them
#   _context.py, _follow.py, _outcome.py, _history.py, _stream_reader.py
#   _journals/, _live/             backends behind the seams
#   abc.py, records.py             the public seams and the journal's records
#   _exceptions.py, _codec.py, _validate.py, _clock.py, _instrument.py,
#   _eventloop.py (the only module that imports asyncio or trio), _registry.py

from . import abc, records
from ._clock import SystemClock
from ._context import StepContext, ThreadStepContext, WorkflowContext
from ._exceptions import (
    ActorflowError,
    BrokerError,
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
from ._graph import (
    END,
    Command,
    CompiledGraph,
    ExecutionResult,
    Graph,
    GraphStream,
    Key,
    ListKey,
    NodeContext,
    View,
    last,
)
from ._handle import RunHandle
from ._journals._memory import MemoryJournal
from ._journals._sqlite import SQLiteJournal
from ._live import (
    Message,
    NATSBroker,
    NATSBrokerStatistics,
    Overflow,
    Subscription,
    SubscriptionStatistics,
)
from ._registry import Backoff, Step, Workflow, step, workflow
from ._restarts import StreamRestart, latest_attempts
from ._runtime import Runtime
from .abc import Journal, RunInfo, RunStatus, StreamEntry, StreamInfo

__version__ = "0.1.0.dev0"

__all__ = (
    "END",
    "ActorflowError",
    "Backoff",
    "BrokerError",
    "Command",
    "CompiledGraph",
    "EncodeError",
    "ExecutionResult",
    "Graph",
    "GraphError",
    "GraphStream",
    "Journal",
    "JournalError",
    "JournalLocked",
    "Key",
    "ListKey",
    "MemoryJournal",
    "Message",
    "NATSBroker",
    "NATSBrokerStatistics",
    "NodeContext",
    "NonDeterminism",
    "Overflow",
    "RunCancelled",
    "RunFailed",
    "RunFinished",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunStatus",
    "Runtime",
    "SQLiteJournal",
    "SlowConsumer",
    "Step",
    "StepContext",
    "StepFailed",
    "StreamClosed",
    "StreamEntry",
    "StreamInfo",
    "StreamRestart",
    "Subscription",
    "SubscriptionStatistics",
    "SystemClock",
    "ThreadStepContext",
    "ValidationError",
    "View",
    "Workflow",
    "WorkflowContext",
    "WorkflowNotFound",
    "abc",
    "last",
    "latest_attempts",
    "records",
    "step",
    "workflow",
)
