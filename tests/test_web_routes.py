"""actorflow.web in a user's application: mounted under a prefix, and sse() in their own routes."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
from _gates import open_gate, wait_reached
from _sse import events, read_all
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from test_web import echo, serving, writer

import actorflow as af
import actorflow.web

pytestmark = pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "web.db"


@pytest.mark.parametrize("prefix", ["", "/af"])
async def test_the_location_of_a_started_run_resolves_to_its_status(db: Path, prefix: str) -> None:
    async with af.Runtime(db) as rt:
        app = af.web.app(rt, workflows=[echo])
        outer = Starlette(routes=[Mount(prefix, app)]) if prefix else app
        async with (
            serving(outer) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            started = await client.post(f"{prefix}/workflows/web_echo", json={"input": "hi"})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            location = started.headers["location"]
            assert location == f"{prefix}/runs/{run_id}"
            status = await client.get(started.url.join(location))
            assert status.status_code == 200, status.text
            assert status.json()["run_id"] == run_id


async def test_sse_given_the_request_resumes_after_last_event_id_and_ends(db: Path) -> None:
    async with af.Runtime(db) as rt:
        await rt.start(writer, {"values": list(range(6)), "pause": 3}, run_id="mine")
        await wait_reached("mine")  # 3 entries committed, the run waits

        async def tokens(request: Request) -> Response:
            entries = rt.read_stream_entries(request.path_params["run_id"], "tokens")
            return af.web.sse(entries, request=request)

        user_app = Starlette(routes=[Route("/chat/{run_id}", tokens)])
        async with (
            serving(user_app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            async with (
                client.stream("GET", "/chat/mine") as response,
                aclosing(events(response)) as it,
            ):
                first = [await anext(it) for _ in range(2)]
            assert [ev.id for ev in first] == ["0", "1"]
            resumed = client.stream("GET", "/chat/mine", headers={"Last-Event-ID": "1"})
            async with resumed as response, aclosing(events(response)) as it:
                got = [await anext(it)]  # the rest of what is committed
                open_gate("mine")  # the rest is written while we read
                got += [ev async for ev in it]
            assert [(ev.event, ev.json()) for ev in got[-1:]] == [("end", None)]
            assert [ev.json()["offset"] for ev in got[:-1]] == [2, 3, 4, 5]
            whole = await read_all(client, "/chat/mine", {"Last-Event-ID": "not-an-offset"})
            assert [ev.event for ev in whole] == ["message"] * 6 + ["end"]
