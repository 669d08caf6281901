"""``await rt.open()`` and ``await rt.aclose()``: a runtime opened in one task (a notebook
cell) and closed in another, which ``async with`` cannot do."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import actorflow as af


@af.step(name="oc_double")
async def double(ctx: af.StepContext, n: int) -> int:
    await ctx.write_stream("out", n * 2)
    return n * 2


@af.workflow(name="oc_flow")
async def flow(ctx: af.WorkflowContext, n: int) -> int:
    return await ctx.step(double, n)


@af.workflow(name="oc_waiting")
async def waiting(ctx: af.WorkflowContext, _: None) -> str:
    value: str = await ctx.recv("go")
    return value


async def in_its_own_task(fn: object) -> None:
    """Run ``fn()`` in a task that ends before this returns, as a notebook cell does."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(fn)  # type: ignore[arg-type]


async def test_open_in_one_task_close_in_another(tmp_path: Path) -> None:
    rt = af.Runtime(tmp_path / "nb.db")
    await in_its_own_task(rt.open)  # cell 1
    assert rt.is_open
    assert await rt.run(flow, 21) == 42  # cell 2
    handle = await rt.start(waiting, None, run_id="pending")
    await in_its_own_task(rt.aclose)  # cell 3
    assert not rt.is_open
    # The unfinished run stays in the journal and resumes when the runtime opens again.
    opened = await af.Runtime(tmp_path / "nb.db").open()
    try:
        await opened.send("pending", "done", topic="go")
        assert await opened.handle(handle.run_id).result() == "done"
    finally:
        await opened.aclose()
    await opened.aclose()  # closing again: nothing to do


async def test_open_reports_what_async_with_would(tmp_path: Path) -> None:
    rt = await af.Runtime(tmp_path / "locked.db").open()
    (tmp_path / "not-a-journal.db").write_bytes(b"not a journal" * 100)
    try:
        with pytest.raises(af.JournalError, match="not an actorflow journal"):
            await af.Runtime(tmp_path / "not-a-journal.db").open()
        with pytest.raises(af.ActorflowError, match="open already"):
            await rt.open()
    finally:
        await rt.aclose()
    # The failed opens left nothing behind: the journal opens again.
    again = await af.Runtime(tmp_path / "locked.db").open()
    await again.aclose()


async def test_aclose_refuses_a_runtime_async_with_owns() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.ActorflowError, match="async with"):
            await rt.aclose()
        assert rt.is_open
