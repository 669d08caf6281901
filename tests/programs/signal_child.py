"""A run waiting for messages and sleeping durably, killed by the signal crash test.

Usage: signal_child.py DB LIFE BACKEND
  LIFE 1: start run "sig", send m1, print WAITING once m1 is consumed (the run now
          waits for a second message); the parent kills it.
  LIFE 2: send m2, print SLEEPING once the run's durable sleep has begun; killed.
  LIFE 3: print RESULT and the run's output.
"""

from __future__ import annotations

import sys

import anyio

import actorflow as af

DB, LIFE, BACKEND = sys.argv[1:4]
SLEEP = 2.0


@af.workflow
async def approval(ctx: af.WorkflowContext, _: None) -> list[str]:
    first = await ctx.recv("t")
    await ctx.write_stream("got", first)
    second = await ctx.recv("t")
    await ctx.write_stream("got", second)
    await ctx.set_event("phase", "sleeping")
    await ctx.sleep(SLEEP)
    return [first, second]


async def wait_for_entries(rt: af.Runtime, n: int) -> None:
    seen = 0
    async for _ in rt.read_stream("sig", "got"):
        seen += 1
        if seen == n:
            return


async def main() -> None:
    async with af.Runtime(DB) as rt:
        if LIFE == "1":
            handle = await rt.start(approval, None, run_id="sig")
            await handle.send("m1", topic="t")
            await wait_for_entries(rt, 1)
            print("WAITING", flush=True)
            await anyio.sleep_forever()
        elif LIFE == "2":
            await rt.send("sig", "m2", topic="t")
            await rt.handle("sig").get_event("phase")
            print("SLEEPING", flush=True)
            await anyio.sleep_forever()
        else:
            print("RESULT", await rt.handle("sig").result(), flush=True)


anyio.run(main, backend=BACKEND)
