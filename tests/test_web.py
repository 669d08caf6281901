"""actorflow.web (SPEC §9): a real server on loopback, real HTTP clients, on both backends.

On asyncio ``af.web.serve`` runs uvicorn, on trio hypercorn, so the
``anyio_backend`` parametrization covers both servers. Events are parsed by
``tests/_sse.py``, not by the code under test.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
import sniffio
from _gates import gate, open_gate, wait_reached
from _sse import Comment, Retry, SSEvent, events, lines, parse, read_all
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import actorflow as af
import actorflow.web

pytestmark = pytest.mark.filterwarnings(
    # httpx iterates its response's inner async generators without closing them,
    # so a client that stops reading a stream early (as these tests do on
    # purpose) leaves them to the garbage collector, which trio warns about.
    r"ignore:Async generator 'http(x|core)\.:ResourceWarning"
)

# -- workflows -----------------------------------------------------------------------


@af.step(name="web_emit")
async def emit(ctx: af.StepContext, spec: dict[str, Any]) -> int:
    """Write ``values`` to ``tokens``; wait on the run's gate before value ``pause``."""
    values, pause = spec["values"], spec.get("pause")
    for i, value in enumerate(values):
        if i == pause:
            await ctx.flush()
            await gate(ctx.run_id)
        await ctx.write_stream("tokens", value)
    if pause is not None and pause >= len(values):
        await ctx.flush()
        await gate(ctx.run_id)
    return len(values)


@af.workflow(name="web_writer")
async def writer(ctx: af.WorkflowContext, spec: dict[str, Any]) -> int:
    n: int = await ctx.step(emit, spec)
    await ctx.close_stream("tokens")
    return n


@af.workflow(name="web_failing")
async def failing(ctx: af.WorkflowContext, _: None) -> None:
    await ctx.write_stream("tokens", "one")
    await ctx.write_stream("tokens", "two")
    raise ValueError("the model refused: too spicy")


@af.step(name="web_talk")
async def talk(ctx: af.StepContext, n: int) -> None:
    await gate(ctx.run_id)
    for i in range(n):
        await ctx.put_stream({"i": i})


@af.workflow(name="web_talker")
async def talker(ctx: af.WorkflowContext, n: int) -> None:
    await ctx.step(talk, n)
    await ctx.put_stream("body-done")


@af.workflow(name="web_echo")
async def echo(ctx: af.WorkflowContext, text: str) -> str:
    await ctx.write_stream("tokens", text)
    await ctx.close_stream("tokens")
    return text.upper()


# -- a real server ---------------------------------------------------------------------


@dataclass
class Site:
    rt: af.Runtime
    app: Starlette
    port: int
    client: httpx.AsyncClient

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def clients(self) -> int:
        """The app's count of open SSE streams."""
        api = next(r.endpoint.__self__ for r in self.app.routes if isinstance(r, Route))  # type: ignore[attr-defined]
        return int(api.clients)

    def new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10)


async def _serve(asgi_app: Any, *, task_status: anyio.abc.TaskStatus[int]) -> None:
    await af.web.serve(asgi_app, port=0, ready=task_status.started)


