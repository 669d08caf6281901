"""Server-Sent Events: encoding one event, and a streaming response over an async iterator."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import attrs
import msgspec
from anyio.streams.memory import MemoryObjectSendStream
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._exceptions import ActorflowError, EncodeError, RunNotFound, ValidationError
from .._live import Message
from .._restarts import StreamRestart
from ..abc import StreamEntry

if TYPE_CHECKING:
    from .._runtime import Runtime

_log = logging.getLogger("actorflow.web")
_json = msgspec.json.Encoder()
_KEEPALIVE = b": keep-alive\n\n"
#: How many ready events one write to the socket may carry.
_BATCH = 256


@attrs.frozen
class Event:
    """One Server-Sent Event, for :func:`sse` when you want to set its fields yourself.

    Attributes:
        data: any msgspec-encodable value, sent as JSON.
        event: the event type (``None``: a plain ``message``).
        id: the event id; a browser sends the last one back as
            ``Last-Event-ID`` when it reconnects.
        retry: how long, in milliseconds, a browser waits before reconnecting.
    """

    data: object = None
    event: str | None = None
    id: str | int | None = None
    retry: int | None = None


def encode_event(item: object) -> bytes:
    """Encode one item as SSE bytes (an :class:`Event`, a stream entry, a live message, a value).

    Raises:
        EncodeError: the value is not msgspec-encodable.
    """
    if isinstance(item, StreamEntry):
        # Every durable-stream event comes here, once per client: built
        # directly, without an Event and the general path, it costs about half.
        fields: dict[str, object] = {
            "offset": item.offset,
            "value": item.value,
            "step_id": item.step_id,
            "attempt": item.attempt,
        }
        try:
            data = _data(fields)
        except EncodeError as exc:
            # msgpack stores values JSON cannot carry (a dict with tuple keys,
            # an extension type). Ending the stream here would end it here again
            # on every reconnect: an `entry-error` event with the entry's id
            # takes its place, and the stream goes on.
            del fields["value"]
            fields["error"] = _unencodable(exc, f"stream entry {item.offset}")
            return b"id: %d\nevent: entry-error\ndata: %s\n\n" % (item.offset, _data(fields))
        return b"id: %d\ndata: %s\n\n" % (item.offset, data)
    if isinstance(item, StreamRestart):
        # No id: the browser's Last-Event-ID stays the last entry's, so a
        # reconnect resumes after it and is told of this restart again if the
        # entry it precedes was not received (applying it twice changes nothing).
        restart = {
            "step_id": item.step_id,
            "attempt": item.attempt,
            "offset": item.offset,
            "from_offset": item.from_offset,
        }
        return b"event: restart\ndata: %s\n\n" % _data(restart)
    if isinstance(item, Message):
        message: dict[str, object] = {
            "subject": item.subject,
            "run_id": item.run_id,
            "step_id": item.step_id,
            "seq": item.seq,
            "data": item.data,
            "dropped_before": item.dropped_before,
        }
        try:
            return b"data: %s\n\n" % _data(message)
        except EncodeError as exc:
            del message["data"]
            message["error"] = _unencodable(exc, f"live message {item.seq} of {item.subject!r}")
            item = Event(message, event="entry-error")
    elif not isinstance(item, Event):
        item = Event(item)
    parts: list[bytes] = []
    if item.event is not None:
        parts.append(b"event: " + _field(item.event, "event").encode() + b"\n")
    if item.id is not None:
        parts.append(b"id: " + _field(str(item.id), "id").encode() + b"\n")
    if item.retry is not None:
        parts.append(b"retry: %d\n" % item.retry)
    parts.append(b"data: " + _data(item.data) + b"\n\n")
    return b"".join(parts)


def _data(value: object) -> bytes:
    """``value`` as JSON on one line, for an event's ``data:`` field."""
    try:
        data = _json.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(
            f"an SSE event's data cannot be encoded as JSON ({exc}); use msgspec-encodable values"
        ) from None
    # msgspec's JSON has no raw newlines (they are escaped in strings), so the
    # data is always one `data:` line. It may have U+0085, U+2028 and U+2029,
    # which SSE leaves alone but Python's str.splitlines() (and so clients
    # reading lines with httpx's aiter_lines) splits on: escape them too.
    if b"\xc2\x85" in data or b"\xe2\x80\xa8" in data or b"\xe2\x80\xa9" in data:
        data = (
            data.replace(b"\xc2\x85", b"\\u0085")
            .replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029")
        )
    return data


