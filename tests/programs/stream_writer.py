"""A runtime in its own process that writes durable streams, for the CLI tests and benchmark.

Usage: stream_writer.py DB MODE [ARGS...]

  stream RUN N DELAY GATE   step ``produce`` writes N entries ``{"i": i, "t": time.time()}``
                            to stream ``tokens`` (and every 10th to ``events``), one every
                            DELAY seconds; after the first half it waits until the file
                            GATE exists (``-``: no gate). Then the run completes.
  idle RUN SECONDS          a step writes "ready" to stream ``status``, then sleeps
                            SECONDS and writes nothing more.
  fail RUN                  step ``flaky`` writes to ``notes`` and fails its first attempt;
                            the body writes a value with control characters, then raises.

It prints ``STARTED <run_id>`` once the start is committed and ``DONE <status>``
when the run has ended. ``ACTORFLOW_BACKEND`` picks the backend (asyncio).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import anyio

import actorflow as af

EVIL = "red \x1b[31malert\x1b[0m\nsecond line\tand a tab"


@af.step
async def produce(ctx: af.StepContext, spec: dict[str, Any]) -> int:
    n: int = spec["n"]
    delay: float = spec["delay"]
    gate: str = spec["gate"]
    for i in range(n):
        if i == n // 2 and gate != "-":
            # Another process creates the gate: there is nothing to wait on but the file.
            while not await anyio.Path(gate).exists():  # noqa: ASYNC110
                await anyio.sleep(0.005)
        await ctx.write_stream("tokens", {"i": i, "t": time.time()})
        if i % 10 == 0:
            await ctx.write_stream("events", f"event {i // 10}")
        await anyio.sleep(delay)
    return n


@af.workflow
async def streamer(ctx: af.WorkflowContext, spec: dict[str, Any]) -> int:
    n = await ctx.step(produce, spec)
    await ctx.close_stream("tokens")
    return n


@af.step
async def doze(ctx: af.StepContext, seconds: float) -> None:
    await ctx.write_stream("status", "ready")
    await anyio.sleep(seconds)


@af.workflow
async def idler(ctx: af.WorkflowContext, seconds: float) -> None:
    await ctx.step(doze, seconds)


@af.step(retries=1, backoff=af.Backoff(initial=0.01))
async def flaky(ctx: af.StepContext, _: None) -> str:
    await ctx.write_stream("notes", f"attempt {ctx.attempt}")
    await ctx.flush()
    if ctx.attempt == 1:
        raise ConnectionError("the model hung up")
    return "ok"


@af.workflow
async def broken(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.step(flaky, None)
    await ctx.write_stream("notes", EVIL)
    raise ValueError("the answer was not valid JSON")


async def main(db: str, mode: str, run_id: str, args: list[str]) -> None:
    async with af.Runtime(db) as rt:
        handle: af.RunHandle[Any]
        if mode == "stream":
            spec = {"n": int(args[0]), "delay": float(args[1]), "gate": args[2]}
            handle = await rt.start(streamer, spec, run_id=run_id)
        elif mode == "idle":
            handle = await rt.start(idler, float(args[0]), run_id=run_id)
        else:
            handle = await rt.start(broken, None, run_id=run_id)
        print(f"STARTED {handle.run_id}", flush=True)
        with contextlib.suppress(af.RunFailed):
            await handle.result()
        print(f"DONE {(await handle.status()).value}", flush=True)


if __name__ == "__main__":
    DB, MODE, RUN = sys.argv[1:4]
    anyio.run(
        main, DB, MODE, RUN, sys.argv[4:], backend=os.environ.get("ACTORFLOW_BACKEND", "asyncio")
    )
