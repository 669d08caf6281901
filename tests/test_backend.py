"""The backend shim: loop-thread callbacks on asyncio and trio."""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel
import pytest

from actorflow._eventloop import current_call_here, current_call_soon


async def test_call_here_runs_callbacks_in_order_after_the_caller_yields() -> None:
    call = current_call_here()
    seen: list[int] = []
    for i in range(5):
        call(seen.append, i)
    assert seen == []  # never inside the call
    await anyio.lowlevel.checkpoint()
    await anyio.lowlevel.checkpoint()
    assert seen == [0, 1, 2, 3, 4]
    call(seen.append, 5)  # and again once it ran dry
    await anyio.lowlevel.checkpoint()
    await anyio.lowlevel.checkpoint()
    assert seen[-1] == 5


async def test_call_here_is_one_runner_per_run() -> None:
    assert current_call_here() == current_call_here()


async def test_a_failing_callback_is_logged_and_the_next_ones_still_run(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    if anyio_backend_name == "asyncio":
        pytest.skip("asyncio's loop logs a failing call_soon callback itself")
    call = current_call_here()
    seen: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="actorflow"):
        call(boom)
        call(seen.append, "after")
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
    assert seen == ["after"]
    assert "boom" in caplog.text


def test_outside_an_event_loop_both_refuse() -> None:
    for fn in (current_call_here, current_call_soon):
        with pytest.raises(RuntimeError, match="asyncio or trio"):
            fn()