@asynccontextmanager
async def serving(asgi_app: Any) -> AsyncIterator[int]:
    """Serve ``asgi_app`` on a free loopback port until the block ends."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(_serve, asgi_app)
        yield port
        tg.cancel_scope.cancel()


@asynccontextmanager
async def site(journal: af.Journal | Path | None, **options: Any) -> AsyncIterator[Site]:
    """A runtime, ``af.web.app`` over it (allowing ``web_echo``), served, and a client."""
    options.setdefault("workflows", [echo])
    async with af.Runtime(journal) as rt:
        asgi = af.web.app(rt, **options)
        async with serving(asgi) as port:
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
            async with client:
                yield Site(rt, asgi, port, client)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (fail after ``timeout`` seconds)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - state the server changes, no event to wait on
            await anyio.sleep(0.005)


def task_count() -> int:
    """How many tasks this event loop has (trio: the whole task tree)."""
    if sniffio.current_async_library() == "trio":
        import trio

        def walk(task: trio.lowlevel.Task) -> int:
            return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return walk(root)
    return len(asyncio.all_tasks())


def offsets(evs: list[SSEvent]) -> list[int]:
    messages = [ev for ev in evs if ev.event == "message"]
    for ev in messages:
        assert ev.id == str(ev.json()["offset"])
    return [ev.json()["offset"] for ev in messages]


def end_of(evs: list[SSEvent]) -> Any:
    assert evs, "no events"
    assert evs[-1].event == "end", evs[-1]
    assert [ev.event for ev in evs[:-1]] == ["message"] * (len(evs) - 1)
    return evs[-1].json()


async def take(it: AsyncIterator[SSEvent], n: int) -> list[SSEvent]:
    """The next ``n`` events of ``it``."""
    return [await anext(it) for _ in range(n)]


class Chunks:
    """A request body sent in chunks, with no declared length (not a generator: httpx
    may stop reading it when the server answers early)."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk, self.count = chunk, count

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.count:
            raise StopAsyncIteration
        self.count -= 1
        return self.chunk


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "web.db"


# -- the durable stream ------------------------------------------------------------------


async def test_entries_arrive_in_order_with_the_offset_as_id_then_end(db: Path) -> None:
    values = ["Hel", "lo", {"a": [1, 2]}, None, 3.5, "ünï\ncode", *range(40)]
    async with site(db) as s:
        handle = await s.rt.start(writer, {"values": values}, run_id="done")
        await handle.result()
        evs = await read_all(s.client, "/runs/done/streams/tokens")
    assert offsets(evs) == list(range(len(values)))
    assert [ev.json() for ev in evs[:-1]] == [
        {"offset": i, "value": v, "step_id": "web_emit", "attempt": 1} for i, v in enumerate(values)
    ]
    assert end_of(evs) == {"run_id": "done", "status": "COMPLETED", "error": None}


async def test_values_with_unicode_line_separators_stay_on_one_line(db: Path) -> None:
    values = ["a\x85b", "c\u2028d", {"e\u2029": "\r\n\x0b\x0c\x1c"}]
    async with site(db) as s:
        await s.rt.run(writer, {"values": values}, run_id="seps")
        async with s.client.stream("GET", "/runs/seps/streams/tokens") as response:
            raw = await response.aread()
            # What a client that splits lines like str.splitlines() sees.
            split = raw.decode().splitlines()
    assert all(
        line.startswith(("retry: ", "id: ", "data: ", "event: ")) or not line for line in split
    )
    data = [json.loads(line.removeprefix("data: ")) for line in split if line.startswith("data")]
    assert [d["value"] for d in data[:-1]] == values
    assert data[-1]["status"] == "COMPLETED"


async def test_a_stream_opened_before_any_write_follows_the_run_live(db: Path) -> None:
    async with site(db, keepalive=0.05) as s:
        await s.rt.start(writer, {"values": list(range(30)), "pause": 0}, run_id="early")
        await wait_reached("early")  # the run exists and has written nothing
        got: list[SSEvent] = []
        async with s.client.stream("GET", "/runs/early/streams/tokens") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            async with aclosing(parse(lines(response))) as items:
                async for item in items:
                    if isinstance(item, Comment):  # idle and connected: let it write
                        open_gate("early")
                    elif isinstance(item, SSEvent):
                        got.append(item)
        assert offsets(got) == list(range(30))
        assert end_of(got)["status"] == "COMPLETED"


