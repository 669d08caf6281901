"""Shared fixtures: every async test runs on asyncio and on trio.

Tests marked ``virtual_time`` get trio's ``MockClock(autojump_threshold=0)``
on trio and :class:`VirtualTimeEventLoop` on asyncio, so timeouts, heartbeats
and backoff take no real time on either. Use them only with a MemoryJournal: a
clock that jumps while a thread commits would fire timeouts that real time
would not.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from _gates import fresh_gates  # noqa: F401 (autouse: every test starts with no gates)
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock jumps to the next timer whenever nothing is ready.

    The asyncio twin of trio's ``MockClock(autojump_threshold=0)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        ready: Any = getattr(self, "_ready")  # noqa: B009 - private asyncio state, tests only
        scheduled: Any = getattr(self, "_scheduled")  # noqa: B009
        if not ready and not getattr(self, "_stopping"):  # noqa: B009
            live = [h.when() for h in scheduled if not h.cancelled()]
            if live:
                self._virtual_now = max(self._virtual_now, min(live))
        super()._run_once()  # type: ignore[misc]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("virtual_time"):
        if request.param == "trio":
            from trio.testing import MockClock

            return ("trio", {"clock": MockClock(autojump_threshold=0)})
        return ("asyncio", {"loop_factory": VirtualTimeEventLoop})
    return request.param
