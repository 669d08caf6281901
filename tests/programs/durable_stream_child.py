"""A runtime in its own process writing durable streams, for the stream crash and reader tests.

Usage: durable_stream_child.py DB BACKEND MODE

  crash  run "crash" (started unless the journal has it): the body writes
         ["body", k] before each of STEPS steps and ["body", STEPS] at the end;
         step k writes ["step", k, i] for i < VALUES to stream "out", a little
         apart, and completes. The parent kills the process with SIGKILL at
         random moments and starts it again on the same file until it prints
         RESULT.
  slow   run "slow": one step writes ["slow", i] for i < VALUES, 10 ms apart,
         while the parent reads the journal from its own process.

It prints ``STARTED`` once the run is committed and ``RESULT <value>`` when the
run has ended.
"""

from __future__ import annotations

import sys

import anyio

import actorflow as af

DB, BACKEND, MODE = sys.argv[1:4]
STEPS = 3
VALUES = 20


@af.step(retries=0)
async def emit(ctx: af.StepContext, k: int) -> int:
    for i in range(VALUES):
        await ctx.write_stream("out", ["step", k, i])
        await anyio.sleep(0.002)
    return k


@af.workflow
async def crashing(ctx: af.WorkflowContext, _: None) -> int:
    total = 0
    for k in range(STEPS):
        await ctx.write_stream("out", ["body", k])
        total += await ctx.step(emit, k)
    await ctx.write_stream("out", ["body", STEPS])
    return total


@af.step
async def trickle(ctx: af.StepContext, n: int) -> int:
    for i in range(n):
        await ctx.write_stream("out", ["slow", i])
        await anyio.sleep(0.01)
    return n


@af.workflow
async def slow(ctx: af.WorkflowContext, n: int) -> int:
    return await ctx.step(trickle, n)


async def main() -> None:
    async with af.Runtime(DB) as rt:
        if MODE == "crash":
            handle = await rt.start(crashing, run_id="crash")  # idempotent across lives
        else:
            handle = await rt.start(slow, VALUES, run_id="slow")
        print("STARTED", flush=True)
        print(f"RESULT {await handle.result()}", flush=True)


anyio.run(main, backend=BACKEND)
