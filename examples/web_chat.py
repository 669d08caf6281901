"""A chat page that streams a workflow's tokens to the browser, and survives a server restart.

Run it with ``python examples/web_chat.py`` and open http://127.0.0.1:8000/.
Type a prompt and press Start: the page starts the ``chat`` workflow
(``POST /workflows/chat``) and shows its ``tokens`` stream as it is written
(``GET /runs/{id}/streams/tokens``, Server-Sent Events).

Stop the server mid-answer (Ctrl-C, or kill it) and start it again: the run
resumes from the journal (``chat.db``), and the page's EventSource reconnects
with ``Last-Event-ID``, so it gets the rest of the stream with nothing lost and
nothing twice. The interrupted step runs again as attempt 2; the page shows
each step's latest attempt, so the answer is not doubled either.

Options: ``--db PATH`` (default ``chat.db``), ``--port N`` (default 8000; 0
picks a free one), ``--pace SECONDS`` between tokens (default 0.05). Runs on
asyncio with uvicorn; ``--backend trio`` runs on trio with hypercorn.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import anyio

import actorflow as af
import actorflow.web

PACE = 0.05


def answer_for(prompt: str) -> str:
    """What the stand-in model answers: deterministic, so a rerun writes the same text."""
    return (
        f"You asked: {prompt.strip()!r}. Durable streams keep every token in the journal, "
        "so a reader that reconnects, or starts late, still gets the whole answer, "
        "in order and exactly once."
    )


async def fake_llm(prompt: str) -> AsyncIterator[str]:
    """Stand-in for a model: yields the answer word by word, at a model's pace."""
    for i, word in enumerate(answer_for(prompt).split(" ")):
        await anyio.sleep(PACE)
        yield word if i == 0 else " " + word


@af.step(retries=3)
async def generate(ctx: af.StepContext, prompt: str) -> str:
    parts = []
    async for token in fake_llm(prompt):
        await ctx.write_stream("tokens", token)
        parts.append(token)
    return "".join(parts)


@af.workflow
async def chat(ctx: af.WorkflowContext, prompt: str) -> str:
    answer = await ctx.step(generate, prompt)
    await ctx.close_stream("tokens")
    return answer


async def main(db: str, port: int) -> None:
    async with af.Runtime(db) as rt:

        def ready(port: int) -> None:
            print(f"serving on http://127.0.0.1:{port}/ (journal {db})", flush=True)

        await actorflow.web.serve(actorflow.web.app(rt, workflows=[chat]), port=port, ready=ready)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="chat.db")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pace", type=float, default=PACE)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    PACE = args.pace
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main, args.db, args.port, backend=args.backend)
