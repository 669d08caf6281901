"""Static checks of the public API's types: run by ``mypy --strict`` in CI, never executed.

``assert_type`` fails mypy if a decorator or call loses a type; a line marked
``# type: ignore[...]`` must stay an error (strict mode reports an unused ignore).
"""

from __future__ import annotations

from typing import Any, assert_type

import actorflow as af


@af.step
async def bare(ctx: af.StepContext, n: int) -> str:
    return str(n)


@af.step(retries=3, timeout=10.0, backoff=af.Backoff(initial=0.5))
async def with_options(ctx: af.StepContext, n: int) -> list[str]:
    return [str(n)]


@af.step
def in_a_thread(ctx: af.ThreadStepContext, text: str) -> int:
    return len(text)


@af.step(name="threaded", retries=1)
def in_a_thread_with_options(ctx: af.ThreadStepContext, text: str) -> bytes:
    return text.encode()


@af.step
async def no_input(ctx: af.StepContext, _: None) -> float:
    return 1.0


@af.workflow
async def chat(ctx: af.WorkflowContext, prompt: str) -> str:
    assert_type(await ctx.step(bare, 1), str)
    assert_type(await ctx.step(with_options, 2), list[str])
    assert_type(await ctx.step(in_a_thread, prompt), int)
    assert_type(await ctx.step(in_a_thread_with_options, prompt), bytes)
    assert_type(await ctx.step(no_input), float)
    await ctx.step(bare, "not an int")  # type: ignore[misc]  # the input type does not match
    return prompt


@af.workflow(name="named")
async def named(ctx: af.WorkflowContext, n: int) -> int:
    return n


assert_type(bare, af.Step[int, str])
assert_type(with_options, af.Step[int, list[str]])
assert_type(in_a_thread, af.Step[str, int])
assert_type(in_a_thread_with_options, af.Step[str, bytes])
assert_type(chat, af.Workflow[str, str])
assert_type(named, af.Workflow[int, int])


async def runs(rt: af.Runtime) -> None:
    assert_type(await rt.run(chat, "hi"), str)
    assert_type(await rt.run(named, 1), int)
    assert_type(await rt.run("chat", "hi"), Any)
    handle = await rt.start(chat, "hi")
    assert_type(handle, af.RunHandle[str])
    assert_type(await handle.result(), str)
    await rt.run(chat, 42)  # type: ignore[misc]  # the input type does not match
    await rt.start(named, "one")  # type: ignore[misc]  # the input type does not match


messages = af.ListKey("messages")
status = af.Key("status", default="")
graph = af.Graph("typed_graph", keys=[messages, status])


@graph.node(to=[af.END])
async def answer(ctx: af.NodeContext, view: af.View) -> af.Command:
    return af.Command().append(messages, "hi").to(af.END)


@graph.node
async def other(ctx: af.NodeContext, view: af.View) -> af.Command | None:
    return None


assert_type(graph.start("answer").build(), af.CompiledGraph)


async def streams(rt: af.Runtime, handle: af.RunHandle[str]) -> None:
    async for value in handle.read_stream("tokens"):
        assert_type(value, object)
    async for token in handle.read_stream("tokens", type=str):
        assert_type(token, str)
    async for item in handle.read_stream("tokens", type=str, restarts=True):
        assert_type(item, str | af.StreamRestart)
    async for entry in rt.read_stream_entries("run", "tokens"):
        assert_type(entry, af.StreamEntry)
    async for marked in rt.read_stream_entries("run", "tokens", restarts=True):
        assert_type(marked, af.StreamEntry | af.StreamRestart)
    async for number in rt.read_stream("run", "counts", type=int):
        assert_type(number, int)
