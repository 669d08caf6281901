"""The workflow behind ``actorflow demo``, and the worker process that runs it.

A worker is ``python -m actorflow --db DB demo --worker RUN ...``: it opens the
journal for writing (a :class:`~actorflow.Runtime`), which resumes the run
``RUN`` if an earlier worker left it unfinished, or starts it. It prints
nothing; the ``actorflow demo`` that started it reads what it writes from the
journal file (see :mod:`._demo_command`).

Importing this module registers ``demo_chat``. The ``actorflow demo`` process
never imports it: its own runtime, which cancels earlier demos' unfinished
runs, must not resume them.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

import anyio
import msgspec

from .._context import StepContext, WorkflowContext
from .._registry import step, workflow
from .._runtime import Runtime

__all__ = ("ANSWER", "DemoRequest", "demo_chat", "fake_llm", "work")

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


async def work(args: argparse.Namespace) -> None:
    """Run (or resume) the demo run ``args.worker`` to its end, in this process.

    The worker dies when its standard input closes: the ``actorflow demo``
    that started it holds the other end, so a worker never outlives it, even
    when that one is killed.
    """
    threading.Thread(target=_exit_when_orphaned, name="actorflow demo worker", daemon=True).start()
    async with Runtime(args.db) as rt:
        # Opening the runtime resumed the run if an earlier worker left it
        # unfinished; starting an existing run id just returns its handle.
        handle = await rt.start(demo_chat, DemoRequest(args.prompt, args.pace), run_id=args.worker)
        await handle.result()


def _exit_when_orphaned() -> None:
    sys.stdin.buffer.read()
    # As abrupt as a crash: the run stays unfinished, and the next demo cancels it.
    os._exit(1)
