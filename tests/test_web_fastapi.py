"""FastAPI integration: the README's recipe (examples/fastapi_chat.py) as a user runs it.

The app is made at import time with a runtime that is not open; its lifespan
opens it. Requests go through httpx's ASGITransport, with the lifespan entered
as a server would.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from _sse import SSEvent, events
from starlette.applications import Starlette

import actorflow as af
import actorflow.web

pytest.importorskip("fastapi")

EXAMPLE = Path(__file__).parent.parent / "examples" / "fastapi_chat.py"


def load_example(journal: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import examples/fastapi_chat.py afresh, its journal at ``journal``."""
    monkeypatch.setenv("ACTORFLOW_JOURNAL", str(journal))
    spec = importlib.util.spec_from_file_location("fastapi_chat_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan entered, as a server runs it, and a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def read_events(client: httpx.AsyncClient, url: str, **kw: Any) -> list[SSEvent]:
    async with client.stream("GET", url, **kw) as response:
        assert response.status_code == 200, await response.aread()
        return [ev async for ev in events(response)]


async def test_the_readme_fastapi_app_opens_its_runtime_and_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example(tmp_path / "chat.db", monkeypatch)
    rt: af.Runtime = example.rt
    assert not rt.is_open  # made at import time
    async with served(example.api) as client:
        assert rt.is_open
        started = await client.post("/chat", json={"prompt": "hi"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert await rt.handle(run_id).result() == (
            "You said 'hi'; here is a streamed, durable answer."
        )
        evs = await read_events(client, f"/chat/{run_id}")
        text = "".join(ev.json()["value"] for ev in evs if ev.event == "message")
        assert text == "You said 'hi'; here is a streamed, durable answer."
        assert evs[-1].event == "end"
        # A reconnect with Last-Event-ID gets only the rest, then end.
        rest = await read_events(client, f"/chat/{run_id}", headers={"last-event-id": "5"})
        assert [ev.id for ev in rest if ev.event == "message"] == ["6", "7", "8"]
        assert rest[-1].event == "end"
        # An unknown run is a 404 with the app's JSON error body, not a stream.
        missing = await client.get("/chat/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert missing.json()["error"]["type"] == "RunNotFound"
        # The mounted actorflow app answers from the same runtime.
        status = await client.get(f"/af/runs/{run_id}")
        assert status.json()["status"] == "COMPLETED"
        assert (await client.get("/af/runs/nope")).status_code == 404
    assert not rt.is_open  # closed at shutdown


async def test_the_app_opens_its_runtime_when_served_on_its_own(tmp_path: Path) -> None:
    rt = af.Runtime(tmp_path / "own.db")
    app = actorflow.web.app(rt)
    async with served(app) as client:
        assert rt.is_open
        assert (await client.get("/runs/nope")).status_code == 404
    assert not rt.is_open


async def test_an_app_over_an_open_runtime_leaves_it_open(tmp_path: Path) -> None:
    async with af.Runtime(tmp_path / "open.db") as rt:
        async with served(actorflow.web.app(rt)):
            pass
        assert rt.is_open  # whoever opened it closes it


async def test_requests_before_the_runtime_opens_are_503(tmp_path: Path) -> None:
    rt = af.Runtime(tmp_path / "closed.db")
    app: Starlette = actorflow.web.app(rt)
    transport = httpx.ASGITransport(app=app)  # no lifespan: a mount whose parent forgot it
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        answer = await client.get("/runs/any")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["type"] == "RuntimeNotOpen"
    assert "actorflow.web.lifespan(rt)" in error["message"]


async def test_sse_checks_the_run_only_when_told_which(tmp_path: Path) -> None:
    async with af.Runtime(tmp_path / "x.db") as rt:
        with pytest.raises(af.ValidationError, match="together"):
            actorflow.web.sse(rt.read_stream_entries("r", "k"), runtime=rt)
        await anyio.lowlevel.checkpoint()
