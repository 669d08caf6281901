"""actorflow.testing.RuntimeStateMachine: a user's machine with built-in crash and time rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import actorflow as af
from actorflow.testing import Deadlock, RuntimeStateMachine


@af.workflow
async def machine_inbox(ctx: af.WorkflowContext, count: int) -> list[Any]:
    got = []
    for _ in range(count):
        got.append(await ctx.recv())
        await ctx.write_stream("got", got[-1])
        await ctx.sleep(30)
    return got


class InboxMachine(RuntimeStateMachine):
    """Messages sent to a run that sleeps between receives arrive once, in order, across crashes."""

    @initialize()
    def start(self) -> None:
        self.sent: list[int] = []
        self.run_id = self.run(lambda h: h.start(machine_inbox, 5))

    @precondition(lambda self: len(self.sent) < 5)
    @rule(value=st.integers(-1000, 1000))
    def send(self, value: int) -> None:
        self.run(lambda h: h.send(self.run_id, value))
        self.sent.append(value)

    @invariant()
    def received_in_order_once(self) -> None:
        async def read(h: Any) -> tuple[list[Any], Any]:
            page = await h.journal.read_stream(self.run_id, "got")
            return [e.value for e in page.entries], await h.journal.get_run(self.run_id)

        got, info = self.run(read)
        assert got == self.sent[: len(got)]  # once each, in order, whatever crashed
        if info.status is af.RunStatus.COMPLETED:
            assert got == self.sent


InboxMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=20, deadline=None)
TestInboxAsyncio = InboxMachine.TestCase


class InboxMachineTrio(InboxMachine):
    backend = "trio"


TestInboxTrio = InboxMachineTrio.TestCase


class DowntimeMachine(InboxMachine):
    """With downtime between lives, a crash and restart still completes within its rule."""

    harness_options = {"downtime": 120.0}  # noqa: RUF012 - a class setting, as hypothesis' own


DowntimeMachine.TestCase.settings = settings(max_examples=5, stateful_step_count=10, deadline=None)
TestDowntime = DowntimeMachine.TestCase


@af.workflow
async def machine_waits(ctx: af.WorkflowContext, _: None) -> object:
    return await ctx.recv("never")


class BrokenMachine(RuntimeStateMachine):
    """A machine whose rule awaits a run that never ends: a Deadlock, reported, not a hang."""

    harness_options = {"deadlock_grace": 0.05}  # noqa: RUF012 - a class setting

    @initialize()
    def wait_forever(self) -> None:
        self.run(lambda h: h.run(machine_waits))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_failing_machine_reports_and_tears_down(backend: str) -> None:
    machine = type("Broken", (BrokenMachine,), {"backend": backend})
    with pytest.raises(Deadlock, match="result"):
        run_state_machine_as_test(
            machine, settings=settings(max_examples=2, deadline=None, database=None)
        )