async def test_last_event_id_resumes_after_it_with_no_loss_and_no_duplicate(db: Path) -> None:
    async with site(db) as s:
        await s.rt.start(writer, {"values": list(range(20)), "pause": 10}, run_id="resume")
        await wait_reached("resume")  # 10 entries committed, the run waits
        url = "/runs/resume/streams/tokens"
        async with s.client.stream("GET", url) as response, aclosing(events(response)) as it:
            first = await take(it, 4)
        assert offsets(first) == [0, 1, 2, 3]
        headers = {"Last-Event-ID": "3"}
        async with (
            s.client.stream("GET", url, headers=headers) as response,
            aclosing(events(response)) as it,
        ):
            second = await take(it, 6)  # the rest of the replay
            open_gate("resume")
            rest = [ev async for ev in it]
        assert offsets(second) == list(range(4, 10))
        assert offsets(rest) == list(range(10, 20))
        assert end_of(rest)["status"] == "COMPLETED"
        # After the run: resume from the middle, and from the very last entry.
        assert offsets(await read_all(s.client, url, {"last-event-id": "14"})) == [*range(15, 20)]
        tail = await read_all(s.client, url, {"last-event-id": "19"})
        assert end_of(tail)["status"] == "COMPLETED"
        assert len(tail) == 1


async def test_from_query_starts_at_an_offset_and_last_event_id_wins_over_it(db: Path) -> None:
    async with site(db) as s:
        await s.rt.run(writer, {"values": list(range(12))}, run_id="from")
        url = "/runs/from/streams/tokens"
        assert offsets(await read_all(s.client, url + "?from=0")) == list(range(12))
        assert offsets(await read_all(s.client, url + "?from=7")) == list(range(7, 12))
        past = await read_all(s.client, url + "?from=50")
        assert end_of(past)["status"] == "COMPLETED"
        assert len(past) == 1
        # A browser reconnects to the same URL (with its ?from=) and adds Last-Event-ID.
        both = await read_all(s.client, url + "?from=2", {"Last-Event-ID": "9"})
        assert offsets(both) == [10, 11]
        # A key the run never wrote: closed when the run ended, so just the end.
        other = await read_all(s.client, "/runs/from/streams/other")
        assert [ev.event for ev in other] == ["end"]


async def test_a_failed_run_ends_with_its_error_type_and_message_and_no_traceback(
    db: Path,
) -> None:
    async with site(db) as s:
        handle = await s.rt.start(failing, run_id="bad")
        with pytest.raises(af.RunFailed):
            await handle.result()
        async with s.client.stream("GET", "/runs/bad/streams/tokens") as response:
            raw = (await response.aread()).decode()
        evs = await read_all(s.client, "/runs/bad/streams/tokens")
    assert [ev.json()["value"] for ev in evs[:-1]] == ["one", "two"]
    assert end_of(evs) == {
        "run_id": "bad",
        "status": "FAILED",
        "error": {"type": "ValueError", "message": "the model refused: too spicy"},
    }
    assert "Traceback" not in raw
    assert "test_web.py" not in raw


async def test_a_cancelled_run_ends_its_open_streams_with_cancelled(db: Path) -> None:
    async with site(db) as s:
        handle = await s.rt.start(writer, {"values": list(range(5)), "pause": 2}, run_id="stop")
        await wait_reached("stop")
        url = "/runs/stop/streams/tokens"
        async with s.client.stream("GET", url) as response, aclosing(events(response)) as it:
            got = await take(it, 2)
            await handle.cancel()
            got += [ev async for ev in it]
    assert offsets(got) == [0, 1]
    assert end_of(got) == {"run_id": "stop", "status": "CANCELLED", "error": None}


# -- keep-alive and disconnects --------------------------------------------------------------


async def test_an_idle_stream_gets_the_retry_hint_then_keep_alive_comments(db: Path) -> None:
    async with site(db, keepalive=0.05, retry=250) as s:
        await s.rt.start(writer, {"values": ["x"], "pause": 1}, run_id="idle")
        await wait_reached("idle")
        items: list[Any] = []
        async with (
            s.client.stream("GET", "/runs/idle/streams/tokens") as response,
            aclosing(parse(lines(response))) as it,
        ):
            async for item in it:
                items.append(item)
                if sum(isinstance(i, Comment) for i in items) == 3:
                    open_gate("idle")
    assert items[0] == Retry(250)
    assert items[1] == SSEvent("message", items[1].data, "0")
    assert items[2:5] == [Comment("keep-alive")] * 3
    assert [i.event for i in items[5:]] == ["end"]


