"""One worker of an app on a shared SQLite journal: it writes (and executes) or waits to.

    python worker_app.py DB BACKEND

Prints ``READY writer`` or ``READY waiting``, then serves until killed. When a
waiting worker becomes the writer it prints ``WRITER``.
"""

from __future__ import annotations

import sys

import anyio

import actorflow as af


@af.step(retries=5)
async def mp_tokens(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.write_stream("tokens", i)
        await ctx.flush()
        await anyio.sleep(0.005)
    return n


@af.workflow
async def mp_flow(ctx: af.WorkflowContext, n: int) -> int:
    total = await ctx.step(mp_tokens, n)
    await ctx.write_stream("done", total)
    return total


async def main(db: str) -> None:
    async with af.Runtime(db) as rt:
        print("READY", "waiting" if rt.journal.readonly else "writer", flush=True)
        if rt.journal.readonly:
            while rt.journal.readonly:  # noqa: ASYNC110 - a test program; no hook says it
                await anyio.sleep(0.01)
            print("WRITER", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend=sys.argv[2])
