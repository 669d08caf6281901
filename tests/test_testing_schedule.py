"""actorflow.testing schedules: the virtual asyncio loop, settle(), Deadlock, seeded schedules."""

from __future__ import annotations

import math
import time

import anyio
import anyio.lowlevel
import pytest

import actorflow as af
from actorflow.testing import Deadlock, harness, seed_schedule, settle, virtual_time_backend


def test_the_virtual_loop_never_jumps_to_infinity() -> None:
    """A task sleeping forever is no next event: a thread's wait must not jump time to inf."""

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever)
            await anyio.to_thread.run_sync(time.sleep, 0.01)
            now = anyio.current_time()
            tg.cancel_scope.cancel()
        return now

    name, options = virtual_time_backend("asyncio")
    assert math.isfinite(anyio.run(main, backend=name, backend_options=options))


@af.workflow
async def schedule_waits(ctx: af.WorkflowContext, _: None) -> object:
    return await ctx.recv("never")


@af.step
async def schedule_step(ctx: af.StepContext, i: int) -> int:
    order.append(i)
    await anyio.lowlevel.checkpoint()
    order.append(i)
    return i


@af.workflow
async def schedule_gather(ctx: af.WorkflowContext, n: int) -> list[int]:
    return list(await ctx.gather(*[(schedule_step, i) for i in range(n)]))


order: list[int] = []


@pytest.mark.virtual_time
async def test_a_run_that_waits_forever_is_a_deadlock_not_a_hang() -> None:
    # No fail_after here: in virtual time its deadline is the next timer, and comes at once.
    with pytest.raises(Deadlock, match=r"result\('run-1'\)") as info:
        async with harness(deadlock_grace=0.05) as h:
            await h.run(schedule_waits)
    assert "CrashPlan()" in info.value.__notes__[0]


@pytest.mark.virtual_time
async def test_settle_returns_when_every_task_waits_before_time_moves() -> None:
    seen: list[str] = []

    async def sleeper() -> None:
        seen.append("asleep")
        await anyio.sleep(5)
        seen.append("awake")

    async with anyio.create_task_group() as tg:
        before = anyio.current_time()
        tg.start_soon(sleeper)
        await settle()
        assert seen == ["asleep"]
        assert anyio.current_time() == before
    assert seen == ["asleep", "awake"]


def _interleaving(backend: str, schedule: int | None) -> list[int]:
    async def main() -> list[int]:
        order.clear()
        async with harness(schedule=schedule) as h:
            await h.run(schedule_gather, 4)
        return list(order)

    name, options = virtual_time_backend(backend)
    return anyio.run(main, backend=name, backend_options=options)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_schedule_seed_replays_its_interleaving(backend: str) -> None:
    runs = {seed: _interleaving(backend, seed) for seed in range(8)}
    for seed, interleaving in runs.items():
        assert _interleaving(backend, seed) == interleaving
    assert len({tuple(v) for v in runs.values()}) > 1  # seeds do perturb the order


def test_seed_schedule_says_where_it_cannot_seed() -> None:
    async def main() -> tuple[bool, bool]:
        return seed_schedule(3), seed_schedule(None)

    assert anyio.run(main, backend="asyncio") == (False, False)  # a plain asyncio loop
    name, options = virtual_time_backend("asyncio")
    assert anyio.run(main, backend=name, backend_options=options) == (True, True)