@pytest.fixture
def durable_readers(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the runtime's open durable-stream readers (the web app opens them)."""
    count = {"open": 0, "opened": 0}
    original = af.Runtime.read_stream_entries

    async def counted(self: af.Runtime, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        count["open"] += 1
        count["opened"] += 1
        try:
            async with aclosing(original(self, *args, **kwargs)) as entries:  # type: ignore[type-var]
                async for entry in entries:
                    yield entry
        finally:
            count["open"] -= 1

    monkeypatch.setattr(af.Runtime, "read_stream_entries", counted)
    return count


async def test_a_client_leaving_an_idle_durable_stream_stops_its_reader_at_once(
    db: Path, durable_readers: dict[str, int]
) -> None:
    # The default keep-alive (15 s): the server must notice the leaving by itself.
    async with site(db) as s:
        await s.rt.start(writer, {"values": ["x"], "pause": 1}, run_id="leave")
        await wait_reached("leave")
        tasks = task_count()
        async with s.new_client() as client:
            url = "/runs/leave/streams/tokens"
            async with client.stream("GET", url) as response, aclosing(events(response)) as it:
                assert offsets(await take(it, 1)) == [0]
                assert durable_readers == {"open": 1, "opened": 1}
                assert s.clients == 1
        await eventually(lambda: durable_readers["open"] == 0 and s.clients == 0, 3.0)
        await eventually(lambda: task_count() <= tasks, 3.0)
        assert await s.rt.handle("leave").status() == af.RunStatus.RUNNING
        open_gate("leave")
        await s.rt.handle("leave").result()


async def test_a_client_leaving_an_idle_live_stream_ends_its_subscription_at_once(
    db: Path,
) -> None:
    async with site(db) as s:
        await s.rt.start(talker, 3, run_id="leave-live")
        await wait_reached("leave-live")
        subscriptions, tasks = s.rt.broker.statistics().subscriptions, task_count()
        async with (
            s.new_client() as client,
            client.stream("GET", "/runs/leave-live/live") as response,
        ):
            assert response.status_code == 200
            assert s.rt.broker.statistics().subscriptions == subscriptions + 1
            assert s.clients == 1
        await eventually(
            lambda: s.rt.broker.statistics().subscriptions == subscriptions and s.clients == 0,
            3.0,
        )
        await eventually(lambda: task_count() <= tasks, 3.0)
        open_gate("leave-live")
        await s.rt.handle("leave-live").result()


# -- the live stream ---------------------------------------------------------------------------


async def test_the_live_route_delivers_put_stream_messages_then_end(db: Path) -> None:
    async with site(db) as s:
        await s.rt.start(talker, 5, run_id="talk")
        await wait_reached("talk")
        streams = {}
        for name, query in (("all", ""), ("step", "?subject=web_talk"), ("body", "?subject=main")):
            streams[name] = await s.client.send(
                s.client.build_request("GET", "/runs/talk/live" + query), stream=True
            )
            assert streams[name].status_code == 200  # subscribed once the headers came
        open_gate("talk")
        got = {}
        for name, response in streams.items():
            got[name] = [ev async for ev in events(response)]
            await response.aclose()
        finished = await read_all(s.client, "/runs/talk/live")  # after the run: just the end
    step = [
        {
            "subject": "stream.talk.web_talk",
            "run_id": "talk",
            "step_id": "web_talk",
            "seq": i + 1,
            "data": {"i": i},
            "dropped_before": 0,
        }
        for i in range(5)
    ]
    body = {
        "subject": "stream.talk.main",
        "run_id": "talk",
        "step_id": "main",
        "seq": 1,
        "data": "body-done",
        "dropped_before": 0,
    }
    assert [ev.json() for ev in got["all"][:-1]] == [*step, body]
    assert [ev.json() for ev in got["step"][:-1]] == step
    assert [ev.json() for ev in got["body"][:-1]] == [body]
    for evs in (*got.values(), finished):
        assert end_of(evs) == {"run_id": "talk", "status": "COMPLETED", "error": None}
    assert len(finished) == 1


# -- status and starting runs ---------------------------------------------------------------


async def test_post_starts_an_allow_listed_workflow_idempotently_by_run_id(db: Path) -> None:
    async with site(db) as s:
        assert (await s.client.get("/workflows")).json() == {"workflows": ["web_echo"]}
        answers = [
            await s.client.post("/workflows/web_echo", json={"input": "hi", "run_id": "e1"})
            for _ in range(2)
        ]
        for response in answers:
            assert response.status_code == 202
            assert response.headers["location"] == "/runs/e1"
            body = response.json()
            assert body["run_id"] == "e1"
            assert body["workflow"] == "web_echo"
            assert body["status"] in {"PENDING", "RUNNING", "COMPLETED"}
            assert body["links"] == {
                "self": "runs/e1",
                "stream": "runs/e1/streams/{key}",
                "live": "runs/e1/live",
            }
        assert [info.run_id for info in await s.rt.list_runs()] == ["e1"]
        evs = await read_all(s.client, "/runs/e1/streams/tokens")
        assert [ev.json()["value"] for ev in evs[:-1]] == ["hi"]
        assert end_of(evs)["status"] == "COMPLETED"
        status = (await s.client.get("/runs/e1")).json()
        assert status.pop("started_at") <= status.pop("finished_at")
        assert status == {
            "run_id": "e1",
            "status": "COMPLETED",
            "workflow": "web_echo",
            "output": "HI",
            "error": None,
            "streams": [{"key": "tokens", "length": 1, "closed": True}],
        }
        fresh = await s.client.post("/workflows/web_echo", json={"input": "again"})
        assert fresh.status_code == 202
        run_id = fresh.json()["run_id"]
        assert run_id != "e1"
        assert await s.rt.handle(run_id).result() == "AGAIN"


async def test_run_status_json_of_running_and_failed_runs(db: Path) -> None:
    async with site(db) as s:
        await s.rt.start(writer, {"values": [1, 2, 3], "pause": 3}, run_id="busy")
        await wait_reached("busy")
        busy = (await s.client.get("/runs/busy")).json()
        assert busy["status"] == "RUNNING"
        assert busy["finished_at"] is None
        assert busy["output"] is None
        assert busy["streams"] == [{"key": "tokens", "length": 3, "closed": False}]
        handle = await s.rt.start(failing, run_id="bad")
        with pytest.raises(af.RunFailed):
            await handle.result()
        response = await s.client.get("/runs/bad")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        bad = response.json()
        assert bad["status"] == "FAILED"
        assert bad["error"] == {"type": "ValueError", "message": "the model refused: too spicy"}
        assert "Traceback" not in response.text
        open_gate("busy")


async def test_the_page_is_served_at_the_root_unless_page_false(db: Path) -> None:
    async with site(db) as s:
        response = await s.client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "EventSource" in response.text
    async with site(db, page=False) as s:
        assert (await s.client.get("/")).status_code == 404


# -- bad requests ---------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
FORM = {"content-type": "text/plain"}

# (method, path, headers, body, status, error type); {run} is a finished run.
BAD_REQUESTS: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    ("GET", "/runs/nope", {}, None, 404, "RunNotFound"),
    ("GET", "/runs/nope/streams/tokens", {}, None, 404, "RunNotFound"),
    ("GET", "/runs/nope/live", {}, None, 404, "RunNotFound"),
    ("POST", "/workflows/nope", {}, {"input": "x"}, 404, "WorkflowNotFound"),
    ("POST", "/workflows/web_writer", {}, {"input": {}}, 404, "WorkflowNotFound"),
    ("GET", "/nowhere", {}, None, 404, "NotFound"),
    ("GET", "/runs/{run}/streams/tokens/more", {}, None, 404, "NotFound"),
    ("DELETE", "/runs/{run}", {}, None, 405, "MethodNotAllowed"),
    ("GET", "/workflows/web_echo", {}, None, 405, "MethodNotAllowed"),
    ("GET", "/runs/{run}/streams/bad$key", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens?from=-1", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens?from=abc", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens?from=1.5", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens?from=", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens?from=" + "9" * 40, {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens", {"last-event-id": "x"}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/streams/tokens", {"last-event-id": "-3"}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/live?subject=a..b", {}, None, 400, "ValidationError"),
    ("GET", "/runs/{run}/live?subject=>.x", {}, None, 400, "ValidationError"),
    ("POST", "/workflows/web_echo", JSON, b"{", 400, "ValidationError"),
    ("POST", "/workflows/web_echo", JSON, b"\xff\xfe", 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, b'{"input": "x"}', 415, "UnsupportedMediaType"),
    ("POST", "/workflows/web_echo", FORM, b'{"input": "x"}', 415, "UnsupportedMediaType"),
    ("POST", "/workflows/web_echo", {}, [1], 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, {"input": 5}, 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, {}, 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, {"inpt": "x"}, 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, {"input": "x", "run_id": 7}, 400, "ValidationError"),
    ("POST", "/workflows/web_echo", {}, {"input": "x", "run_id": "a b"}, 400, "ValidationError"),
    # An existing run of another workflow.
    ("POST", "/workflows/web_echo", {}, {"input": "x", "run_id": "{run}"}, 400, "ValidationError"),
]


async def test_bad_requests_get_a_json_error_and_the_right_status(db: Path) -> None:
    async with site(db) as s:
        await s.rt.run(writer, {"values": [1]}, run_id="done")
        for method, path, headers, body, status, kind in BAD_REQUESTS:
            path = path.replace("{run}", "done")
            if isinstance(body, bytes):
                request = s.client.build_request(method, path, headers=headers, content=body)
            elif body is not None:
                body = json.loads(json.dumps(body).replace("{run}", "done"))
                request = s.client.build_request(method, path, headers=headers, json=body)
            else:
                request = s.client.build_request(method, path, headers=headers)
            response = await s.client.send(request)
            where = f"{method} {path} {body!r}: {response.text}"
            assert response.status_code == status, where
            assert response.headers["content-type"] == "application/json", where
            error = response.json()["error"]
            assert error["type"] == kind, where
            assert error["message"], where
            assert "Traceback" not in response.text, where
        assert [info.run_id for info in await s.rt.list_runs()] == ["done"]  # nothing started


async def test_a_body_over_max_body_is_413_declared_or_chunked(db: Path) -> None:
    async with site(db, max_body=64) as s:
        big = {"input": "x" * 100}
        declared = await s.client.post("/workflows/web_echo", json=big)

        chunked = await s.client.post(
            "/workflows/web_echo", content=Chunks(b" " * 20, 10), headers=JSON
        )
        # The rest of a refused body is read and dropped: the connection stays usable.
        again = await s.client.post("/workflows/web_echo", json=big)
        for response in (declared, chunked, again):
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert error["type"] == "PayloadTooLarge"
            assert "max_body" in error["message"]
        ok = await s.client.post("/workflows/web_echo", json={"input": "small"})
        assert ok.status_code == 202


async def test_streams_over_max_clients_are_503_until_one_leaves(db: Path) -> None:
    async with site(db, max_clients=1) as s:
        await s.rt.run(writer, {"values": [1]}, run_id="done")
        await s.rt.start(writer, {"values": [1], "pause": 1}, run_id="open")
        await wait_reached("open")
        async with (
            s.new_client() as first,
            first.stream("GET", "/runs/open/streams/tokens") as response,
        ):
            assert response.status_code == 200
            for path in ("/runs/done/streams/tokens", "/runs/done/live"):
                refused = await s.client.get(path)
                assert refused.status_code == 503, refused.text
                error = refused.json()["error"]
                assert error["type"] == "TooManyClients"
                assert "max_clients" in error["message"]
            assert (await s.client.get("/runs/done")).status_code == 200  # not a stream
        await eventually(lambda: s.clients == 0, 3.0)
        assert offsets(await read_all(s.client, "/runs/done/streams/tokens")) == [0]
        open_gate("open")


async def test_an_unexpected_error_is_a_500_with_no_details(
    db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: af.Runtime, run_id: str) -> af.RunInfo:
        raise RuntimeError("secret internals at /srv/app.py")

    async with site(db) as s:
        await s.rt.run(writer, {"values": [1]}, run_id="done")
        monkeypatch.setattr(af.Runtime, "get_run", broken)
        response = await s.client.get("/runs/done")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"type": "InternalError", "message": "the server failed; see its log"}
    }
    assert "secret" not in response.text


