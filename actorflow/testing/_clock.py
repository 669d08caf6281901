"""A virtual clock: wall time that follows the event loop's virtual time, across lives."""

from __future__ import annotations

import anyio
import attrs

from .._eventloop import current_loop_token

__all__ = ("VirtualClock",)


@attrs.define(eq=False)
class VirtualClock:
    """An :class:`actorflow.abc.Clock` whose wall time moves with the loop's (virtual) time.

    Run the runtime in virtual loop time (trio's ``MockClock(autojump_threshold=0)``,
    or asyncio with :func:`virtual_time_backend`), pass ``Runtime(clock=clock)``,
    and a 24-hour durable sleep takes milliseconds. The wall time written into
    records is ``start`` plus the virtual time elapsed, summed over every
    *life*: each new event loop that reads the clock (a restart after a
    crash, in a test) continues from where the previous one stopped, plus the
    downtime given to :meth:`pass_downtime`. So a durable sleep of 3600 s
    interrupted at t=1000 wakes at t=3600 in the next life, as it would in
    production.

    Attributes:
        start: the wall time at which the first life begins (UNIX seconds).
    """

    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z: any fixed point will do
    # Invariant: wall time = loop time + _offset within one life (loop).
    _offset: float | None = attrs.field(default=None, init=False)
    _loop: object | None = attrs.field(default=None, init=False)
    _last: float = attrs.field(default=0.0, init=False)
    _downtime: float = attrs.field(default=0.0, init=False)

    def time(self) -> float:
        """Wall time: ``start`` plus the virtual time of every life, plus downtime."""
        loop_now = anyio.current_time()
        loop = current_loop_token()
        if loop is not self._loop or self._offset is None:
            base = self.start if self._offset is None else self._last
            self._offset = base + self._downtime - loop_now
            self._downtime = 0.0
            self._loop = loop
        self._last = loop_now + self._offset
        return self._last

    def elapsed(self) -> float:
        """Virtual seconds since ``start`` as of the last reading (``time() - start``)."""
        return (self._last if self._offset is not None else self.start) - self.start

    def pass_downtime(self, seconds: float) -> None:
        """Let ``seconds`` pass between this life and the next (the process was down)."""
        if not seconds >= 0:
            raise ValueError(f"downtime must be >= 0 seconds, not {seconds!r}")
        self._downtime += seconds

    def current_time(self) -> float:
        """The loop's time."""
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep``: in virtual loop time it returns at once, time jumped."""
        await anyio.sleep(seconds)
