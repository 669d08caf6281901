"""Live streams through the runtime: put_stream from steps and bodies to subscribers."""

from __future__ import annotations

import anyio
import pytest

import actorflow as af

gate: dict[str, anyio.Event] = {}


@af.step
async def speak(ctx: af.StepContext, words: list[str]) -> int:
    if "go" in gate:
        await gate["go"].wait()
    for w in words:
        await ctx.put_stream(w)
    return len(words)


@af.workflow
async def talk(ctx: af.WorkflowContext, words: list[str]) -> int:
    await ctx.put_stream("hello from main")
    n = await ctx.step(speak, words)
    n += await ctx.step(speak, words)
    return n


@pytest.fixture(autouse=True)
def _gate() -> None:
    gate.clear()


async def test_handle_subscribe_sees_every_step_in_order_and_ends_with_the_run() -> None:
    gate["go"] = anyio.Event()
    async with af.Runtime() as rt:
        handle = await rt.start(talk, ["a", "b", "c"])
        received: list[af.Message] = []
        async with handle.subscribe() as sub:
            gate["go"].set()
            async for message in sub:
                received.append(message)
        assert await handle.result() == 6
    by_step: dict[str, list[af.Message]] = {}
    for m in received:
        by_step.setdefault(m.step_id, []).append(m)
        assert m.run_id == handle.run_id
        assert m.subject == f"stream.{handle.run_id}.{m.step_id}"
    assert [m.data for m in by_step["speak"]] == ["a", "b", "c"]
    assert [m.data for m in by_step["speak-2"]] == ["a", "b", "c"]
    for messages in by_step.values():
        first = messages[0].seq
        assert [m.seq for m in messages] == list(range(first, first + len(messages)))
        assert all(m.dropped_before == 0 for m in messages)


async def test_subscribe_to_one_step() -> None:
    gate["go"] = anyio.Event()
    async with af.Runtime() as rt:
        handle = await rt.start(talk, ["x", "y"])
        async with handle.subscribe("speak-2") as sub:
            gate["go"].set()
            data = [m.data async for m in sub]
        assert data == ["x", "y"]


async def test_runtime_subscribe_with_wildcards_across_runs() -> None:
    async with af.Runtime() as rt:
        async with rt.subscribe("stream.*.main") as sub:
            h1 = await rt.start(talk, [], run_id="one")
            h2 = await rt.start(talk, [], run_id="two")
            await h1.result()
            await h2.result()
            got = {(await sub.__anext__()).run_id, (await sub.__anext__()).run_id}
        assert got == {"one", "two"}


async def test_subscribing_to_a_finished_run_ends_at_once() -> None:
    async with af.Runtime() as rt:
        handle = await rt.start(talk, ["a"])
        await handle.result()
        async with handle.subscribe() as sub:
            assert [m async for m in sub] == []


async def test_cancelling_a_run_ends_its_subscribers() -> None:
    gate["go"] = anyio.Event()  # never set: the step waits forever
    async with af.Runtime() as rt:
        handle = await rt.start(talk, ["a"])
        async with handle.subscribe() as sub, anyio.create_task_group() as tg:
            seen: list[object] = []

            async def consume() -> None:
                seen.extend([m.data async for m in sub])

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            await handle.cancel()
        assert seen in ([], ["hello from main"])


async def test_bad_patterns_and_options() -> None:
    async with af.Runtime() as rt:
        for pattern in ("", "stream..x", "stream.>.x", "a b"):
            with pytest.raises(af.ValidationError):
                rt.subscribe(pattern)
        with pytest.raises(ValueError, match="buffer"):
            rt.subscribe("stream.>", buffer=0)
        with pytest.raises(ValueError, match="overflow"):
            rt.subscribe("stream.>", overflow="sometimes")  # type: ignore[arg-type]


async def test_publishing_with_no_subscriber_is_harmless() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(talk, ["a"] * 100) == 200
