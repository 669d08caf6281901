"""Gates for tests: a step or body calls ``await gate(name)`` and waits there until the
test calls ``open_gate(name)``; ``await wait_reached(name)`` waits until it got there.

tests/conftest.py imports the autouse ``fresh_gates``: each test starts with no gates.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

gates: dict[str, anyio.Event] = {}
reached: dict[str, anyio.Event] = {}


async def gate(name: str) -> None:
    reached.setdefault(name, anyio.Event()).set()
    await gates.setdefault(name, anyio.Event()).wait()


def open_gate(name: str) -> None:
    gates.setdefault(name, anyio.Event()).set()


async def wait_reached(name: str) -> None:
    with anyio.fail_after(10):
        await reached.setdefault(name, anyio.Event()).wait()


@pytest.fixture(autouse=True)
def fresh_gates() -> Iterator[None]:
    gates.clear()
    reached.clear()
    yield
    gates.clear()
    reached.clear()
