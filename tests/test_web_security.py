"""actorflow.web against hostile or unusual clients and values (SPEC §9), on both backends.

Who may call the app (Host allow-list, ``auth``, CSRF checks on POST), what
``actorflow serve`` may bind to, bodies nested too deeply, stored values JSON
cannot carry, refused live clients, and clients that stop mid-request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _gates import open_gate, wait_reached
from _sse import read_all
from starlette.requests import Request
from test_web import echo, site, talker, writer

import actorflow as af
import actorflow.web
from actorflow._cli import main
from actorflow.web._serve import serve_options

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


# -- 15: Host, Origin, content type, auth ------------------------------------------------


async def test_a_host_not_allowed_is_refused_whatever_the_route(db: Path) -> None:
    async with site(db) as s:
        await s.rt.run(writer, {"values": [1]}, run_id="done")
        for path in ("/", "/runs/done", "/runs/done/streams/tokens", "/workflows"):
            response = await s.client.get(path, headers={"host": "evil.example"})
            assert response.status_code == 403, (path, response.text)
            error = response.json()["error"]
            assert error["type"] == "Forbidden"
            assert "evil.example" in error["message"]
        posted = await s.client.post(
            "/workflows/web_echo", json={"input": "x"}, headers={"host": "evil.example:80"}
        )
        assert posted.status_code == 403
        for host in ("localhost", f"localhost:{s.port}", "[::1]:1", "127.0.0.1", "LOCALHOST"):
            response = await s.client.get("/runs/done", headers={"host": host})
            assert response.status_code == 200, (host, response.text)
        assert await s.rt.list_runs() != []
    async with site(db, allowed_hosts=["app.example", "::1", "other.example:8443"]) as s:
        for host, status in (
            ("app.example", 200),
            ("app.example:9000", 200),
            ("[::1]:80", 200),
            ("other.example:8443", 200),
            ("other.example:8444", 403),
            ("127.0.0.1", 403),  # not listed: the defaults are replaced
        ):
            response = await s.client.get("/workflows", headers={"host": host})
            assert response.status_code == status, (host, response.text)
    async with site(db, allowed_hosts=["*"]) as s:
        assert (await s.client.get("/workflows", headers={"host": "x.example"})).status_code == 200


async def test_a_cross_site_post_is_refused_and_a_same_origin_one_accepted(db: Path) -> None:
    async with site(db, allowed_origins=["https://app.example"]) as s:
        own = f"http://127.0.0.1:{s.port}"
        refused = [
            # What a cross-site HTML form can send.
            ({"origin": "http://evil.example", "content-type": "text/plain"}, 403),
            ({"origin": "http://evil.example", "content-type": "application/json"}, 403),
            ({"origin": "null", "content-type": "application/json"}, 403),
            ({"origin": f"http://127.0.0.1:{s.port + 1}", "content-type": "application/json"}, 403),
            # An old browser's form, which sent no Origin.
            ({"content-type": "text/plain"}, 415),
            ({"content-type": "application/x-www-form-urlencoded"}, 415),
            ({"origin": own, "content-type": "multipart/form-data; boundary=x"}, 415),
        ]
        for headers, status in refused:
            response = await s.client.post(
                "/workflows/web_echo", content=b'{"input": "x"}', headers=headers
            )
            assert response.status_code == status, (headers, response.text)
        assert await s.rt.list_runs() == []
        accepted = [
            {"origin": own},
            {"origin": own + "/"},
            {"origin": "https://app.example"},
            {"origin": "HTTPS://APP.EXAMPLE"},
            {},  # not a browser: no Origin
        ]
        for i, headers in enumerate(accepted):
            response = await s.client.post(
                "/workflows/web_echo",
                json={"input": "x", "run_id": f"r{i}"},
                headers={**headers, "content-type": "application/json; charset=utf-8"},
            )
            assert response.status_code == 202, (headers, response.text)


async def test_auth_runs_on_every_request_and_refuses_with_401_or_403(db: Path) -> None:
    seen: list[str] = []

    def auth(request: Request) -> bool:
        seen.append(request.url.path)
        return request.headers.get("x-user") == "me"

    async def async_auth(request: Request) -> None:
        await anyio.lowlevel.checkpoint()
        if request.headers.get("x-user") != "me":
            raise actorflow.web.Forbidden("only 'me' may use this server")

    async with site(db, auth=auth) as s:
        await s.rt.run(writer, {"values": [1]}, run_id="done")
        for path in ("/", "/runs/done", "/runs/done/streams/tokens", "/runs/done/live"):
            refused = await s.client.get(path)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["type"] == "Unauthorized"
            assert (await s.client.get(path, headers={"x-user": "me"})).status_code == 200
        posted = await s.client.post("/workflows/web_echo", json={"input": "x"})
        assert posted.status_code == 401
        assert seen.count("/runs/done/streams/tokens") == 2
        assert seen[-1] == "/workflows/web_echo"
    async with site(db, auth=async_auth) as s:
        refused = await s.client.get("/workflows")
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "type": "Forbidden",
            "message": "only 'me' may use this server",
        }
        assert (await s.client.get("/workflows", headers={"x-user": "me"})).status_code == 200


async def test_a_host_not_allowed_is_refused_before_auth_sees_it(db: Path) -> None:
    seen: list[str] = []

    def auth(request: Request) -> None:
        seen.append(request.url.path)

    async with site(db, auth=auth) as s:
        assert (await s.client.get("/workflows", headers={"host": "evil"})).status_code == 403
        assert seen == []


async def test_bearer_token_accepts_only_its_token(db: Path) -> None:
    async with site(db, auth=actorflow.web.bearer_token("s3cret")) as s:
        for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "s3cret"}):
            response = await s.client.get("/workflows", headers=headers)
            assert response.status_code == 401, headers
            assert "s3cret" not in response.text
        ok = await s.client.get("/workflows", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    for bad in ("", "two words", "tab\t", 7):
        with pytest.raises(af.ValidationError):
            actorflow.web.bearer_token(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"auth": "token"},
        {"allowed_hosts": "localhost"},  # a string, not a list of names
        {"allowed_hosts": [""]},
        {"allowed_origins": "https://app.example"},
        {"allowed_origins": [None]},
    ],
)
async def test_bad_security_options_raise_validation_error(options: dict[str, Any]) -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.ValidationError):
            af.web.app(rt, **options)


# -- 15: what `actorflow serve` may bind to ------------------------------------------------


def test_serve_refuses_a_non_loopback_bind_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACTORFLOW_AUTH_TOKEN", raising=False)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert serve_options(host) == {}
    for host in ("0.0.0.0", "::", "192.168.1.9", "example.com"):
        with pytest.raises(af.ActorflowError, match="--auth-token"):
            serve_options(host)
        options = serve_options(host, "tok")
        assert options["allowed_hosts"] == ("*",)
        assert callable(options["auth"])
    assert set(serve_options("127.0.0.1", "tok")) == {"auth"}
    monkeypatch.setenv("ACTORFLOW_AUTH_TOKEN", "from-env")
    assert set(serve_options("0.0.0.0")) == {"auth", "allowed_hosts"}
    with pytest.raises(af.ValidationError):
        serve_options("0.0.0.0", "")


def test_the_serve_command_refuses_a_public_bind_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACTORFLOW_AUTH_TOKEN", raising=False)
    code = main(["--db", str(tmp_path / "a.db"), "serve", "--host", "0.0.0.0", "--port", "0"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "refusing to serve on '0.0.0.0' without authentication" in err
    assert not (tmp_path / "a.db").exists()


# -- 16: clients that stop mid-request -------------------------------------------------------


async def test_clients_that_stop_mid_request_are_closed_after_idle_timeout() -> None:
    idle = 1.0

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await af.web.serve(app, port=0, ready=task_status.started, idle_timeout=idle)

    async with af.Runtime() as rt:
        app = af.web.app(rt, workflows=[echo])
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            partials = [b"", b"GET /work", b"GET /workflows HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
            streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(3 * 5)]
            closed: list[bool] = []

            async def stop_mid_request(stream: anyio.abc.SocketStream, data: bytes) -> None:
                async with stream:
                    if data:
                        await stream.send(data)
                    try:
                        # Generous bound: the server must close well before it.
                        with anyio.fail_after(idle + 4):
                            while await stream.receive():
                                pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        closed.append(True)

            async with anyio.create_task_group() as clients:
                for i, stream in enumerate(streams):
                    clients.start_soon(stop_mid_request, stream, partials[i % 3])
            assert len(closed) == len(streams)
            # The server still serves, and a whole request is answered as usual.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/workflows")).status_code == 200
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("idle_timeout", [0, -1.0, float("inf"), True, "5"])
async def test_a_bad_idle_timeout_raises_validation_error(idle_timeout: Any) -> None:
    with pytest.raises(af.ValidationError):
        await af.web.serve(lambda: None, port=0, idle_timeout=idle_timeout)


async def test_an_open_stream_is_not_idle(db: Path) -> None:
    # A durable stream waiting on its run for longer than idle_timeout stays open.
    async with af.Runtime(db) as rt:
        app = af.web.app(rt, keepalive=0.3)

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await af.web.serve(app, port=0, ready=task_status.started, idle_timeout=0.2)

        await rt.start(writer, {"values": ["x"], "pause": 1}, run_id="slow")
        await wait_reached("slow")
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
                client.stream("GET", "/runs/slow/streams/tokens") as response,
            ):
                comments = 0
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        comments += 1
                        if comments == 2:  # two keep-alives later: > 2 idle timeouts
                            open_gate("slow")
                    if line.startswith("event: end"):
                        break
                assert comments >= 2
            tg.cancel_scope.cancel()
