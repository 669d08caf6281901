"""Memory per idle run: 10,000 runs each blocked in ``ctx.recv``.

    python benchmarks/bench_idle.py [--runs 10000] [--backend asyncio|trio]
                                    [--json out.json] [--baseline old.json]

Starts ``--runs`` runs on the in-memory journal, each of which waits in
``ctx.recv()`` for a message that never comes, and measures what they hold:
``tracemalloc``'s traced Python memory per run (everything the runs, their
tasks, cancel scopes, events and journal records allocate), and the growth of
the process's resident set per run. The baseline is the same process before
the runs start. Target: <= 12 KB per idle run (traced).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tracemalloc
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _report import add_report_args, load_baseline, save, table

import actorflow as af


@af.workflow
async def idle(ctx: af.WorkflowContext, _: None) -> object:
    return await ctx.recv()


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


async def _idle_runs(runs: int, traced: bool) -> float:
    """Start ``runs`` idle runs; return the memory they hold (KiB), traced or resident."""
    async with af.Runtime() as rt:
        # Warm up: one run, so that what is made once is not counted per run.
        await rt.start(idle, None)
        await anyio.wait_all_tasks_blocked()
        gc.collect()
        if traced:
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
        rss0 = _rss_kib()
        for _ in range(runs):
            await rt.start(idle, None)
        await anyio.wait_all_tasks_blocked()
        gc.collect()
        if traced:
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            held = sum(s.size_diff for s in after.compare_to(before, "filename")) / 1024
        else:
            held = _rss_kib() - rss0
        for run in await rt.list_runs("RUNNING"):
            rt.cancel_nowait(run.run_id)
    return held


async def measure(runs: int) -> dict[str, float]:
    # RSS first, in a process that has not traced yet (tracing adds its own
    # bookkeeping to every allocation).
    rss = await _idle_runs(runs, traced=False)
    traced = await _idle_runs(runs, traced=True)
    return {"traced KB per idle run": traced / runs, "RSS KB per idle run": rss / runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    add_report_args(parser)
    args = parser.parse_args()
    figures = anyio.run(measure, args.runs, backend=args.backend)
    print(f"{args.runs:,} idle runs on {args.backend}, MemoryJournal")
    print(table(figures, load_baseline(args.baseline), {"traced KB per idle run": ("<=", 12)}))
    save(figures, args.json)


if __name__ == "__main__":
    main()
