"""A small Server-Sent-Events parser for the web tests (the WHATWG event-stream format)."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncGenerator, Iterator
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


class Parser:
    """The WHATWG event-stream parser, one line (without its line ending) at a time."""

    def __init__(self) -> None:
        self.event, self.last_id, self.seen = "", None, False
        self.data: list[str] = []

    def feed(self, line: str) -> SSEvent | Comment | Retry | None:
        """What ``line`` completes: an event (at a blank line), a comment, a retry, or nothing.

        An event cut off before its blank line (the connection ended
        mid-event) is never returned, as browsers drop it.
        """
        if not line:
            done = SSEvent(self.event or "message", "\n".join(self.data), self.last_id)
            dispatch = self.seen and self.data
            self.event, self.data, self.seen = "", [], False
            return done if dispatch else None
        if line.startswith(":"):
            return Comment(line[1:].strip())
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self.seen = True
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            return Retry(int(value))
        return None


async def parse(
    lines: AsyncGenerator[str, None],
) -> AsyncGenerator[SSEvent | Comment | Retry, None]:
    """Parse event-stream lines (without their line endings) into events, comments and retries.

    Closes ``lines``.
    """
    parser = Parser()
    async with aclosing(lines):
        async for line in lines:
            item = parser.feed(line)
            if item is not None:
                yield item


_EOL = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    """Splits event-stream bytes into lines on CRLF, CR or LF only, as browsers do.

    (Not httpx's ``aiter_lines``, which splits like ``str.splitlines`` on more.)
    """

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.pending = ""
        self.first = True

    def feed(self, chunk: bytes) -> list[str]:
        text = self.decoder.decode(chunk)
        if self.first and text:
            text, self.first = text.removeprefix("\ufeff"), False
        pending = self.pending + text
        # A CR at the end may be the first half of a CRLF: keep it for later.
        head, tail = (pending[:-1], "\r") if pending.endswith("\r") else (pending, "")
        parts = _EOL.split(head)
        self.pending = parts.pop() + tail
        return parts

    def end(self) -> list[str]:
        # Anything left but a CR is a line cut off by the end of the stream: dropped.
        return [self.pending[:-1]] if self.pending.endswith("\r") else []


async def lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The lines of an event stream (see :class:`LineSplitter`)."""
    splitter = LineSplitter()
    async for chunk in response.aiter_bytes():
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.end():
        yield line


def iter_events(response: httpx.Response) -> Iterator[SSEvent]:
    """The events of a streaming response of a sync ``httpx.Client``, without the rest."""
    splitter, parser = LineSplitter(), Parser()
    for chunk in response.iter_bytes():
        for line in splitter.feed(chunk):
            if isinstance(item := parser.feed(line), SSEvent):
                yield item
    for line in splitter.end():
        if isinstance(item := parser.feed(line), SSEvent):
            yield item


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
