"""What actorflow logs, as an :class:`~actorflow.abc.Instrument` every runtime includes.

Loggers, under ``actorflow``: ``actorflow.run`` (runs start, resume, end or
stop), ``actorflow.step`` (attempts, retries, give-ups, heartbeat timeouts),
``actorflow.journal`` (journal failures) and ``actorflow.live`` (slow
subscribers losing messages, logged from the broker, which has no hooks).

Levels are chosen so that an application that configures no logging, where
Python prints WARNING and above to stderr, prints nothing while things go as
designed: a retried attempt is INFO, a step that gives up (with its
traceback) and a failed run are WARNING, a failing journal is ERROR.

Every hook first asks its logger whether the level is enabled, so with the
default WARNING threshold a successful run formats nothing. A step attempt that
succeeds is not logged at all (its start and end hooks are not overridden), so
a successful step pays nothing for logging. Records carry
``run_id`` (and ``workflow``, ``step_id``, ``attempt`` where known) as
attributes, for structured formatters.
"""

from __future__ import annotations

import logging

from .abc import Instrument
from .records import ErrorInfo

__all__ = ("LoggingInstrument",)

_run_log = logging.getLogger("actorflow.run")
_step_log = logging.getLogger("actorflow.step")
_journal_log = logging.getLogger("actorflow.journal")

_DEBUG, _INFO, _WARNING, _ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


class LoggingInstrument(Instrument):
    """Logs runs and step attempts to the ``actorflow.*`` loggers (see the module docstring)."""

    def run_started(self, run_id: str, workflow: str, *, resumed: bool) -> None:
        if _run_log.isEnabledFor(_INFO):
            what = "resumed after a restart (recovery)" if resumed else "started"
            _run_log.info(
                "run %s of %s %s",
                run_id,
                workflow,
                what,
                extra={"run_id": run_id, "workflow": workflow},
            )

    def run_finished(
        self, run_id: str, workflow: str, status: str, error: ErrorInfo | None
    ) -> None:
        level = _INFO if error is None else _WARNING
        if _run_log.isEnabledFor(level):
            extra = {"run_id": run_id, "workflow": workflow, "status": status}
            if error is None:
                _run_log.log(level, "run %s of %s %s", run_id, workflow, status, extra=extra)
            else:
                _run_log.log(
                    level,
                    "run %s of %s %s: %s: %s",
                    run_id,
                    workflow,
                    status,
                    error.type,
                    error.message,
                    extra=extra,
                )

    def run_stopped(self, run_id: str, workflow: str) -> None:
        if _run_log.isEnabledFor(_INFO):
            _run_log.info(
                "run %s of %s stopped unfinished; it resumes when a runtime opens the "
                "journal again",
                run_id,
                workflow,
                extra={"run_id": run_id, "workflow": workflow},
            )

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        extra = {"run_id": run_id, "step_id": step_id, "attempt": attempt}
        if retry_in is not None:
            if _step_log.isEnabledFor(_INFO):
                # The traceback of an attempt that will be retried only at DEBUG:
                # a flaky call retried as designed is one line, not a page.
                _step_log.info(
                    "run %s step %s attempt %d failed (%s: %s); retrying in %.3g s",
                    run_id,
                    step_id,
                    attempt,
                    type(error).__name__,
                    error,
                    retry_in,
                    exc_info=error if _step_log.isEnabledFor(_DEBUG) else None,
                    extra=extra,
                )
        elif _step_log.isEnabledFor(_WARNING):
            _step_log.warning(
                "run %s step %s attempt %d failed (%s: %s); giving up, no retries left",
                run_id,
                step_id,
                attempt,
                type(error).__name__,
                error,
                exc_info=error,
                extra=extra,
            )

    def heartbeat_timeout(self, run_id: str, step_id: str, attempt: int, timeout: float) -> None:
        if _step_log.isEnabledFor(_INFO):
            _step_log.info(
                "run %s step %s attempt %d sent no heartbeat for %.3g s; cancelling it",
                run_id,
                step_id,
                attempt,
                timeout,
                extra={"run_id": run_id, "step_id": step_id, "attempt": attempt},
            )

    def journal_failed(self, run_id: str, error: BaseException) -> None:
        if _journal_log.isEnabledFor(_ERROR):
            _journal_log.error(
                "the journal failed under run %s (%s: %s); the runtime stops",
                run_id,
                type(error).__name__,
                error,
                exc_info=error,
                extra={"run_id": run_id},
            )


#: The one every runtime includes (it holds no state).
LOGGING = LoggingInstrument()
