"""Shared fixtures: every async test runs on asyncio and on trio.

Tests marked ``virtual_time`` get trio's ``MockClock(autojump_threshold=0)``
on trio, so timeouts, heartbeats and backoff take no real time there; on
asyncio they run with the short real durations the test uses. Use them only
with a MemoryJournal: a clock that jumps while a thread commits would fire
timeouts that real time would not.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if request.param == "trio" and request.node.get_closest_marker("virtual_time"):
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return request.param
