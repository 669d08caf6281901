"""Recovery: the unfinished runs of a journal, ready to resume as actors."""

from __future__ import annotations

import logging
from collections.abc import Collection

from ._exceptions import JournalError
from ._history import fold
from ._registry import registered_workflows
from ._run import RunActor, RunServices
from .abc import RunStatus

__all__ = ("resumable_runs",)

_log = logging.getLogger("actorflow.recovery")


async def resumable_runs(services: RunServices, *, skip: Collection[str]) -> list[RunActor]:
    """An actor for every unfinished run whose workflow is registered, oldest first.

    A run whose history cannot be read (a damaged journal) is logged and left
    as it is, so that one damaged run does not keep every other from resuming.
    """
    journal = services.journal
    workflows = registered_workflows()
    actors = []
    for status in (RunStatus.PENDING, RunStatus.RUNNING):
        for info in await journal.list_runs(status):
            wf = workflows.get(info.workflow)
            if wf is None or info.run_id in skip:
                continue
            try:
                replay = fold(await journal.load_history(info.run_id))
            except JournalError as exc:
                _log.error("run %r is not resumed: %s", info.run_id, exc)
                continue
            actors.append(RunActor(services, info.run_id, wf, info.input, replay, resumed=True))
    return actors
