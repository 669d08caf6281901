"""What a run's committed end means to its caller, and the waits on the journal behind it.

Pure functions over the journal's answers, shared by ``Runtime.result``,
``Runtime.get_event`` and everything that waits on a run another process
may execute: they follow the journal (:func:`actorflow._follow.follow`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._codec import decode_value
from ._exceptions import JournalError, RunCancelled, RunFailed, RunFinished, RunNotFound
from ._follow import follow
from ._registry import registered_workflows
from .abc import Journal, RunInfo, RunStatus
from .records import EventSet

__all__ = ("outcome", "wait_event")


def outcome(info: RunInfo) -> Any:
    """The output of an ended run, or the exception its end stands for.

    Raises:
        RunFailed: the workflow raised.
        RunCancelled: the run was cancelled.
        JournalError: the recorded output does not decode (a damaged journal).
    """
    run_id = info.run_id
    if info.status is RunStatus.COMPLETED:
        wf = registered_workflows().get(info.workflow)
        try:
            if info.output is None:
                raise msgspec.DecodeError("a completed run has no output")
            return decode_value(info.output, wf.output_type if wf else Any)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise JournalError(
                f"the journal's output of run {run_id!r} cannot be decoded ({exc}); the "
                "journal is damaged or the workflow's return type changed"
            ) from None
    if info.status is RunStatus.CANCELLED:
        raise RunCancelled(run_id)
    error = info.error
    raise RunFailed(
        run_id,
        error.type if error else "Exception",
        error.message if error else "",
        error.traceback if error else "",
    )


async def wait_event(journal: Journal, run_id: str, key: str) -> Any:
    """Wait until run ``run_id`` has set event ``key``; return its latest value.

    Raises:
        RunNotFound: no such run.
        RunFinished: the run ended without setting ``key``.
    """

    async def look() -> tuple[Any] | None:
        history = await journal.load_history(run_id)
        if history is None:
            raise RunNotFound(run_id)
        for record in reversed(history.records):
            if isinstance(record, EventSet) and record.key == key:
                return (decode_value(record.value),)
        if history.info.status.is_terminal:
            raise RunFinished(
                f"run {run_id!r} ended ({history.info.status.value}) without setting event {key!r}"
            )
        return None

    (value,) = await follow(journal, look)
    return value
