"""Quickstart: a workflow whose step streams tokens live and durably, over a SQLite journal.

    python examples/quickstart.py [journal.db]

The step publishes every token live (put_stream) and appends it to a durable
stream (write_stream); the main task prints the live tokens as they arrive,
then replays the durable stream from the journal, as a reader arriving late
(or after a crash) would.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

import actorflow as af


async def fake_llm(prompt: str) -> AsyncIterator[str]:
    """A deterministic stand-in for a model that streams its answer."""
    for word in f"You asked: {prompt!r}. Here is a streamed answer.".split():
        await anyio.sleep(0.01)
        yield word + " "


@af.step(retries=3, timeout=60.0, heartbeat_timeout=10.0)
async def generate(ctx: af.StepContext, prompt: str) -> str:
    parts = []
    async for token in fake_llm(prompt):
        await ctx.put_stream(token)  # live: to whoever subscribes now
        await ctx.write_stream("tokens", token)  # durable: in the journal
        ctx.heartbeat()
        parts.append(token)
    return "".join(parts).strip()


@af.step
def shout(ctx: af.ThreadStepContext, text: str) -> str:
    """A plain `def` step runs in a worker thread."""
    return text.upper()


@af.workflow
async def chat(ctx: af.WorkflowContext, prompt: str) -> str:
    answer = await ctx.step(generate, prompt)
    await ctx.close_stream("tokens")
    return await ctx.step(shout, answer)


async def main(db: Path) -> None:
    async with af.Runtime(db) as rt:
        handle = await rt.start(chat, "Tell me a joke")
        print("live:    ", end="")
        async with handle.subscribe() as live:
            async for message in live:
                print(message.data, end="", flush=True)
        print("\nresult:  ", await handle.result())
        print("durable: ", end="")
        async for token in handle.read_stream("tokens"):
            print(token, end="")
        print()
        info = await rt.get_run(handle.run_id)  # the journal may hold earlier runs too
        print(f"run {info.run_id} {info.status.value}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "runs.db")
