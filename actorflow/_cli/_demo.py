"""``actorflow demo``: a simulated LLM workflow that streams tokens live and durably."""

from __future__ import annotations

import argparse
import shlex
from typing import TextIO

import anyio
import msgspec

from .._context import StepContext, WorkflowContext
from .._registry import step, workflow
from .._runtime import Runtime
from ._reading import reading, stream_entries
from ._terminal import Style

__all__ = ("ANSWER", "DemoRequest", "demo", "demo_chat", "fake_llm")

ANSWER = (
    "Durable workflows keep their promises: every step is journaled, every token is "
    "streamed live and written to disk, and a crash only costs the step that was running."
)


class DemoRequest(msgspec.Struct, frozen=True):
    """The demo's input: a prompt, and how many seconds to wait between tokens."""

    prompt: str
    pace: float = 0.03


async def fake_llm(prompt: str, delay: float = 0.02) -> list[str]:
    """A deterministic stand-in for a model: the answer, split into word tokens."""
    await anyio.sleep(delay)
    return [word + " " for word in ANSWER.split()]


@step(retries=2, heartbeat_timeout=10.0)
async def generate(ctx: StepContext, request: DemoRequest) -> str:
    """Stream the answer token by token, live and durably, heartbeating as it goes."""
    parts: list[str] = []
    for token in await fake_llm(request.prompt):
        await ctx.put_stream(token)
        await ctx.write_stream("tokens", token)
        ctx.heartbeat()
        parts.append(token)
        await anyio.sleep(request.pace)
    return "".join(parts).strip()


@step
async def count_words(ctx: StepContext, text: str) -> dict[str, int]:
    """A second step, so the journal shows a multi-step run."""
    return {"words": len(text.split()), "characters": len(text)}


@workflow(name="demo_chat")
async def demo_chat(ctx: WorkflowContext, request: DemoRequest) -> dict[str, object]:
    """Generate an answer for ``request.prompt`` and report its size."""
    answer = await ctx.step(generate, request)
    await ctx.close_stream("tokens")
    stats = await ctx.step(count_words, answer)
    return {"prompt": request.prompt, "answer": answer, **stats}


async def demo(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    db = args.db
    cli = f"actorflow --db {shlex.quote(db)}"
    async with Runtime(db) as rt:
        handle = await rt.start(demo_chat, DemoRequest(args.prompt, args.pace))
        run_id = handle.run_id
        out.write(f"{style.paint('run', 'dim')}      {style.paint(run_id, 'bold')}\n")
        out.write(f"{style.paint('journal', 'dim')}  {db}\n")
        out.write(f"{style.paint('follow', 'dim')}   {cli} logs {run_id} --tail\n\n")
        out.write(style.paint("live (put_stream):", "bold") + "\n  ")
        out.flush()
        async with handle.subscribe() as live:
            async for message in live:
                out.write(str(message.data))
                out.flush()
        result = await handle.result()
    # The runtime is closed: what follows comes back from the file alone, through a
    # read-only journal, the way `actorflow logs` reads it from another process.
    out.write("\n\n" + style.paint("replayed from the journal file (write_stream):", "bold"))
    out.write("\n  ")
    async with reading(db) as journal:
        async for _, page in stream_entries(journal, run_id, key="tokens"):
            out.write("".join(str(e.value) for e in page))
    out.write(
        f"\n\n{style.paint('result', 'dim')}   {result['words']} words, "
        f"{result['characters']} characters, journaled in {db}\n\n"
        f"{style.paint('next', 'bold')}\n"
        f"  {cli} show {run_id}\n"
        f"  {cli} logs {run_id} --tail\n"
        f"  {cli} runs\n"
        f"  {style.paint('a slower run to tail from another shell:', 'dim')} "
        f"{cli} demo --pace 0.5\n"
    )
