"""The one "read what is committed, then wait for the next commit" loop.

Everything that waits on the journal (durable-stream readers, graph streams,
the CLI's tail, ``result()`` and ``get_event()`` of a run another process
executes) has the same shape: look at the committed state; if what you wait
for is not there, wait for the next commit and look again. The subtle part is
the order: ``committed`` is read *before* the look, so a commit that lands
during the look (after its snapshot) moves ``committed`` past what was read
and ends the wait at once. Nothing is missed between a look and the wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ("Commits", "follow")

T = TypeVar("T")


class Commits(Protocol):
    """What :func:`follow` needs of a journal (any :class:`actorflow.abc.Journal` has it)."""

    @property
    def committed(self) -> int: ...

    async def wait_for_commit(self, after: int) -> int: ...


async def follow(journal: Commits, look: Callable[[], Awaitable[T | None]]) -> T:
    """Return the first result of ``look()`` that is not ``None``.

    Between looks it waits for the journal's next commit; a journal that is
    closed meanwhile raises :class:`~actorflow.JournalError` from that wait.
    """
    while True:
        seen = journal.committed
        found = await look()
        if found is not None:
            return found
        await journal.wait_for_commit(seen)
