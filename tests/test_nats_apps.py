"""NATSBroker behind the applications: ``actorflow logs --live`` and the web app's live route.

The run executes in a runtime that writes a SQLite journal and publishes on
NATS; the follower is another process (the command line) or another runtime
that only reads the journal (as a second web worker would).
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from _sse import events

import actorflow as af
import actorflow.web

pytestmark = pytest.mark.timeout(60)

_go: dict[str, anyio.Event] = {}


@pytest.fixture(autouse=True)
def _fresh_go() -> None:
    _go.clear()


@af.step
async def nats_ticks(ctx: af.StepContext, _: None) -> None:
    """Publish ticks until the test says go (the follower is then known to listen)."""
    go = _go.setdefault(ctx.run_id, anyio.Event())
    while not go.is_set():
        await ctx.put_stream("tick")
        with anyio.move_on_after(0.02):
            await go.wait()


@af.workflow
async def nats_app_run(ctx: af.WorkflowContext, words: list[str]) -> int:
    await ctx.step(nats_ticks, None)
    for word in words:
        await ctx.put_stream({"word": word})
    return len(words)


async def _serve(asgi_app: object, *, task_status: anyio.abc.TaskStatus[int]) -> None:
    await af.web.serve(asgi_app, port=0, ready=task_status.started)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_logs_live_follows_a_run_of_another_process_until_it_ends(
    nats_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db, broker=af.NATSBroker(nats_url)) as rt:
        run = f"cli-live-{uuid.uuid4().hex[:12]}"  # unique on a shared server
        handle = await rt.start(nats_app_run, ["a", "b", "c"], run_id=run)
        argv = [sys.executable, "-m", "actorflow", "logs", run]
        argv += ["--live", "--nats", nats_url, "--json", "--db", str(db)]
        lines: list[dict[str, object]] = []
        with anyio.fail_after(30):
            async with await anyio.open_process(argv) as proc:
                assert proc.stdout is not None
                buffered = b""
                async for chunk in proc.stdout:
                    buffered += chunk
                    *complete, buffered = buffered.split(b"\n")
                    lines += [json.loads(line) for line in complete]
                    if lines:
                        _go.setdefault(run, anyio.Event()).set()
                assert await proc.wait() == 0
            await handle.result()
    words = [line["data"] for line in lines if line["step_id"] == "main"]
    assert words == [{"word": "a"}, {"word": "b"}, {"word": "c"}]
    assert [line["seq"] for line in lines if line["step_id"] == "main"] == [1, 2, 3]
    ticks = [line for line in lines if line["step_id"] == "nats_ticks"]
    assert ticks
    assert all(t["data"] == "tick" for t in ticks)
    seqs = [t["seq"] for t in ticks]
    assert seqs == sorted(seqs)


async def test_logs_live_without_a_server_url_says_how_to_give_one(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db):
        pass
    result = await anyio.run_process(
        [sys.executable, "-m", "actorflow", "logs", "no-url", "--live", "--db", str(db)],
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert b"--nats" in result.stderr
    assert b"Traceback" not in result.stderr


async def test_the_live_route_of_another_worker_follows_the_run(
    nats_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    async with af.Runtime(db, broker=af.NATSBroker(nats_url)) as executing:
        run = f"web-live-{uuid.uuid4().hex[:12]}"  # unique on a shared server
        await executing.start(nats_app_run, ["x", "y"], run_id=run)
        reader = af.SQLiteJournal(db, readonly=True)
        async with (
            af.Runtime(reader, broker=af.NATSBroker(nats_url)) as worker,
            anyio.create_task_group() as tg,
        ):
            port = await tg.start(_serve, af.web.app(worker))
            got = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                with anyio.fail_after(30):
                    async with client.stream("GET", f"/runs/{run}/live") as response:
                        assert response.status_code == 200
                        async for ev in events(response):
                            got.append(ev)
                            if ev.event == "message":
                                _go.setdefault(run, anyio.Event()).set()
            tg.cancel_scope.cancel()
    messages = [ev.json() for ev in got if ev.event == "message"]
    assert [m["data"] for m in messages if m["step_id"] == "main"] == [
        {"word": "x"},
        {"word": "y"},
    ]
    assert got[-1].event == "end"
    assert got[-1].json()["status"] == "COMPLETED"


@pytest.mark.slow
async def test_serve_with_nats_follows_a_run_that_another_process_executes(
    nats_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    run = f"serve-live-{uuid.uuid4().hex[:12]}"
    async with af.Runtime(db, broker=af.NATSBroker(nats_url)) as executing:
        await executing.start(nats_app_run, ["p", "q"], run_id=run)
        argv = [sys.executable, "-m", "actorflow", "serve", "--db", str(db), "--port", "0"]
        argv += ["--nats", nats_url]
        got = []
        with anyio.fail_after(30):
            async with await anyio.open_process(argv) as server:
                assert server.stdout is not None
                first = b""
                async for chunk in server.stdout:
                    first += chunk
                    if b"\n" in first:
                        break
                line = first.decode().splitlines()[0]
                assert "through NATS" in line, line
                base = line.split()[1]
                async with (
                    httpx.AsyncClient(base_url=base) as client,
                    client.stream("GET", f"/runs/{run}/live") as response,
                ):
                    assert response.status_code == 200
                    async for ev in events(response):
                        got.append(ev)
                        if ev.event == "message":
                            _go.setdefault(run, anyio.Event()).set()
                server.send_signal(signal.SIGINT)
                assert await server.wait() == 130
    messages = [ev.json() for ev in got if ev.event == "message"]
    assert [m["data"] for m in messages if m["step_id"] == "main"] == [{"word": "p"}, {"word": "q"}]
    assert got[-1].event == "end"


async def test_a_remote_subscription_ends_with_the_run_even_without_its_run_end_message(
    nats_url: str, tmp_path: Path
) -> None:
    # The executing runtime does not publish on NATS: the journal tells the end.
    db = tmp_path / "runs.db"
    run = f"quiet-{uuid.uuid4().hex[:12]}"
    async with af.Runtime(db) as executing:
        handle = await executing.start(nats_app_run, ["z"], run_id=run)
        reader = af.SQLiteJournal(db, readonly=True)
        async with af.Runtime(reader, broker=af.NATSBroker(nats_url)) as following:
            sub = following.subscribe_run(run)
            # After these, the runtime's own read of the run (queued before
            # them) has seen it running: its end can only come afterwards.
            await following.broker.synchronize()
            assert (await following.status(run)) == af.RunStatus.RUNNING
            _go.setdefault(run, anyio.Event()).set()
            with anyio.fail_after(20):
                assert [m async for m in sub] == []
                assert (await handle.status()) == af.RunStatus.COMPLETED
