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


async def resumable_runs(
    services: RunServices, *, skip: Collection[str] = (), only: str | None = None
) -> list[RunActor]:
    """An actor for every unfinished run whose workflow is registered, oldest first.

    With ``only``, for that run alone (if it is unfinished and registered).

    A run whose history cannot be read (a damaged journal) is logged and left
    as it is, so that one damaged run does not keep every other from resuming.
    """
    journal = services.journal
    workflows = registered_workflows()
    actors = []
    if only is None:
        infos = await journal.list_runs(RunStatus.PENDING)
        infos += await journal.list_runs(RunStatus.RUNNING)
    else:
        one = await journal.get_run(only)
        infos = [] if one is None or one.status.is_terminal else [one]
    for info in infos:
        wf = workflows.get(info.workflow)
        if wf is None or info.run_id in skip:
            if wf is None and only is not None:
                _log.error("run %r of workflow %r is not registered here", only, info.workflow)
            continue
        try:
            replay = fold(await journal.load_history(info.run_id))
        except JournalError as exc:
            _log.error("run %r is not resumed: %s", info.run_id, exc)
            continue
        actors.append(RunActor(services, info.run_id, wf, info.input, replay, resumed=True))
    return actors
