"""Schedules: settle(), seeded orders of ready tasks, and Deadlock instead of a hang."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio

from .._eventloop import jump, seconds_to_next_deadline, set_schedule_seed, wait_idle
from .._exceptions import ActorflowError

__all__ = ("Deadlock", "advance", "seed_schedule", "settle", "watch_for_deadlock")


class Deadlock(ActorflowError):
    """Every task waits, no timer is pending, and what a test awaits has not happened.

    Raised by a :class:`~actorflow.testing.Harness` instead of hanging; the
    message names what was awaited.
    """


async def settle() -> None:
    """Return once every other task waits, at the current (virtual) time.

    On actorflow's virtual-time asyncio loop it is exact and polls nothing (the
    loop wakes the caller when no callback is ready, before it moves time);
    on trio it is ``trio.testing.wait_all_tasks_blocked()``. Time does not
    move while a task settles, so a test can look at the state "just before
    the next timer".
    """
    await wait_idle()


async def advance(seconds: float) -> None:
    """Move virtual time forward by ``seconds``, each timer firing at its own time; then settle.

    Meant for runs whose time does not jump by itself
    (``actorflow._eventloop.set_autojump(False)``, as :class:`RuntimeStateMachine`
    sets): the test decides when time passes.
    """
    target = anyio.current_time() + seconds
    while True:
        await settle()
        delay = seconds_to_next_deadline()
        now = anyio.current_time()
        if now + delay > target:
            break
        jump(delay)
    jump(max(0.0, target - anyio.current_time()))
    await settle()


def seed_schedule(seed: int | None) -> bool:
    """Perturb the order in which ready tasks run, reproducibly, from now on (``None``: stop).

    On the virtual-time asyncio loop the ready tasks of each iteration are
    shuffled by ``random.Random(seed)`` (plain callbacks keep their order,
    which asyncio promises); on trio, whose scheduler already shuffles, its
    generator is seeded. The same seed replays the same interleaving;
    hypothesis shrinks seeds towards 0. Returns False where it cannot (an
    asyncio loop that is not the virtual one).
    """
    return set_schedule_seed(seed)


async def watch_for_deadlock(
    progress: Callable[[], object], pending: Callable[[], str | None], grace: float
) -> None:
    """Raise :class:`Deadlock` when the loop stalls while something is awaited.

    Stalled: every task waits, no timer is pending, and for ``grace`` real
    seconds (a worker thread or I/O could still move things) ``progress()``
    has not changed. ``pending()`` names what is awaited, or ``None`` if
    nothing is (then there is no deadlock to report).

    Raises:
        Deadlock: naming what ``pending()`` says.
    """
    while True:
        await wait_idle()
        delay = seconds_to_next_deadline()
        if not math.isinf(delay):
            # Let time move to the next timer (with the watchdog asleep, the loop jumps).
            await anyio.sleep(delay)
            continue
        before = progress()
        await anyio.to_thread.run_sync(time.sleep, grace, abandon_on_cancel=True)
        await wait_idle()
        awaited = pending()
        if awaited and progress() == before and math.isinf(seconds_to_next_deadline()):
            raise Deadlock(
                f"deadlock: every task waits, no timer is pending and nothing happened for "
                f"{grace} s while {awaited} waited; look for a recv() nobody sends to, an "
                "event never set, or a lock never released"
            )
