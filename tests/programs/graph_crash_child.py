"""A graph run that the graph crash tests kill with SIGKILL, then restart.

Usage: graph_crash_child.py DB LOG MODE PAUSE BACKEND
  MODE   "first" starts run "g"; "resume" only reopens the journal;
         "reference" runs the graph uninterrupted on an in-memory journal.
  PAUSE  "in:S": every node of superstep S pauses before it returns (before its
         step completion commits); the parent kills the process once it prints
         PAUSED.
Each node execution appends "<node> <superstep> <attempt>" to LOG.
"""

from __future__ import annotations

import sys

import anyio

import actorflow as af

DB, LOG, MODE, PAUSE, BACKEND = sys.argv[1:6]
ROUNDS = 3

trail = af.ListKey("trail")
total = af.Key("total", 0, reducer=lambda a, b: a + b)
rounds = af.Key("rounds", 0)
g = af.Graph("crashgraph", keys=[trail, total, rounds])
paused = False


def log(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\n")


async def visit(ctx: af.NodeContext, name: str) -> None:
    global paused
    log(f"{name} {ctx.superstep} {ctx.attempt}")
    ctx.emit(f"{name}@{ctx.superstep}")
    if MODE == "first" and f"in:{ctx.superstep}" == PAUSE:
        if not paused:
            paused = True
            await ctx.flush()  # the emit and the step start are committed
            print(f"PAUSED {PAUSE}", flush=True)
        await anyio.sleep_forever()


@g.node(to=["left", "right"])
async def plan(ctx: af.NodeContext, view: af.View) -> af.Command:
    await visit(ctx, "plan")
    return af.Command().append(trail, "plan").to("left", "right")


@g.node
async def left(ctx: af.NodeContext, view: af.View) -> af.Command:
    await visit(ctx, "left")
    return af.Command().append(trail, "left").set(total, len(view[trail]))


@g.node
async def right(ctx: af.NodeContext, view: af.View) -> af.Command:
    await visit(ctx, "right")
    return af.Command().append(trail, "right").set(total, 10 * len(view[trail]))


@g.node(to=["plan", af.END])
async def join(ctx: af.NodeContext, view: af.View) -> af.Command:
    await visit(ctx, "join")
    done = view[rounds] + 1
    return af.Command().set(rounds, done).to(af.END if done >= ROUNDS else "plan")


g.edge("left", "join").edge("right", "join").start("plan")
graph = g.build()


async def main() -> None:
    journal = af.MemoryJournal() if MODE == "reference" else af.SQLiteJournal(DB)
    async with af.Runtime(journal) as rt:
        if MODE == "resume":
            final = await rt.handle("g").result()
        else:
            final = (await af.last(graph.stream(rt, None, run_id="g"))).output
        print(f"RESULT {sorted(final.items())}", flush=True)


anyio.run(main, backend=BACKEND)
