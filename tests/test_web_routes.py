"""actorflow.web in a user's application: mounted under a prefix, and sse() in their own routes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from test_web import echo, serving

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
