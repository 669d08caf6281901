"""The workflow behind ``actorflow demo``: a simulated LLM that streams tokens."""

from __future__ import annotations

import anyio
import msgspec

from ._context import StepContext, WorkflowContext
from ._registry import step, workflow

__all__ = ("ANSWER", "DemoRequest", "demo_chat", "fake_llm")

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
