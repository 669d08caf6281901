"""A small Server-Sent-Events parser for the web tests (the WHATWG event-stream format)."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SSEvent:
    """One dispatched event: its type (``message`` by default), id and data lines joined."""

    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class Comment:
    """A comment line (``: text``), as servers send for keep-alives."""

    text: str


@dataclass(frozen=True)
class Retry:
    """A ``retry:`` field: how long a browser waits before reconnecting, in ms."""

    ms: int


async def parse(
    lines: AsyncGenerator[str, None],
) -> AsyncGenerator[SSEvent | Comment | Retry, None]:
    """Parse event-stream lines (without their line endings) into events, comments and retries.

    An event is dispatched at a blank line; one that is cut off before it (the
    connection ended mid-event) is dropped, as browsers do. Closes ``lines``.
    """
    event, last_id, seen = "", None, False
    data: list[str] = []
    async with aclosing(lines):
        async for line in lines:
            if not line:
                if seen and data:
                    yield SSEvent(event or "message", "\n".join(data), last_id)
                event, data, seen = "", [], False
                continue
            if line.startswith(":"):
                yield Comment(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                last_id = value
            elif name == "retry" and value.isdigit():
                yield Retry(int(value))


_EOL = re.compile(r"\r\n|\r|\n")


async def lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The lines of an event stream: split on CRLF, CR or LF only, as browsers do.

    (Not httpx's ``aiter_lines``, which splits like ``str.splitlines`` on more.)
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    first = True
    async for chunk in response.aiter_bytes():
        text = decoder.decode(chunk)
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        pending += text
        # A CR at the end may be the first half of a CRLF: keep it for later.
        head, tail = (pending[:-1], "\r") if pending.endswith("\r") else (pending, "")
        parts = _EOL.split(head)
        pending = parts.pop() + tail
        for line in parts:
            yield line
    if pending.endswith("\r"):
        yield pending[:-1]
    # Anything else left is a line cut off by the end of the stream: dropped.


async def events(response: httpx.Response) -> AsyncGenerator[SSEvent, None]:
    """The events of a streaming response, without comments and retries."""
    async with aclosing(parse(lines(response))) as items:
        async for item in items:
            if isinstance(item, SSEvent):
                yield item


async def read_all(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> list[SSEvent]:
    """GET ``url`` as an event stream and return all its events until the server ends it."""
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        async with aclosing(events(response)) as it:
            return [ev async for ev in it]
