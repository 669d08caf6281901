"""Human in the loop: stream a draft, wait durably for approval, then publish.

    python examples/approval.py [journal.db]

The workflow writes a draft token by token to a durable stream, announces that
it waits (an event), then waits in `ctx.recv("review")` for a human decision.
The wait is durable: kill the process while it waits, reopen the journal, and
the run is still waiting; a decision sent before it asks is kept. Here the
"human" is the main task, which reads the draft and sends an approval.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
import msgspec

import actorflow as af


class Decision(msgspec.Struct):
    approved: bool
    reviewer: str
    note: str = ""


@af.step
async def write_draft(ctx: af.StepContext, topic: str) -> str:
    words = f"Announcing {topic}: faster, safer, and durable by default.".split()
    for word in words:
        await ctx.write_stream("draft", word + " ")
        await anyio.sleep(0.01)
    return " ".join(words)


@af.step
async def publish(ctx: af.StepContext, text: str) -> str:
    return f"published: {text}"


@af.workflow
async def announcement(ctx: af.WorkflowContext, topic: str) -> str:
    draft = await ctx.step(write_draft, topic)
    await ctx.close_stream("draft")
    await ctx.set_event("status", "awaiting review")
    decision = msgspec.convert(await ctx.recv("review", timeout=24 * 3600), Decision)
    await ctx.set_event("status", "approved" if decision.approved else "rejected")
    if not decision.approved:
        return f"rejected by {decision.reviewer}: {decision.note}"
    await ctx.sleep(0.05)  # durable: a restart would not restart it
    return await ctx.step(publish, draft)


async def main(db: Path) -> None:
    async with af.Runtime(db) as rt:
        handle = await rt.start(announcement, "actorflow 0.1")
        print("draft:  ", end="")
        async for token in handle.read_stream("draft"):
            print(token, end="", flush=True)
        print("\nstatus: ", await handle.get_event("status"))
        await handle.send(Decision(approved=True, reviewer="alice"), topic="review")
        print("result: ", await handle.result())
        print("status: ", await handle.get_event("status"))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "runs.db")
