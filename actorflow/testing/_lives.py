"""One life of a harness (a runtime from its opening to its crash), and what a crash leaves."""

from __future__ import annotations

import anyio
import attrs

from .._exceptions import ActorflowError
from .._runtime import Runtime
from ..abc import LiveSubscription
from ._crash import CrashingJournal, SimulatedCrash
from ._schedule import Deadlock

__all__ = ("Closing", "Life", "is_crash_fallout", "only_deadlock")


@attrs.define(eq=False)
class Life:
    """One runtime's life in a :class:`Harness`: from its opening to its crash or close.

    Attributes:
        index: its number, from 1.
        journal: the crashing wrapper it writes through.
        runtime: its runtime while it is open, else ``None``.
        crashed: its crash point (``"crashed at append #5: ..."``), or ``None``.
        guards: cancel scopes of the harness operations running in this life
            (a crash cancels them).
        subscriptions: the live subscriptions of the harness's recorders in this life.
    """

    index: int
    journal: CrashingJournal
    runtime: Runtime | None = None
    crashed: str | None = None
    _scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope, repr=False)
    guards: set[anyio.CancelScope] = attrs.field(factory=set, repr=False)
    subscriptions: set[LiveSubscription] = attrs.field(factory=set, repr=False)


class Closing(ActorflowError):
    """The harness is closing: its background readers stop."""


def only_deadlock(group: BaseExceptionGroup[BaseException]) -> Deadlock | None:
    """The Deadlock in ``group`` if everything else in it is cancellation, else None."""
    deadlocks, rest = group.split(Deadlock)
    if deadlocks is None:
        return None
    if rest is not None and not is_crash_fallout(rest):
        return None
    first: BaseException = deadlocks
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, Deadlock) else None


def is_crash_fallout(exc: BaseException) -> bool:
    """Whether ``exc`` is only what a crash leaves (itself, cancellation, a closed runtime)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_crash_fallout(e) for e in exc.exceptions)
    return isinstance(exc, SimulatedCrash | ActorflowError | anyio.get_cancelled_exc_class())
