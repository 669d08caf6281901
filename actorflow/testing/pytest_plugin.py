"""pytest fixtures for workflow tests: actorflow_backend, virtual_clock, harness, runtime.

Installed with actorflow, this plugin registers itself (a ``pytest11`` entry
point); without the entry point, add ``pytest_plugins =
["actorflow.testing.pytest_plugin"]`` to your top-level ``conftest.py``. It
needs anyio's pytest plugin (it comes with anyio) and hypothesis (``pip
install 'actorflow[testing]'``).

Run every async test on asyncio and trio in virtual time with, in your
``conftest.py``::

    @pytest.fixture
    def anyio_backend(actorflow_backend):
        return actorflow_backend

Then a test takes ``harness`` (a :class:`~actorflow.testing.Harness` that
crashes nowhere) or ``runtime`` (a :class:`~actorflow.Runtime` over a
MemoryJournal and the test's ``virtual_clock``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

__all__ = ("actorflow_backend", "harness", "runtime", "virtual_clock")


@pytest.fixture(params=["asyncio", "trio"])
def actorflow_backend(request: pytest.FixtureRequest) -> Any:
    """anyio's backend and options for virtual time, once for asyncio and once for trio."""
    from .._eventloop import virtual_time_backend

    return virtual_time_backend(request.param)


@pytest.fixture
def virtual_clock() -> Any:
    """A fresh :class:`~actorflow.testing.VirtualClock`: wall time follows the loop's."""
    from ._clock import VirtualClock

    return VirtualClock()


@pytest.fixture
async def harness(anyio_backend: Any, virtual_clock: Any) -> AsyncIterator[Any]:
    """An open :class:`~actorflow.testing.Harness` with no crash planned, on ``virtual_clock``."""
    from ._harness import Harness

    async with Harness(clock=virtual_clock) as h:
        yield h


@pytest.fixture
async def runtime(anyio_backend: Any, virtual_clock: Any) -> AsyncIterator[Any]:
    """An open :class:`~actorflow.Runtime` over a new MemoryJournal, on ``virtual_clock``."""
    from .._journals._memory import MemoryJournal
    from .._runtime import Runtime

    async with Runtime(MemoryJournal(), clock=virtual_clock) as rt:
        yield rt