# -- sse() in a user's own routes -----------------------------------------------------------


async def test_sse_serves_any_iterator_in_a_users_own_starlette_route(db: Path) -> None:
    async with af.Runtime(db) as rt:
        await rt.run(writer, {"values": ["a", "b", "c"]}, run_id="mine")

        async def tokens(request: Request) -> Response:
            entries = rt.read_stream_entries(request.path_params["run_id"], "tokens")
            return af.web.sse(entries, retry=500, headers={"x-mine": "yes"})

        async def custom(request: Request) -> Response:
            async def items() -> AsyncIterator[object]:
                yield af.web.Event({"hello": "world"}, event="greeting", id="g-1")
                yield "plain"
                yield [1, None]
                raise af.ValidationError("the input was bad")

            return af.web.sse(items())

        async def broken(request: Request) -> Response:
            async def items() -> AsyncIterator[object]:
                yield 1
                raise RuntimeError("secret internals")

            return af.web.sse(items())

        async def unencodable(request: Request) -> Response:
            async def items() -> AsyncIterator[object]:
                yield {1, 2}  # a set: fine
                yield object()

            return af.web.sse(items())

        user_app = Starlette(
            routes=[
                Route("/chat/{run_id}", tokens),
                Route("/custom", custom),
                Route("/broken", broken),
                Route("/unencodable", unencodable),
            ]
        )
        async with (
            serving(user_app) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            async with client.stream("GET", "/chat/mine") as response:
                assert response.headers["x-mine"] == "yes"
                items = [i async for i in parse(lines(response))]
            custom_evs = await read_all(client, "/custom")
            broken_evs = await read_all(client, "/broken")
            unencodable_evs = await read_all(client, "/unencodable")
    assert items[0] == Retry(500)
    assert [(i.id, i.json()["value"]) for i in items[1:]] == [("0", "a"), ("1", "b"), ("2", "c")]  # type: ignore[union-attr]
    assert [(ev.event, ev.id, ev.json()) for ev in custom_evs] == [
        ("greeting", "g-1", {"hello": "world"}),
        ("message", "g-1", "plain"),  # the last event id stays, as browsers keep it
        ("message", "g-1", [1, None]),
        (
            "stream-error",
            "g-1",
            {"error": {"type": "ValidationError", "message": "the input was bad"}},
        ),
    ]
    assert [(ev.event, ev.json()) for ev in broken_evs] == [
        ("message", 1),
        (
            "stream-error",
            {
                "error": {
                    "type": "InternalError",
                    "message": "the server failed while streaming; see its log",
                }
            },
        ),
    ]
    assert [ev.event for ev in unencodable_evs] == ["message", "stream-error"]
    assert sorted(unencodable_evs[0].json()) == [1, 2]
    assert unencodable_evs[1].json()["error"]["type"] == "EncodeError"


async def _empty() -> AsyncIterator[object]:
    return
    yield


@pytest.mark.parametrize(
    "options",
    [
        {"keepalive": 0},
        {"keepalive": -1.0},
        {"keepalive": float("nan")},
        {"keepalive": float("inf")},
        {"keepalive": True},
        {"keepalive": "15"},
        {"retry": -1},
        {"retry": 1.5},
        {"retry": False},
        {"max_body": 0},
        {"max_body": "big"},
        {"max_clients": 0},
        {"max_clients": True},
        {"live_buffer": 0},
        {"workflows": [emit]},  # a step, not a workflow
        {"workflows": [lambda ctx, x: x]},
    ],
)
async def test_bad_options_raise_validation_error(options: dict[str, Any]) -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.ValidationError):
            af.web.app(rt, **options)
        stream_options = {k: v for k, v in options.items() if k in {"keepalive", "retry"}}
        if stream_options:
            with pytest.raises(af.ValidationError):
                af.web.sse(_empty(), **stream_options)