def _unencodable(exc: EncodeError, what: str) -> dict[str, str]:
    """The ``error`` of an ``entry-error`` event: ``what`` could not be sent as JSON."""
    reason = exc.__cause__ or exc.__context__ or exc
    return {
        "type": "EncodeError",
        "message": f"{what} cannot be sent as JSON ({reason}); it was skipped, read it "
        "from Python (rt.read_stream_entries) or store JSON-compatible values",
    }


def _field(text: str, what: str) -> str:
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValidationError(f"an SSE {what} may not contain newlines or NUL: {text!r}")
    return text


def _check_stream_options(keepalive: float, retry: int | None) -> None:
    if not (
        isinstance(keepalive, int | float)
        and not isinstance(keepalive, bool)
        and keepalive > 0
        and math.isfinite(keepalive)
    ):
        raise ValidationError(f"keepalive must be a number of seconds > 0, not {keepalive!r}")
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
        raise ValidationError(f"retry must be an int of milliseconds >= 0, not {retry!r}")


class EventStreamResponse(Response):
    """A streaming ``text/event-stream`` response over an async iterator (see :func:`sse`).

    Unlike Starlette's ``StreamingResponse`` it always watches for the client
    leaving, even on an idle stream, and then cancels the reader at once; and it
    sends a keep-alive comment whenever nothing was sent for ``keepalive``
    seconds, so proxies and browsers keep the connection open.

    ``before``, if given, is awaited before the headers are sent: if it raises
    :class:`~actorflow.RunNotFound`, the answer is a ``404`` with a JSON body
    ``{"error": {"type", "message"}}`` instead of a stream.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterable[object],
        *,
        keepalive: float = 15.0,
        retry: int | None = None,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
        on_close: Callable[[], None] | None = None,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        _check_stream_options(keepalive, retry)
        self.events = events
        self.before = before
        self.keepalive = float(keepalive)
        self.retry = retry
        self.status_code = status_code
        self.on_close = on_close
        self.background = None
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self.before is not None:
                try:
                    await self.before()
                except RunNotFound as exc:
                    await _close(self.events)
                    body = _json.encode({"error": _error_body(exc)})
                    answer = Response(body, status_code=404, media_type="application/json")
                    await answer(scope, receive, send)
                    return
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        head = b"" if self.retry is None else b"retry: %d\n\n" % self.retry
        chunks, ready = anyio.create_memory_object_stream[bytes](_BATCH)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope)
            tg.start_soon(self._pump, chunks)
            try:
                async with ready:
                    if head:
                        await send({"type": "http.response.body", "body": head, "more_body": True})
                    while True:
                        body = b""
                        with anyio.move_on_after(self.keepalive):
                            try:
                                body = await ready.receive()
                            except anyio.EndOfStream:
                                break
                        if not body:
                            body = _KEEPALIVE
                        else:
                            batch = [body]
                            while len(batch) < _BATCH:
                                try:
                                    batch.append(ready.receive_nowait())
                                except (anyio.WouldBlock, anyio.EndOfStream):
                                    break
                            body = b"".join(batch)
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client went away mid-write (ASGI 2.4 servers)
                pass
            tg.cancel_scope.cancel()

    async def _pump(self, chunks: MemoryObjectSendStream[bytes]) -> None:
        async with chunks:
            events = self.events
            try:
                async for item in events:
                    chunk = encode_event(item)
                    # send() checkpoints, so the reader would wake for every
                    # event and write each to the socket alone. Queue without a
                    # task switch while there is room: a journal page's events
                    # then go out in one write (batches of up to _BATCH).
                    try:
                        chunks.send_nowait(chunk)
                    except anyio.WouldBlock:
                        await chunks.send(chunk)
            except ActorflowError as exc:
                await chunks.send(_error_event(exc))
            except Exception as exc:
                _log.exception("an SSE stream failed")
                await chunks.send(_error_event(exc, internal=True))
            finally:
                await _close(events)

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return


async def _close(events: AsyncIterable[object]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


def _error_event(exc: BaseException, *, internal: bool = False) -> bytes:
    return encode_event(Event({"error": _error_body(exc, internal=internal)}, event="stream-error"))


def _error_body(exc: BaseException, *, internal: bool = False) -> dict[str, str]:
    if internal:
        return {
            "type": "InternalError",
            "message": "the server failed while streaming; see its log",
        }
    return {"type": type(exc).__name__, "message": str(exc)}


def sse(
    events: AsyncIterable[object],
    *,
    request: Request | None = None,
    runtime: Runtime | None = None,
    run_id: str | None = None,
    keepalive: float = 15.0,
    retry: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> EventStreamResponse:
    """Turn an async iterator into a Server-Sent-Events response for Starlette or FastAPI.

    Each item becomes one event: an :class:`~actorflow.StreamEntry` is a
    ``message`` whose ``id`` is its offset (so a reconnecting browser resumes
    after it), a :class:`~actorflow.StreamRestart` (from
    ``read_stream_entries(..., restarts=True)``) a ``restart`` event with data
    ``{"step_id", "attempt", "offset", "from_offset"}`` and no ``id``, an
    :class:`~actorflow.Message` a ``message`` with its fields, an
    :class:`Event` is sent as it is, and any other value is sent as JSON data.
    An :class:`~actorflow.ActorflowError` raised by the iterator ends the stream
    with a ``stream-error`` event naming it (any other exception too, as an
    ``InternalError`` with no details; the server logs it)::

        @api.get("/chat/{run_id}")
        async def chat(run_id: str, request: Request) -> EventStreamResponse:
            return af.web.sse(rt.read_stream_entries(run_id, "tokens"), request=request)

    Given the ``request``, it resumes and ends as the built-in stream route
    does: the stream entries at or before the request's ``Last-Event-ID`` (what
    a reconnecting ``EventSource`` sends) are not sent again, and when
    ``events`` ends, an ``end`` event (data ``null``) tells the browser to
    close rather than reconnect. (The entries before it are still read: for a
    long stream, start the reader after them with ``from_offset``.)

    Given the ``runtime`` and the ``run_id`` the events are about, it answers
    ``404`` (a JSON body ``{"error": {"type": "RunNotFound", "message"}}``, as
    the built-in routes) when the runtime has no such run, instead of a
    ``200`` stream whose only event is a ``stream-error``.

    Args:
        events: what to send; closed (``aclose``) when the client leaves.
        request: the request being answered (see above).
        runtime: with ``run_id``, check that the run exists before answering.
        run_id: the run the events are about.
        keepalive: seconds of silence after which a comment is sent.
        retry: milliseconds a browser should wait before reconnecting.
        headers: extra response headers.

    Raises:
        ValidationError: a bad ``keepalive`` or ``retry``, or only one of
            ``runtime`` and ``run_id``.
    """
    if (runtime is None) != (run_id is None):
        raise ValidationError("sse() takes runtime= and run_id= together, or neither")
    before = None
    if runtime is not None and run_id is not None:
        rt, rid = runtime, run_id

        async def before() -> object:
            return await rt.get_run(rid)

    if request is not None:
        events = _resumed(events, _last_event_id(request))
    return EventStreamResponse(
        events, keepalive=keepalive, retry=retry, headers=headers, before=before
    )


def _last_event_id(request: Request) -> int:
    """The offset a request's ``Last-Event-ID`` names; -1 if none (ids of your own: none)."""
    text = request.headers.get("last-event-id", "").strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return -1


async def _resumed(events: AsyncIterable[object], after: int) -> AsyncIterator[object]:
    """``events`` without the stream entries at or before offset ``after``, then ``end``."""
    async with contextlib.AsyncExitStack() as stack:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            stack.push_async_callback(aclose)
        async for item in events:
            if isinstance(item, StreamEntry | StreamRestart) and item.offset <= after:
                continue
            yield item
    yield Event(None, event="end")
