"""Durable streams: an LLM-style step streams tokens into the journal; a late reader replays them.

Run it with ``python examples/durable_tokens.py``. It writes ``tokens.db`` in
the current directory. The step writes each token with ``ctx.write_stream``:
the entries are in the journal, so a reader that starts late (here, after the
run has ended) still gets every token, exactly once, in order, with the step
and attempt that wrote it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import anyio

import actorflow as af

ANSWER = "Durable streams survive crashes, so a late reader still gets every token."


async def fake_llm(prompt: str) -> AsyncIterator[str]:
    """Stand-in for a model: yields the answer word by word, at a model's pace."""
    for i, word in enumerate(ANSWER.split(" ")):
        await anyio.sleep(random.uniform(0.005, 0.02))
        yield word if i == 0 else " " + word


@af.step(retries=2)
async def generate(ctx: af.StepContext, prompt: str) -> str:
    parts = []
    async for token in fake_llm(prompt):
        await ctx.write_stream("tokens", token)  # durable: committed in batches
        parts.append(token)
    return "".join(parts)  # completion waits until every token is committed


@af.workflow
async def chat(ctx: af.WorkflowContext, prompt: str) -> str:
    answer = await ctx.step(generate, prompt)
    await ctx.close_stream("tokens")  # readers stop after the last token
    return answer


async def main() -> None:
    async with af.Runtime("tokens.db") as rt:
        handle = await rt.start(chat, "What are durable streams for?")

        # A live reader, started with the run: replays what is committed, then follows.
        print("live: ", end="", flush=True)
        async for token in handle.read_stream("tokens"):
            print(token, end="", flush=True)
        print()
        answer = await handle.result()

        # A second reader, started after the run ended: replays everything from the journal.
        entries = [e async for e in rt.read_stream_entries(handle.run_id, "tokens")]
        replayed = "".join(str(e.value) for e in entries)
        assert replayed == answer
        first, last = entries[0], entries[-1]
        print(f"first entry: offset {first.offset}, step {first.step_id!r}, ", end="")
        print(f"attempt {first.attempt}")
        print(f"late reader replayed {len(entries)} tokens (offsets {first.offset}..{last.offset})")
        print(f"status: {(await handle.status()).value}")
        tail = [v async for v in handle.read_stream("tokens", from_offset=len(entries) - 3)]
        print(f"the last three, from offset {len(entries) - 3}: {''.join(map(str, tail))!r}")


if __name__ == "__main__":
    anyio.run(main)
