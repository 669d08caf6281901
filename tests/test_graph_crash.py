"""A graph run killed with SIGKILL mid-superstep resumes after its last completed superstep."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import anyio
import pytest
from _processes import expect_line, sigkill, spawn

import actorflow as af

CHILD = "graph_crash_child.py"
SUPERSTEPS = {"plan": [0, 3, 6], "left": [1, 4, 7], "right": [1, 4, 7], "join": [2, 5, 8]}


def child(db: Path, log: Path, mode: str, pause: str, backend: str) -> subprocess.Popen[str]:
    return spawn(CHILD, db, log, mode, pause, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("superstep", [0, 1, 4, 8])
def test_sigkill_mid_graph_resumes_without_rerunning_finished_supersteps(
    tmp_path: Path, superstep: int, backend: str
) -> None:
    db, log, pause = tmp_path / "runs.db", tmp_path / "nodes.log", f"in:{superstep}"
    first = child(db, log, "first", pause, backend)
    expect_line(first, f"PAUSED {pause}")
    assert sigkill(first) == -signal.SIGKILL

    second = child(db, log, "resume", pause, backend)
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    reference = child(tmp_path / "unused.db", tmp_path / "ref.log", "reference", "-", backend)
    ref_out, ref_err = reference.communicate(timeout=30)
    assert reference.returncode == 0, ref_err
    assert out.strip() == ref_out.strip()  # same final state as an uninterrupted run
    assert out.startswith("RESULT ")

    runs = Counter(
        (name, int(s)) for name, s, _ in (line.split() for line in log.read_text().splitlines())
    )
    for name, steps in SUPERSTEPS.items():
        for s in steps:
            if s == superstep:
                # the interrupted node runs again; a sibling may not have started yet
                assert runs[(name, s)] in (1, 2), (name, s, runs)
            else:
                assert runs[(name, s)] == 1, (name, s, runs)  # finished: never re-run

    results = anyio.run(read_results, db)
    kinds = [r.node for r in results]
    assert kinds[-1] == af.END
    completions = [(r.node, r.superstep) for r in results if isinstance(r.updates, dict)]
    assert len(completions) == len(set(completions))  # body writes are never repeated
    assert [s for _, s in completions[:-1]] == sorted(s for _, s in completions[:-1])


async def read_results(db: Path) -> list[af.ExecutionResult]:
    async with af.Runtime(af.SQLiteJournal(db)) as rt:
        return [r async for r in crash_graph().stream(rt, run_id="g")]


def crash_graph() -> af.CompiledGraph:
    """The child's graph, for reading its finished run (its nodes never run here)."""
    g = af.Graph(
        "crashgraph",
        keys=[
            af.ListKey("trail"),
            af.Key("total", 0, reducer=lambda a, b: a + b),
            af.Key("rounds", 0),
        ],
    )

    async def never(ctx: af.NodeContext, view: af.View) -> None:
        raise AssertionError("the run has finished; nothing runs")

    for name in ("plan", "left", "right", "join"):
        g.node(never, name=name, to=["left", "right", "plan", af.END])
    g.edge("left", "join").start("plan")
    return g.build()
