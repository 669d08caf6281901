"""Run management over HTTP: GET /runs (filters, paging), a run's steps, cancel, send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_web import echo, site

import actorflow as af
import actorflow.web

pytestmark = pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "manage.db"


@af.workflow(name="manage_waiter")
async def waiter(ctx: af.WorkflowContext, topic: str) -> Any:
    return await ctx.recv(topic)


@af.step(name="manage_flaky", retries=2, backoff=af.Backoff(initial=0.001, jitter=0.0))
async def flaky(ctx: af.StepContext, times: int) -> int:
    if ctx.attempt <= times:
        raise ConnectionError(f"attempt {ctx.attempt} refused")
    return ctx.attempt


@af.workflow(name="manage_retrying")
async def retrying(ctx: af.WorkflowContext, times: int) -> int:
    await ctx.set_event("progress", {"stage": "fetching"})
    return await ctx.step(flaky, times)


async def test_get_runs_lists_newest_first_with_filters_and_paging(db: Path) -> None:
    async with site(db) as s:
        for i in range(5):
            await s.rt.run(echo, f"e{i}", run_id=f"echo-{i}")
        await s.rt.start(waiter, "go", run_id="waiting")
        page = (await s.client.get("/runs")).json()
        assert [r["run_id"] for r in page["runs"]] == [
            "waiting", "echo-4", "echo-3", "echo-2", "echo-1", "echo-0",
        ]  # fmt: skip
        assert page["next_cursor"] is None
        first = page["runs"][1]
        assert first["workflow"] == "web_echo"
        assert first["status"] == "COMPLETED"
        assert first["finished_at"] >= first["started_at"]
        assert first["error"] is None
        assert page["now"] >= first["finished_at"]

        seen: list[str] = []
        cursor = ""
        while True:
            got = await s.client.get(
                "/runs", params={"workflow": "web_echo", "limit": 2, "cursor": cursor}
            )
            assert got.status_code == 200, got.text
            body = got.json()
            seen += [r["run_id"] for r in body["runs"]]
            assert len(body["runs"]) <= 2
            if body["next_cursor"] is None:
                break
            cursor = body["next_cursor"]
        assert seen == [f"echo-{i}" for i in range(4, -1, -1)]

        running = (await s.client.get("/runs", params={"status": "running"})).json()
        assert [r["run_id"] for r in running["runs"]] == ["waiting"]
        for params in ({"status": "nope"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "99"}):
            bad = await s.client.get("/runs", params=params)
            assert bad.status_code == 400, params
            assert bad.json()["error"]["type"] == "ValidationError"


async def test_steps_show_attempts_retries_events_and_tracebacks(db: Path) -> None:
    async with site(db) as s:
        ok = await s.rt.start(retrying, 1)
        assert await ok.result() == 2
        failed = await s.rt.start(retrying, 5)
        with pytest.raises(af.RunFailed):
            await failed.result()
        body = (await s.client.get(f"/runs/{ok.run_id}/steps")).json()
        (step,) = body["steps"]
        assert step["step_id"] == "manage_flaky"
        assert step["status"] == "COMPLETED"
        assert [a["outcome"] for a in step["attempts"]] == ["failed", "ok"]
        error = step["attempts"][0]["error"]
        assert error["type"] == "ConnectionError"
        assert error["message"] == "attempt 1 refused"
        assert "Traceback" in error["traceback"]
        assert body["events"] == {"progress": {"stage": "fetching"}}
        assert body["error"] is None
        assert body["mermaid"] is None
        assert body["run"]["status"] == "COMPLETED"

        body = (await s.client.get(f"/runs/{failed.run_id}/steps")).json()
        (step,) = body["steps"]
        assert step["status"] == "FAILED"
        assert [a["outcome"] for a in step["attempts"]] == ["failed"] * 3
        assert step["gave_up"]["type"] == "ConnectionError"
        assert body["error"]["type"] == "actorflow.StepFailed"
        assert "Traceback" in body["error"]["traceback"]

        missing = await s.client.get("/runs/nope/steps")
        assert missing.status_code == 404


async def test_cancel_and_send_change_runs_when_the_app_allows_it(db: Path) -> None:
    async with site(db) as s:
        assert (await s.client.get("/runs")).json()["manage"] is True
        a = await s.rt.start(waiter, "go", run_id="to-cancel")
        b = await s.rt.start(waiter, "go", run_id="to-send")
        cancelled = await s.client.post("/runs/to-cancel/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {"run_id": "to-cancel", "status": "CANCELLED"}
        assert await a.status() is af.RunStatus.CANCELLED

        sent = await s.client.post(
            "/runs/to-send/send", json={"value": {"ok": [1, 2]}, "topic": "go"}
        )
        assert sent.status_code == 202, sent.text
        assert await b.result() == {"ok": [1, 2]}

        late = await s.client.post("/runs/to-send/send", json={"value": 1, "topic": "go"})
        assert late.status_code == 409
        assert late.json()["error"]["type"] == "RunFinished"
        for path, kwargs, status in [
            ("/runs/nope/cancel", {}, 404),
            ("/runs/nope/send", {"json": {"value": 1}}, 404),
            ("/runs/to-send/send", {"json": {"valu": 1}}, 400),
            ("/runs/to-send/send", {"json": {"value": 1, "topic": "a b"}}, 400),
            ("/runs/to-send/send", {"content": b"value=1", "headers": {
                "content-type": "application/x-www-form-urlencoded"}}, 415),
            ("/runs/to-send/cancel", {"headers": {"origin": "https://evil.example"}}, 403),
        ]:  # fmt: skip
            response = await s.client.post(path, **kwargs)
            assert response.status_code == status, (path, response.text)


async def test_a_read_only_app_refuses_cancel_and_send(db: Path) -> None:
    async with site(db, workflows=[]) as s:
        assert (await s.client.get("/runs")).json()["manage"] is False
        handle = await s.rt.start(waiter, "go", run_id="stays")
        for path, kwargs in [("/runs/stays/cancel", {}), ("/runs/stays/send", {"json": {}})]:
            refused = await s.client.post(path, **kwargs)
            assert refused.status_code == 403, refused.text
            assert "manage=True" in refused.json()["error"]["message"]
        assert await handle.status() is af.RunStatus.RUNNING
        await handle.cancel()
    async with site(db, workflows=[], manage=True) as s:
        assert (await s.client.get("/runs")).json()["manage"] is True


def test_manage_must_be_a_bool() -> None:
    with pytest.raises(af.ValidationError, match="manage must be"):
        af.web.app(af.Runtime(), manage="yes")  # type: ignore[arg-type]


async def test_paging_a_status_filter_neither_repeats_nor_skips_while_runs_end(db: Path) -> None:
    async with site(db) as s:
        for name in ("w1", "w2", "w3"):
            await s.rt.start(waiter, "go", run_id=name)
        first = (await s.client.get("/runs", params={"status": "RUNNING", "limit": 1})).json()
        assert [r["run_id"] for r in first["runs"]] == ["w3"]
        await s.rt.send("w1", "done", topic="go")  # an older run leaves the filter
        assert await s.rt.handle("w1").result() == "done"
        rest = await s.client.get(
            "/runs", params={"status": "RUNNING", "limit": 5, "cursor": first["next_cursor"]}
        )
        assert [r["run_id"] for r in rest.json()["runs"]] == ["w2"]
        assert rest.json()["next_cursor"] is None
        for name in ("w2", "w3"):
            await s.rt.cancel(name)