# -- resuming, as a property ----------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    values=st.lists(st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=5)), max_size=30),
    pause=st.integers(0, 30),
    cuts=st.lists(st.integers(1, 30), max_size=4),
    use_from=st.lists(st.booleans(), min_size=5, max_size=5),
)
async def test_reconnecting_anywhere_gets_every_offset_exactly_once(
    values: list[Any], pause: int, cuts: list[int], use_from: list[bool]
) -> None:
    """Disconnect after k events, reconnect with Last-Event-ID (or ?from=): range(n) exactly."""
    n = len(values)
    with tempfile.TemporaryDirectory() as tmp:
        async with site(Path(tmp) / "prop.db") as s:
            await s.rt.start(writer, {"values": values, "pause": pause}, run_id="prop")
            url = "/runs/prop/streams/tokens"
            received: list[SSEvent] = []
            ended = False
            for attempt, cut in enumerate([*sorted(set(cuts)), None]):
                headers, query = {}, ""
                if received:
                    last = int(received[-1].id or "")
                    if use_from[attempt]:
                        query = f"?from={last + 1}"
                    else:
                        headers["Last-Event-ID"] = str(last)
                async with s.client.stream("GET", url + query, headers=headers) as response:
                    open_gate("prop")  # the rest is written while we read
                    async with aclosing(events(response)) as it:
                        async for ev in it:
                            if ev.event == "end":
                                ended = True
                                break
                            received.append(ev)
                            if cut is not None and len(received) >= cut:
                                break
                if ended:
                    break
    assert ended
    assert offsets(received) == list(range(n))
    assert [ev.json()["value"] for ev in received] == values


