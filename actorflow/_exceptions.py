"""The exceptions actorflow raises.

Every public exception derives from :class:`ActorflowError`; where a builtin
fits, a subclass inherits it too, so ``except ValueError`` keeps working::

    ActorflowError
    ├── ValidationError (ValueError)     a bad name, key, subject or option
    ├── EncodeError (TypeError)          a value msgspec cannot encode
    ├── WorkflowNotFound (LookupError)   no workflow registered under that name
    ├── RunNotFound (LookupError)        no run with that id in the journal
    ├── RunFinished                      the run already ended (send to it, ...)
    ├── RunFailed                        the run's workflow raised (``result()``)
    ├── RunCancelled                     the run was cancelled (``result()``)
    ├── StepFailed                       a step exhausted its retries (workflow body)
    ├── NonDeterminism                   a replay diverged from the journal
    ├── StreamClosed                     write to a closed durable stream
    ├── SlowConsumer                     a live subscriber with overflow="error" fell behind
    ├── BrokerError (ConnectionError)    a live broker cannot reach its server (NATS)
    ├── GraphError                       an invalid graph, or a graph run that went wrong
    └── JournalError                     the journal cannot be used (corrupt, newer, not a journal)
        └── JournalLocked                another runtime is writing this journal

Whose fault it is, as trio puts it: ``ValidationError`` and ``EncodeError`` are
the caller's; ``RunFailed`` and ``StepFailed`` are the user code's;
``JournalError`` is the file's.
"""

from __future__ import annotations

__all__ = (
    "ActorflowError",
    "BrokerError",
    "EncodeError",
    "GraphError",
    "JournalError",
    "JournalLocked",
    "NonDeterminism",
    "RunCancelled",
    "RunFailed",
    "RunFinished",
    "RunNotFound",
    "SlowConsumer",
    "StepFailed",
    "StreamClosed",
    "ValidationError",
    "WorkflowNotFound",
)


class ActorflowError(Exception):
    """Base class of every exception actorflow raises on purpose."""


class ValidationError(ActorflowError, ValueError):
    """An argument has a value actorflow does not accept (a name, key, pattern or option)."""


class EncodeError(ActorflowError, TypeError):
    """A value cannot be encoded with msgspec, so it cannot be journaled or streamed durably."""


class WorkflowNotFound(ActorflowError, LookupError):
    """No workflow (or step) is registered under the given name."""


class RunNotFound(ActorflowError, LookupError):
    """The journal holds no run with the given id.

    Attributes:
        run_id: the id that was looked up.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no run {run_id!r} in the journal; check the id with `actorflow runs` "
            "or Runtime.list_runs()"
        )
        self.run_id = run_id


class RunFinished(ActorflowError):
    """The run has already ended, so it cannot take what was asked of it."""


class RunFailed(ActorflowError):
    """The run's workflow raised; raised by :meth:`RunHandle.result`.

    The original exception lived in the run (possibly in another process or a
    previous life of this one), so it is carried as text.

    Attributes:
        run_id: the run that failed.
        error_type: qualified name of the exception the workflow raised.
        error_message: ``str()`` of that exception.
        traceback: the formatted traceback, as text.
    """

    def __init__(self, run_id: str, error_type: str, error_message: str, traceback: str) -> None:
        super().__init__(f"run {run_id!r} failed with {error_type}: {error_message}")
        self.run_id = run_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class RunCancelled(ActorflowError):
    """The run was cancelled before it finished; raised by :meth:`RunHandle.result`.

    Attributes:
        run_id: the run that was cancelled.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} was cancelled")
        self.run_id = run_id


class StepFailed(ActorflowError):
    """A step exhausted its retries; raised inside the workflow body, which may catch it.

    The last attempt's exception is ``__cause__`` when the step failed in this
    process; after recovery only its text is known.

    Attributes:
        step_id: the failed step's id within its run.
        attempts: how many attempts were made.
        error_type: qualified name of the last attempt's exception.
        error_message: ``str()`` of that exception.
    """

    def __init__(self, step_id: str, attempts: int, error_type: str, error_message: str) -> None:
        super().__init__(
            f"step {step_id!r} failed after {attempts} attempt(s) with {error_type}: "
            f"{error_message}"
        )
        self.step_id = step_id
        self.attempts = attempts
        self.error_type = error_type
        self.error_message = error_message


class NonDeterminism(ActorflowError):
    """A replayed workflow called something other than what the journal recorded there.

    Workflow bodies must make the same calls in the same order on every
    execution; move anything random or time-dependent into a step.
    """


class StreamClosed(ActorflowError):
    """The durable stream was closed (explicitly or because its run ended)."""


class SlowConsumer(ActorflowError):
    """A live subscription with ``overflow="error"`` fell behind and its buffer filled up."""


class BrokerError(ActorflowError, ConnectionError):
    """A live broker that crosses processes cannot reach its server (NATS)."""


class GraphError(ActorflowError):
    """A graph is invalid, or a graph run broke one of the graph rules."""


class JournalError(ActorflowError):
    """The journal cannot be used: not a journal, written by a newer version, or broken."""


class JournalLocked(JournalError):
    """Another runtime (in this process or another) is already writing this journal."""
