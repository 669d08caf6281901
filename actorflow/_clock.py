"""The system clock: wall time from ``time.time()``, loop time from anyio."""

from __future__ import annotations

import time

import anyio
import attrs

__all__ = ("SystemClock",)


@attrs.frozen
class SystemClock:
    """The default :class:`actorflow.abc.Clock`: the machine's wall clock and the loop's clock."""

    def time(self) -> float:
        """Wall time in UNIX seconds (``time.time()``)."""
        return time.time()

    def current_time(self) -> float:
        """The event loop's time (``anyio.current_time()``)."""
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)
