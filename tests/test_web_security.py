"""actorflow.web against hostile or unusual clients and values (SPEC §9), on both backends.

Who may call the app (Host allow-list, ``auth``, CSRF checks on POST), what
``actorflow serve`` may bind to, bodies nested too deeply, stored values JSON
cannot carry, refused live clients, and clients that stop mid-request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _gates import open_gate, wait_reached
from _sse import read_all
from test_web import site, talker

import actorflow as af
import actorflow.web

pytestmark = pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "web.db"


ODD = {(1, 2): "a tuple key"}  # msgpack stores it; JSON has no tuple keys


@af.step(name="websec_odd_step")
async def odd_step(ctx: af.StepContext, _: None) -> None:
    for value in ("a", ODD, "c"):
        await ctx.write_stream("tokens", value)


@af.workflow(name="websec_odd")
async def odd(ctx: af.WorkflowContext, _: None) -> dict[tuple[int, int], str]:
    await ctx.step(odd_step, None)
    await ctx.close_stream("tokens")
    return ODD


# -- 12: a body nested too deeply ------------------------------------------------------


async def test_a_deeply_nested_body_is_a_400_not_a_500(db: Path) -> None:
    body = b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert len(body) < 65536  # under max_body: decoding is what fails
    async with site(db) as s:
        response = await s.client.post(
            "/workflows/web_echo", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "ValidationError"
        assert "nested too deeply" in error["message"]
        assert await s.rt.list_runs() == []


# -- 13: values msgpack stores but JSON cannot carry --------------------------------------


async def test_an_entry_json_cannot_carry_is_an_entry_error_and_the_stream_goes_on(
    db: Path,
) -> None:
    async with site(db) as s:
        await s.rt.run(odd, run_id="odd")
        url = "/runs/odd/streams/tokens"
        evs = await read_all(s.client, url)
        assert [(ev.event, ev.id) for ev in evs] == [
            ("message", "0"),
            ("entry-error", "1"),
            ("message", "2"),
            ("end", "2"),  # the last event id stays, as browsers keep it
        ]
        assert [evs[0].json()["value"], evs[2].json()["value"]] == ["a", "c"]
        skipped = evs[1].json()
        assert skipped["offset"] == 1
        assert skipped["step_id"] == "websec_odd_step"
        assert "value" not in skipped
        assert skipped["error"]["type"] == "EncodeError"
        assert "stream entry 1" in skipped["error"]["message"]
        # A browser reconnecting after it resumes past it, not at it.
        after = await read_all(s.client, url, {"Last-Event-ID": "1"})
        assert [(ev.event, ev.id) for ev in after] == [("message", "2"), ("end", "2")]

        status = await s.client.get("/runs/odd")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["status"] == "COMPLETED"
        assert body["output"] is None
        assert body["output_error"]["type"] == "EncodeError"
        assert "'odd'" in body["output_error"]["message"]


def test_a_live_message_json_cannot_carry_is_an_entry_error() -> None:
    message = af.Message(subject="stream.r.s", run_id="r", step_id="s", seq=3, data=ODD)
    raw = actorflow.web.encode_event(message).decode()
    event, data = raw.strip().split("\n")
    assert event == "event: entry-error"
    body = json.loads(data.removeprefix("data: "))
    assert body["seq"] == 3
    assert "data" not in body
    assert body["error"]["type"] == "EncodeError"


# -- 14: a refused live client leaves no subscription ----------------------------------


async def test_refused_live_clients_leave_no_subscription(db: Path) -> None:
    async with site(db, max_clients=1) as s:
        await s.rt.start(talker, 1, run_id="busy")
        await wait_reached("busy")
        async with (
            s.new_client() as first,
            first.stream("GET", "/runs/busy/live") as response,
        ):
            assert response.status_code == 200
            subscriptions = s.rt.broker.statistics().subscriptions
            for _ in range(50):
                refused = await s.client.get("/runs/busy/live")
                assert refused.status_code == 503
                assert refused.json()["error"]["type"] == "TooManyClients"
            assert s.rt.broker.statistics().subscriptions == subscriptions
        open_gate("busy")
        await s.rt.handle("busy").result()
