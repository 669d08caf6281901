"""A journal that crashes at its k-th append: SIGKILL semantics, in-process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from ..records import Record
from ._wrapper import JournalWrapper

__all__ = ("CrashPlan", "CrashingJournal", "SimulatedCrash", "as_plan", "describe_record")

_SALIENT = ("step_id", "name", "key", "offset", "topic", "status", "attempt", "attempts")


def describe_record(record: Record) -> str:
    """A short, stable description of a record: ``StepCheckpoint(attempt=1)``."""
    fields = [
        f"{name}={getattr(record, name)!r}"
        for name in _SALIENT
        if getattr(record, name, None) is not None
    ]
    return f"{type(record).__name__}({', '.join(fields)})"


class SimulatedCrash(BaseException):
    """The process "died" at a journal append (raised by :class:`CrashingJournal`).

    A BaseException, like the SIGKILL it stands for: ``except Exception`` in
    workflow code does not catch it. Once raised, every later append and
    commit wait of the same journal raises it too, so no ``finally`` block and
    no shielded shutdown path writes anything, and nothing waits for a commit
    that will never come. A :class:`~actorflow.testing.Harness` catches it and
    starts the next life.

    Attributes:
        point: the crash point (``"crashed at append #5: StepCheckpoint(attempt=1)"``).
    """

    def __init__(self, point: str) -> None:
        super().__init__(point)
        self.point = point


@attrs.define(eq=False)
class CrashingJournal(JournalWrapper):
    """A :class:`~actorflow.abc.Journal` over ``inner`` that "dies" at append number ``crash_at``.

    Appends before number ``crash_at`` (counted from 1, in this wrapper's life)
    go to ``inner``; that append and every one after it are lost, as if the
    process had been killed just before the write reached the disk. The
    wrapper calls ``on_crash(point)`` once, then raises :class:`SimulatedCrash`
    from that append and from every later append or commit wait. Reads keep
    working (they show the committed prefix). ``crash_at=None`` never crashes:
    it only counts appends and keeps the ``trace``.

    Open a new wrapper over the same ``inner`` for the next life.

    Args:
        inner: the journal that survives the crash.
        crash_at: the append number (from 1) that is lost, or ``None``.
        on_crash: called once, synchronously, with the crash point description.
        on_append: called with every record that reached ``inner``.
    """

    crash_at: int | None = None
    on_crash: Callable[[str], object] | None = None
    on_append: Callable[[Record], object] | None = None
    #: Appends so far in this life (lost ones included).
    appends: int = attrs.field(default=0, init=False)
    #: The crash point once crashed, else ``None``.
    crashed: str | None = attrs.field(default=None, init=False)
    # Tickets of ``inner`` at or past this one were never written.
    _lost_from: int | None = attrs.field(default=None, init=False)
    _last_ticket: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if self.crash_at is not None and self.crash_at < 1:
            raise ValueError(f"crash_at counts appends from 1, not {self.crash_at!r}")

    def append(self, record: Record) -> int:
        """Pass ``record`` on, or crash.

        Raises:
            SimulatedCrash: this is append number ``crash_at``, or a later one.
        """
        self.appends += 1
        if self.crashed is None and self.appends == self.crash_at:
            self.crashed = f"crashed at append #{self.appends}: {describe_record(record)}"
            self._lost_from = max(self._last_ticket, self.inner.committed) + 1
            if self.on_crash is not None:
                self.on_crash(self.crashed)
        if self.crashed is not None:
            raise SimulatedCrash(self.crashed)
        ticket = self._last_ticket = self.inner.append(record)
        if self.on_append is not None:
            self.on_append(record)
        return ticket

    def crash(self, reason: str | None = None) -> None:
        """Crash now, between appends: what was appended stays, nothing more is written.

        Calls ``on_crash`` as an append crash does; a no-op once crashed.
        """
        if self.crashed is not None:
            return
        self.crashed = reason or f"crashed after append #{self.appends}"
        self._lost_from = max(self._last_ticket, self.inner.committed) + 1
        if self.on_crash is not None:
            self.on_crash(self.crashed)

    def _check(self, ticket: int) -> None:
        if self.crashed is not None and self._lost_from is not None and ticket >= self._lost_from:
            raise SimulatedCrash(self.crashed)

    async def wait_committed(self, ticket: int) -> None:
        """As ``inner``; a ticket that the crash lost raises :class:`SimulatedCrash`."""
        self._check(ticket)
        await self.inner.wait_committed(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """As ``inner``; after the crash, raises :class:`SimulatedCrash` (no commit will come)."""
        if self.crashed is not None:
            raise SimulatedCrash(self.crashed)
        return await self.inner.wait_for_commit(after)


@attrs.frozen(repr=False, init=False)
class CrashPlan:
    """Where each life crashes: ``CrashPlan(5, 3)``: life 1 at its 5th append, life 2 at its 3rd.

    Lives past the plan run without a crash. ``CrashPlan()`` never crashes.

    Attributes:
        points: the append number (from 1) at which each life crashes.
    """

    points: tuple[int, ...] = ()

    def __init__(self, *points: int) -> None:
        for point in points:
            if not isinstance(point, int) or point < 1:
                raise ValueError(f"crash points count appends from 1, not {point!r}")
        self.__attrs_init__(tuple(points))

    def __repr__(self) -> str:
        return f"CrashPlan({', '.join(map(str, self.points))})"

    def crash_at(self, life: int) -> int | None:
        """The crash point of life number ``life`` (from 1), or ``None``."""
        return self.points[life - 1] if life <= len(self.points) else None


def as_plan(plan: CrashPlan | Sequence[int]) -> CrashPlan:
    """``plan`` as a :class:`CrashPlan` (a tuple of append numbers is one)."""
    return plan if isinstance(plan, CrashPlan) else CrashPlan(*plan)
