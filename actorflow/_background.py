"""A runtime opened without ``async with``: ``await rt.open()`` ... ``await rt.aclose()``.

A runtime owns a task group, and an anyio task group must be left in the task
that entered it. A notebook opens a runtime in one cell and closes it in
another, each cell its own task: so :func:`open_runtime` enters the runtime
in a background task of its own (``async with rt``, waiting for a signal),
and :func:`close_runtime` signals it and waits for it to leave.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import anyio
import attrs

from ._eventloop import spawn_detached
from ._exceptions import ActorflowError

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ("close_runtime", "open_runtime")


@attrs.define(eq=False)
class _Owner:
    """The background task holding a runtime open, and how to stop it."""

    started: anyio.Event = attrs.field(factory=anyio.Event)
    stop: anyio.Event = attrs.field(factory=anyio.Event)
    done: anyio.Event = attrs.field(factory=anyio.Event)
    error: Exception | None = None

    async def own(self, rt: Runtime) -> None:
        try:
            async with rt:
                self.started.set()
                await self.stop.wait()
        except Exception as exc:  # handed to whoever waits: open() or aclose()
            self.error = exc
        finally:
            self.started.set()
            self.done.set()

    async def close(self) -> None:
        self.stop.set()
        with anyio.CancelScope(shield=True):
            await self.done.wait()


# Invariant: a runtime is here from open_runtime() until close_runtime(), in
# the event loop's thread.
_owners: weakref.WeakKeyDictionary[Runtime, _Owner] = weakref.WeakKeyDictionary()


async def open_runtime(rt: Runtime) -> None:
    """Open ``rt`` in a background task; :func:`close_runtime` closes it, from any task.

    Raises:
        ActorflowError: ``rt`` is open already.
        JournalLocked, JournalError: as ``async with rt`` would.
    """
    if rt.is_open or rt in _owners:
        raise ActorflowError(f"{rt!r} is open already; close it before opening it again")
    owner = _owners[rt] = _Owner()
    spawn_detached(lambda: owner.own(rt))
    try:
        await owner.started.wait()
    except BaseException:  # cancelled while opening: leave nothing behind
        del _owners[rt]
        await owner.close()
        raise
    if owner.error is not None:
        del _owners[rt]
        raise owner.error


async def close_runtime(rt: Runtime) -> None:
    """Close a runtime opened with :func:`open_runtime` (a no-op if it is not open).

    Raises:
        ActorflowError: ``rt`` was opened with ``async with``, which closes it.
    """
    owner = _owners.pop(rt, None)
    if owner is None:
        if rt.is_open:
            raise ActorflowError(
                f"{rt!r} was opened with `async with`; it closes when that block ends"
            )
        return
    await owner.close()
    if owner.error is not None:
        raise owner.error
