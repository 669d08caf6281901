"""Shared fixtures: every async test runs on asyncio and on trio.

Tests marked ``virtual_time`` get trio's ``MockClock(autojump_threshold=0)``
on trio and a virtual-time loop on asyncio (``actorflow.testing.virtual_time_backend``),
so timeouts, heartbeats
and backoff take no real time on either. Use them only with a MemoryJournal: a
clock that jumps while a thread commits would fire timeouts that real time
would not.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from _gates import fresh_gates  # noqa: F401 (autouse: every test starts with no gates)
from _services import nats_server, nats_url  # noqa: F401 (fixtures for tests that need NATS)
from hypothesis import HealthCheck, settings

from actorflow.testing import virtual_time_backend

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("virtual_time"):
        return virtual_time_backend(request.param)
    return request.param
