"""A workflow process that the crash tests kill with SIGKILL, then restart.

Usage: crash_child.py DB LOG MODE PAUSE BACKEND
  MODE   "first" starts run "crash"; "resume" only reopens the journal.
  PAUSE  "in:K" pauses inside step K before it returns (before its completion
         commits); "after:K" pauses in the body after step K's completion
         committed. The parent kills the process once it prints PAUSED.
Each step execution appends "step I attempt A" to LOG, so the parent can count
executions across both lives.
"""

from __future__ import annotations

import sys

import anyio

import actorflow as af

DB, LOG, MODE, PAUSE, BACKEND = sys.argv[1:6]
STEPS = 5


def log(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\n")


async def pause(where: str) -> None:
    if MODE == "first" and where == PAUSE:
        print(f"PAUSED {where}", flush=True)
        await anyio.sleep_forever()


@af.step
async def square(ctx: af.StepContext, i: int) -> int:
    log(f"step {i} attempt {ctx.attempt}")
    await ctx.write_stream("progress", i)
    await pause(f"in:{i}")
    return i * i


@af.workflow
async def crashy(ctx: af.WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.step(square, i)
        await pause(f"after:{i}")
    await ctx.write_stream("progress", -1)
    return total


async def main() -> None:
    async with af.Runtime(DB) as rt:
        if MODE == "first":
            await rt.start(crashy, STEPS, run_id="crash")
        print(f"RESULT {await rt.handle('crash').result()}", flush=True)


anyio.run(main, backend=BACKEND)
