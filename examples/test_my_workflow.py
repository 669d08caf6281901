"""Property tests of a workflow with actorflow.testing: copy this file next to your own.

    pytest examples/test_my_workflow.py        # or: python examples/test_my_workflow.py

Every test runs on asyncio and on trio, in virtual time (a backoff of minutes
takes no real time), and crashes the runtime in-process at exact journal
appends (SIGKILL semantics: that append and everything after it are lost).
When a property fails, the error carries one line naming the crash plan and
where each life crashed, e.g. ``CrashPlan(5), life 1 crashed at append #5:
StreamWrite(step_id='generate', key='tokens', offset=1, attempt=1)``; hypothesis
shrinks it to the smallest plan that fails.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings

import actorflow as af
from actorflow import testing as aft

pytestmark = pytest.mark.anyio
settings.register_profile("example", max_examples=20, deadline=None)
settings.load_profile("example")


@pytest.fixture
def anyio_backend(actorflow_backend: Any) -> Any:
    """asyncio and trio, both in virtual time (fixture of actorflow's pytest plugin)."""
    return actorflow_backend


# -- the user's own workflows (what you would import from your code) -------------------

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


@af.step(retries=3, backoff=af.Backoff(initial=2.0, factor=3.0, jitter=0.0))
async def generate(ctx: af.StepContext, n: int) -> str:
    for word in WORDS[:n]:
        await ctx.put_stream(word)  # live, token by token
        await ctx.write_stream("tokens", word)  # durable
    return " ".join(WORDS[:n])


@af.workflow
async def chat(ctx: af.WorkflowContext, n: int) -> str:
    answer = await ctx.step(generate, n)
    await ctx.close_stream("tokens")
    return answer


turns = af.ListKey("turns")
g = af.Graph("tiny_agent", keys=[turns], max_supersteps=10)


@g.node(to=["agent", af.END])
async def agent(ctx: af.NodeContext, view: af.View) -> af.Command:
    done = len(view[turns]) >= 3
    return af.Command().append(turns, len(view[turns])).to(af.END if done else "agent")


g.start("agent")
tiny_agent = g.build()


# -- the properties --------------------------------------------------------------------


@given(plan=aft.crash_plans(max_crashes=2, max_append=20), moment=aft.moments(max_appends=20))
async def test_a_reader_reads_every_token_once_in_order(plan: aft.CrashPlan, moment: int) -> None:
    """(a) A reader attaching at any moment reads every token once, whatever the crashes."""
    async with aft.harness(plan) as h:
        run_id = await h.start(chat, 9)
        reader = h.record_stream(run_id, "tokens", after_appends=moment)
        await h.run_until_complete()
    aft.check_exactly_once(reader.entries, WORDS)


async def test_a_slow_subscriber_sees_order_and_every_gap_reported() -> None:
    """(b) A slow drop_oldest subscriber: in order, and dropped_before counts every gap."""
    async with aft.harness() as h:
        run_id = await h.start(chat, 9)
        live = h.record_live(run_id, buffer=2, overflow="drop_oldest", delay=0.5)
        await h.run_until_complete()
    aft.check_live_recording(live)
    aft.check_order(live.values, WORDS)
    assert len(live.values) + live.dropped[1] == len(WORDS)


@given(plan=aft.crash_plans(max_crashes=2, max_append=20))
async def test_the_agent_loop_ends_and_equals_the_reference(plan: aft.CrashPlan) -> None:
    """(c) The agent loop ends within max_supersteps, crashes or not, with the reference state."""
    async with aft.harness(plan) as h:
        final = await h.run(tiny_agent, {"turns": []})
    assert final == {"turns": [0, 1, 2, 3]}


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_failed_attempts_are_tagged_and_backoff_is_exact(failures: int) -> None:
    """(d) A step failing k times: attempt-tagged entries, backoff delays exact in virtual time."""
    with aft.fail_attempts(generate, range(1, failures + 1)):
        async with aft.harness() as h:
            await h.run(chat, 2)
    starts = [r for r in h.trace if isinstance(r, af.records.StepStarted)]
    assert [r.attempt for r in starts] == list(range(1, failures + 2))
    delays = [b.at - a.at for a, b in itertools.pairwise(starts)]
    assert delays == [2.0 * 3.0**i for i in range(failures)]
    entries = [r for r in h.trace if isinstance(r, af.records.StreamWrite)]
    assert [(e.attempt, e.offset) for e in entries] == [(failures + 1, 0), (failures + 1, 1)]


async def test_every_single_and_double_crash_point(anyio_backend: Any) -> None:
    """Exhaustively: every crash point of a small run, once and twice over."""
    async for plan in aft.all_crash_plans(chat, 2, max_crashes=2):
        async with aft.harness(plan) as h:
            assert await h.run(chat, 2) == "the quick", h.report()


if __name__ == "__main__":  # pytest in a fresh process: this one imported hypothesis already
    sys.exit(
        subprocess.call([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"])
    )
