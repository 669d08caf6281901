"""A retried step's output, rendered once: ``restarts=True`` readers, ``af.latest_attempts``,
and the web app's ``restart`` event agree, on both journals."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _sse import SSEvent, events
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import actorflow as af
import actorflow.web

WORDS = ["You ", "said ", "hi."]


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> af.Journal:
    if request.param == "memory":
        return af.MemoryJournal()
    return af.SQLiteJournal(tmp_path / "restarts.db")


@af.step(name="rs_answer", retries=1, backoff=af.Backoff(initial=0.0, jitter=0.0))
async def answer(ctx: af.StepContext, words: list[str]) -> str:
    for i, word in enumerate(words):
        if ctx.attempt == 1 and i == 2:
            await ctx.flush()  # the first attempt's two words are committed
            raise ConnectionError("the model's connection dropped mid-answer")
        await ctx.write_stream("tokens", word)
    return "".join(words)


@af.workflow(name="rs_chat")
async def chat(ctx: af.WorkflowContext, words: list[str]) -> str:
    await ctx.write_stream("tokens", "> ")  # the body's entry: never superseded
    text = await ctx.step(answer, words)
    await ctx.close_stream("tokens")
    return text


# offsets: 0 "> " (main), 1 "You " and 2 "said " (attempt 1), 3-5 attempt 2
RESTART = af.StreamRestart(step_id="rs_answer", attempt=2, offset=3, from_offset=1)


async def finished_run(rt: af.Runtime) -> af.RunHandle[str]:
    handle = await rt.start(chat, WORDS, run_id="retried")
    assert await handle.result() == "You said hi."
    return handle


async def collect(it: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in it]


async def test_a_restarts_reader_is_told_where_the_retry_starts_over(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await finished_run(rt)
        assert await collect(handle.read_stream("tokens", restarts=True)) == [
            "> ", "You ", "said ", RESTART, "You ", "said ", "hi.",
        ]  # fmt: skip
        # The README's loop: drop what a restart supersedes, and the answer shows once.
        shown: list[str] = []
        async for item in handle.read_stream("tokens", type=str, restarts=True):
            if isinstance(item, af.StreamRestart):
                del shown[item.from_offset :]
            else:
                shown.append(item)
        assert "".join(shown) == "> You said hi."
        # Without the option, readers get every entry, as before.
        assert "".join(await collect(handle.read_stream("tokens", type=str))) == (
            "> You said You said hi."
        )


async def test_latest_attempts_keeps_each_steps_last_attempt(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await finished_run(rt)
        entries = await collect(handle.read_stream_entries("tokens"))
        kept = af.latest_attempts(entries)
        assert [e.offset for e in kept] == [0, 3, 4, 5]
        assert "".join(str(e.value) for e in kept) == "> You said hi."
        with_markers = await collect(rt.read_stream_entries("retried", "tokens", restarts=True))
        assert with_markers[3] == RESTART
        assert af.latest_attempts(with_markers) == kept


async def test_a_reader_resuming_mid_stream_still_learns_of_the_restart(
    journal: af.Journal,
) -> None:
    async with af.Runtime(journal) as rt:
        handle = await finished_run(rt)
        for start, expected in [
            (2, [2, RESTART, 3, 4, 5]),
            (3, [RESTART, 3, 4, 5]),
            (4, [4, 5]),  # the restart came before: attempt 2 is what it reads
        ]:
            items = await collect(
                handle.read_stream_entries("tokens", from_offset=start, restarts=True)
            )
            assert [i if isinstance(i, af.StreamRestart) else i.offset for i in items] == expected


async def test_read_stream_type_converts_or_says_what_is_wrong(journal: af.Journal) -> None:
    async with af.Runtime(journal) as rt:
        handle = await finished_run(rt)
        with pytest.raises(af.ValidationError, match=r"entry 0 of stream 'tokens'.*int"):
            await collect(handle.read_stream("tokens", type=int))


def sse_items(evs: list[SSEvent]) -> list[Any]:
    """Messages as their offsets, restarts as their data, and the other event types."""
    out: list[Any] = []
    for ev in evs:
        if ev.event == "message":
            out.append(ev.json()["offset"])
        elif ev.event == "restart":
            assert ev.id in (None, "", str(out[-1]) if out else None)
            out.append(ev.json())
        else:
            out.append(ev.event)
    return out


SSE_RESTART = {"step_id": "rs_answer", "attempt": 2, "offset": 3, "from_offset": 1}


async def get_events(app: Any, url: str, **headers: str) -> list[SSEvent]:
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        return [ev async for ev in events(response)]


async def test_the_stream_route_sends_a_restart_event_python_and_sse_agree(
    journal: af.Journal,
) -> None:
    async with af.Runtime(journal) as rt:
        await finished_run(rt)
        app = actorflow.web.app(rt)
        url = "/runs/retried/streams/tokens"
        assert sse_items(await get_events(app, url)) == [0, 1, 2, SSE_RESTART, 3, 4, 5, "end"]
        resumed = await get_events(app, url, **{"last-event-id": "2"})
        assert sse_items(resumed) == [SSE_RESTART, 3, 4, 5, "end"]
        after = await get_events(app, url, **{"last-event-id": "3"})
        assert sse_items(after) == [4, 5, "end"]
        # The same from a route of one's own, with sse() given the request.

        async def tokens(request: Request) -> Response:
            entries = rt.read_stream_entries("retried", "tokens", restarts=True)
            return actorflow.web.sse(entries, request=request, runtime=rt, run_id="retried")

        mine = Starlette(routes=[Route("/tokens", tokens)])
        assert sse_items(await get_events(mine, "/tokens")) == [
            0, 1, 2, SSE_RESTART, 3, 4, 5, "end",
        ]  # fmt: skip
        assert sse_items(await get_events(mine, "/tokens", **{"last-event-id": "2"})) == [
            SSE_RESTART, 3, 4, 5, "end",
        ]  # fmt: skip


# -- the rule, on any interleaving of steps and attempts ---------------------------------


@st.composite
def stream_entries(draw: st.DrawFn) -> list[af.StreamEntry]:
    """Entries of up to 3 steps, each step's attempts non-decreasing in offset order."""
    steps = draw(st.lists(st.sampled_from(["a", "b", "main"]), max_size=30))
    attempt: dict[str, int] = {}
    out = []
    for offset, step_id in enumerate(steps):
        if step_id != "main" and draw(st.booleans()) and draw(st.booleans()):
            attempt[step_id] = attempt.get(step_id, 1) + draw(st.integers(1, 2))
        out.append(af.StreamEntry(offset, offset, step_id, attempt.get(step_id, 1)))
    return out


async def _from(entries: list[af.StreamEntry], start: int) -> AsyncGenerator[af.StreamEntry]:
    for e in entries[start:]:
        yield e


@given(stream_entries(), st.data())
@settings(max_examples=200, deadline=None)
def test_restarts_from_any_offset_agree_with_latest_attempts(
    entries: list[af.StreamEntry], data: st.DataObject
) -> None:
    from actorflow._restarts import with_restarts

    async def read(start: int) -> list[Any]:
        reader = with_restarts(_from(entries, start), start, lambda: _from(entries, 0))
        return [item async for item in reader]

    whole = anyio.run(read, 0)
    shown: list[af.StreamEntry] = []
    for item in whole:
        if isinstance(item, af.StreamRestart):
            shown = [e for e in shown if e.step_id != item.step_id or e.attempt >= item.attempt]
        else:
            shown.append(item)
    assert shown == af.latest_attempts(entries) == af.latest_attempts(whole)
    start = data.draw(st.integers(0, len(entries)))
    # A reader resuming at `start` gets exactly what a whole reader gets from there.
    assert anyio.run(read, start) == [i for i in whole if i.offset >= start]