@af.workflow(name="web_waits")
async def waits(ctx: af.WorkflowContext, _: None) -> Any:
    await ctx.write_stream("tokens", "first")
    return await ctx.recv()


@pytest.mark.slow
async def test_hundreds_of_stream_clients_dropping_at_once_leave_nothing_behind() -> None:
    """Chaos, bounded: 300 SSE clients (durable and live) connect, then all vanish at once."""
    async with site(None) as s:
        handle = await s.rt.start(waits, None)
        streams = []
        for i in range(300):
            path = f"/runs/{handle.run_id}/" + ("live" if i % 2 else "streams/tokens")
            stream = await anyio.connect_tcp("127.0.0.1", s.port)
            await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert (await stream.receive()).startswith(b"HTTP/1.1 200")
            streams.append(stream)
        assert s.clients == 300
        assert s.rt.broker.statistics().subscriptions == 150  # type: ignore[attr-defined]
        for stream in streams:  # all gone at once, without a goodbye
            await stream.aclose()
        await eventually(
            lambda: s.clients == 0 and s.rt.broker.statistics().subscriptions == 0,  # type: ignore[attr-defined]
            20.0,
        )
        answer = await s.client.get(f"/runs/{handle.run_id}")
        assert answer.status_code == 200
        await handle.send("done")
        assert await handle.result() == "done"
