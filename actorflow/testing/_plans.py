"""Enumerating crash points: every single and double crash of a small run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._registry import Workflow
from ._crash import CrashPlan
from ._harness import Harness

__all__ = ("Scenario", "all_crash_plans", "appends_per_life", "crash_points")

_NO_CRASH = CrashPlan()

Scenario = Callable[[Harness], Awaitable[object]]
"""What a test does with a harness: ``async def scenario(h): await h.run(wf, x)``."""


def _scenario(
    workflow: Workflow[Any, Any] | str | None, input: Any, scenario: Scenario | None
) -> Scenario:
    if scenario is not None:
        return scenario
    if workflow is None:
        raise TypeError("pass a workflow (and its input) or scenario=")

    async def run(h: Harness) -> object:
        await h.start(workflow, input)
        return await h.run_until_complete()

    return run


async def appends_per_life(
    scenario: Scenario, plan: CrashPlan = _NO_CRASH, **harness: Any
) -> list[int]:
    """Run ``scenario`` in a :class:`Harness` with ``plan``; return how many appends each life made.

    A life that crashed counts the append it crashed at.
    """
    async with Harness(plan, **harness) as h:
        await scenario(h)
        await h.run_until_complete()
    return [life.journal.appends for life in h.lives]


async def crash_points(
    workflow: Workflow[Any, Any] | str | None = None,
    input: Any = None,
    *,
    scenario: Scenario | None = None,
    plan: CrashPlan = _NO_CRASH,
    **harness: Any,
) -> int:
    """How many appends the life after ``plan``'s crashes makes: its possible crash points."""
    counts = await appends_per_life(_scenario(workflow, input, scenario), plan, **harness)
    life = len(plan.points)
    return counts[life] if life < len(counts) else 0


async def all_crash_plans(
    workflow: Workflow[Any, Any] | str | None = None,
    input: Any = None,
    *,
    scenario: Scenario | None = None,
    max_crashes: int = 2,
    **harness: Any,
) -> AsyncIterator[CrashPlan]:
    """Yield every plan of 1 to ``max_crashes`` crashes of a run, each at every possible append.

    ``async for plan in all_crash_plans(wf, x, max_crashes=2)``: the plans
    crash the first life at each of its appends, and (for two crashes) the
    second life at each of its appends after that first crash, and so on.
    The run (or ``scenario``) is executed once per plan with fewer than
    ``max_crashes`` crashes to count the appends of the next life.

    Args:
        workflow: the workflow to start (or pass ``scenario=``).
        input: its input.
        scenario: an ``async def scenario(h: Harness)`` that drives the run instead.
        max_crashes: the longest plan.
        harness: further :class:`Harness` arguments (``downtime=``, ...).
    """
    run = _scenario(workflow, input, scenario)

    async def expand(prefix: tuple[int, ...]) -> AsyncIterator[CrashPlan]:
        counts = await appends_per_life(run, CrashPlan(*prefix), **harness)
        n = counts[len(prefix)] if len(prefix) < len(counts) else 0
        for k in range(1, n + 1):
            points = (*prefix, k)
            yield CrashPlan(*points)
            if len(points) < max_crashes:
                async for plan in expand(points):
                    yield plan

    async for plan in expand(()):
        yield plan
