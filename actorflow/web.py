"""Stream runs to browsers and HTTP clients as Server-Sent Events (SSE).

Needs the ``web`` extra (``pip install 'actorflow[web]'``: Starlette, plus
uvicorn to serve). Two entry points:

- :func:`app` builds an ASGI application over a :class:`~actorflow.Runtime`,
  mountable in Starlette or FastAPI, with these routes:

  ``GET /runs/{run_id}/streams/{key}``
      A durable stream as SSE. Each entry is a ``message`` event whose ``id``
      is its offset and whose data is ``{"offset", "value", "step_id",
      "attempt"}``. A reconnect with ``Last-Event-ID: N`` (what browsers'
      ``EventSource`` sends by itself) resumes at offset ``N + 1``;
      ``?from=N`` starts at offset ``N``. When the stream is closed and its run
      has ended, a final ``end`` event carries ``{"run_id", "status",
      "error"}``.
  ``GET /runs/{run_id}/live``
      The run's live stream (``ctx.put_stream``) as SSE; ``?subject=`` is a
      NATS-style pattern relative to the run (``*``, ``generate``, ``>``: the
      default). Messages are not journaled, so this one does not resume; it
      ends with the same ``end`` event when the run ends.
  ``GET /runs/{run_id}``
      The run's status as JSON, with its output or error and its streams.
  ``POST /workflows/{name}``
      Starts a run of a workflow listed in ``workflows=``; the body is JSON
      ``{"input": ..., "run_id": ...}`` (both optional). Answers ``202`` with
      the run's id and links.
  ``GET /workflows``
      The names of the workflows that may be started.
  ``GET /``
      A small page: a prompt box that starts a workflow and shows its ``tokens``
      stream as it arrives, resuming after reconnects (``page=False`` drops it).

- :func:`sse` turns any async iterator (durable entries, live messages, or
  your own values) into a streaming SSE response for your own routes.

Every value is encoded as JSON with msgspec. An unknown run or workflow is a
``404``, bad input a ``400``, both with a JSON body
``{"error": {"type", "message"}}``; an unexpected error is a ``500`` with the
same body and no traceback. A client that disconnects stops its reader at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import socket
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import anyio
import attrs
import msgspec
import sniffio
from anyio.streams.memory import MemoryObjectSendStream

from ._codec import decode_value
from ._exceptions import (
    ActorflowError,
    EncodeError,
    RunNotFound,
    ValidationError,
    WorkflowNotFound,
)
from ._live import Message, validate_pattern
from ._registry import Workflow
from ._validate import validate_key
from .abc import LiveSubscription, RunInfo, StreamEntry

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "actorflow.web needs Starlette; install the web extra: pip install 'actorflow[web]'"
    ) from exc

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ("Event", "EventSourceResponse", "app", "serve", "sse")

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
        data = _data(
            {
                "offset": item.offset,
                "value": item.value,
                "step_id": item.step_id,
                "attempt": item.attempt,
            }
        )
        return b"id: %d\ndata: %s\n\n" % (item.offset, data)
    if isinstance(item, Message):
        item = Event(
            {
                "subject": item.subject,
                "run_id": item.run_id,
                "step_id": item.step_id,
                "seq": item.seq,
                "data": item.data,
                "dropped_before": item.dropped_before,
            }
        )
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
    except (TypeError, ValueError, OverflowError) as exc:
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


class EventSourceResponse(Response):
    """A streaming ``text/event-stream`` response over an async iterator (see :func:`sse`).

    Unlike Starlette's ``StreamingResponse`` it always watches for the client
    leaving, even on an idle stream, and then cancels the reader at once; and it
    sends a keep-alive comment whenever nothing was sent for ``keepalive``
    seconds, so proxies and browsers keep the connection open.
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
    ) -> None:
        _check_stream_options(keepalive, retry)
        self.events = events
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
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return


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
    keepalive: float = 15.0,
    retry: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> EventSourceResponse:
    """Turn an async iterator into a Server-Sent-Events response for Starlette or FastAPI.

    Each item becomes one event: an :class:`~actorflow.StreamEntry` is a
    ``message`` whose ``id`` is its offset (so a reconnecting browser resumes
    after it), an :class:`~actorflow.Message` a ``message`` with its fields, an
    :class:`Event` is sent as it is, and any other value is sent as JSON data.
    An :class:`~actorflow.ActorflowError` raised by the iterator ends the stream
    with a ``stream-error`` event naming it (any other exception too, as an
    ``InternalError`` with no details; the server logs it)::

        @api.get("/chat/{run_id}")
        async def chat(run_id: str) -> EventSourceResponse:
            return af.web.sse(rt.read_stream_entries(run_id, "tokens"))

    Args:
        events: what to send; closed (``aclose``) when the client leaves.
        keepalive: seconds of silence after which a comment is sent.
        retry: milliseconds a browser should wait before reconnecting.
        headers: extra response headers.

    Raises:
        ValidationError: a bad ``keepalive`` or ``retry``.
    """
    return EventSourceResponse(events, keepalive=keepalive, retry=retry, headers=headers)


# -- the application -----------------------------------------------------------------


class _StartRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: Any = None
    run_id: str | None = None


@attrs.define(eq=False)
class _Api:
    rt: Runtime
    workflows: dict[str, Workflow[Any, Any]]
    keepalive: float
    retry: int
    max_body: int
    max_clients: int
    live_buffer: int
    clients: int = 0

    # -- helpers -----------------------------------------------------------------------

    def _open_client(self) -> None:
        if self.clients >= self.max_clients:
            raise TooManyClients(
                f"this server already streams to {self.clients} clients (max_clients="
                f"{self.max_clients}); retry later, or raise app(..., max_clients=N)"
            )
        self.clients += 1

    def _close_client(self) -> None:
        self.clients -= 1

    def _stream(self, events: AsyncIterable[object]) -> EventSourceResponse:
        self._open_client()
        return EventSourceResponse(
            events, keepalive=self.keepalive, retry=self.retry, on_close=self._close_client
        )

    async def _run(self, run_id: str) -> RunInfo:
        return await self.rt.get_run(run_id)

    async def _end(self, run_id: str) -> Event:
        info = await self.rt.wait(run_id)
        return Event(_status_body(info, brief=True), event="end")

    # -- routes ------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        info = await self._run(request.path_params["run_id"])
        body = _status_body(info)
        body["streams"] = [
            {"key": s.key, "length": s.length, "closed": s.closed}
            for s in await self.rt.journal.list_streams(info.run_id)
        ]
        return _json_response(body)

    async def durable(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        key = validate_key(request.path_params["key"])
        offset = _start_offset(request)
        await self._run(run_id)
        return self._stream(self._durable_events(run_id, key, offset))

    async def _durable_events(self, run_id: str, key: str, offset: int) -> AsyncIterator[object]:
        entries = self.rt.read_stream_entries(run_id, key, from_offset=offset)
        async with aclosing(cast("AsyncGenerator[StreamEntry, None]", entries)) as it:
            async for entry in it:
                yield entry
        yield await self._end(run_id)

    async def live(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        relative = request.query_params.get("subject", ">")
        pattern = f"stream.{run_id}.{relative}"
        try:
            validate_pattern(pattern)
        except ValidationError:
            raise ValidationError(
                f"invalid subject {relative!r}: a NATS-style pattern relative to the run, "
                "such as 'generate', '*' or '>'"
            ) from None
        await self._run(run_id)
        sub = self.rt.subscribe_run(
            run_id, relative, buffer=self.live_buffer, overflow="drop_oldest"
        )
        return self._stream(self._live_events(run_id, sub))

    async def _live_events(self, run_id: str, sub: LiveSubscription) -> AsyncIterator[object]:
        async with sub:
            async for message in sub:
                yield message
        yield await self._end(run_id)

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        wf = self.workflows.get(name)
        if wf is None:
            raise WorkflowNotFound(
                f"no workflow {name!r} may be started here; this app allows "
                + (", ".join(repr(n) for n in sorted(self.workflows)) or "none")
            )
        body = await _read_body(request, self.max_body)
        try:
            req = msgspec.json.decode(body or b"{}", type=_StartRequest)
            data = req.input if wf.input_type is Any else msgspec.convert(req.input, wf.input_type)
        except msgspec.ValidationError as exc:
            raise ValidationError(
                f"bad request body for workflow {name!r}: {exc}; send JSON "
                '{"input": <the input>, "run_id": <optional id>}'
            ) from None
        except msgspec.DecodeError as exc:
            raise ValidationError(f"the request body is not valid JSON ({exc})") from None
        handle = await self.rt.start(wf, data, run_id=req.run_id)
        run_id = handle.run_id
        return _json_response(
            {
                "run_id": run_id,
                "workflow": name,
                "status": (await handle.status()).value,
                "links": {
                    "self": f"runs/{run_id}",
                    "stream": f"runs/{run_id}/streams/{{key}}",
                    "live": f"runs/{run_id}/live",
                },
            },
            status_code=202,
            headers={"location": f"runs/{run_id}"},
        )

    async def list_workflows(self, request: Request) -> Response:
        return _json_response({"workflows": sorted(self.workflows)})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_page_html())


@functools.cache
def _page_html() -> str:
    return resources.files("actorflow").joinpath("_web_page.html").read_text("utf-8")


# The app's own refusals. Not exported (only its handlers raise them); their
# class names are the ``type`` of the JSON error bodies clients see.


class TooManyClients(ActorflowError):
    """The app already streams to ``max_clients`` clients (503)."""


def _status_body(info: RunInfo, *, brief: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"run_id": info.run_id, "status": info.status.value}
    error = None
    if info.error is not None:
        error = {"type": info.error.type, "message": info.error.message}
    if not brief:
        body["workflow"] = info.workflow
        body["started_at"] = info.started_at
        body["finished_at"] = info.finished_at
        body["output"] = None if info.output is None else decode_value(info.output)
    body["error"] = error
    return body


def _start_offset(request: Request) -> int:
    last = request.headers.get("last-event-id", "").strip()
    if last:
        return _int(last, "the Last-Event-ID header") + 1
    text = request.query_params.get("from")
    if text is None:
        return 0
    return _int(text, "?from=")


def _int(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError(f"{what} must be a stream offset (an int >= 0), not {text!r}")
    return int(text)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _DRAIN:
        raise PayloadTooLarge(limit, close=True)
    parts: list[bytes] = []
    size = 0
    try:
        # Closed at once when the body is too large (not left to the garbage
        # collector, which trio warns about).
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    # Read the rest (up to _DRAIN bytes) and drop it, so the
                    # connection can carry the client's next request; an
                    # unread body makes HTTP/1.1 servers (hypercorn) close it.
                    raise PayloadTooLarge(limit, close=not await _drain(chunks, _DRAIN))
                parts.append(chunk)
    except ClientDisconnect:
        raise ValidationError("the client disconnected before sending its whole body") from None
    return b"".join(parts)


#: How much of a too-large request body is read and dropped before answering 413.
_DRAIN = 1 << 20


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> bool:
    """Read and drop ``chunks`` to their end; ``False`` if more than ``budget`` bytes."""
    async for chunk in chunks:
        budget -= len(chunk)
        if budget < 0:
            return False
    return True


class PayloadTooLarge(ActorflowError):
    """A request body over ``max_body`` (413)."""

    def __init__(self, limit: int, *, close: bool) -> None:
        super().__init__(
            f"the request body is larger than {limit} bytes; send less, or raise "
            "app(..., max_body=N)"
        )
        #: The body was left unread: the connection cannot carry another request.
        self.close = close


def _json_response(
    body: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        _json.encode(body),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (RunNotFound, 404),
    (WorkflowNotFound, 404),
    (PayloadTooLarge, 413),
    (TooManyClients, 503),
    (ValidationError, 400),
    (EncodeError, 400),
)


async def _on_actorflow_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 409)
    # A body refused before it was all read leaves the rest of it on the wire:
    # the connection cannot carry another request, so tell the client not to
    # reuse it (hypercorn closes it; a client that reused it would fail).
    headers = {"connection": "close"} if getattr(exc, "close", False) else None
    return _json_response({"error": _error_body(exc)}, status_code=status, headers=headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
    return _json_response(
        {"error": {"type": kind, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _on_internal_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback; the client gets none.
    body = {"type": "InternalError", "message": "the server failed; see its log"}
    return _json_response({"error": body}, status_code=500)


def app(
    rt: Runtime,
    *,
    workflows: Iterable[Workflow[Any, Any]] = (),
    keepalive: float = 15.0,
    retry: int = 1000,
    max_body: int = 65536,
    max_clients: int = 10_000,
    live_buffer: int = 1024,
    page: bool = True,
) -> Starlette:
    """An ASGI app streaming the runs of ``rt`` as Server-Sent Events (routes above).

    Mount it in FastAPI or Starlette (``api.mount("/af", af.web.app(rt))``) or
    serve it (``uvicorn.run(af.web.app(rt))``) while ``rt`` is open.

    Args:
        rt: an open runtime (``async with af.Runtime(...) as rt``).
        workflows: the workflows ``POST /workflows/{name}`` may start; no others.
        keepalive: seconds of silence on a stream after which a comment is sent.
        retry: milliseconds a browser waits before reconnecting a dropped stream.
        max_body: the largest request body accepted, in bytes (larger: 413).
        max_clients: how many SSE streams may be open at once (more: 503).
        live_buffer: messages buffered per live client before the oldest are
            dropped (each event then says how many it lost: ``dropped_before``).
        page: serve the prompt-and-stream page at ``/``.

    Raises:
        ValidationError: a bad option, or something in ``workflows`` that is not
            an ``@af.workflow``.
    """
    allowed: dict[str, Workflow[Any, Any]] = {}
    for wf in workflows:
        if not isinstance(wf, Workflow):
            raise ValidationError(f"app(workflows=...) takes @af.workflow functions, not {wf!r}")
        allowed[wf.name] = wf
    for name, value in (("max_body", max_body), ("max_clients", max_clients)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{name} must be an int >= 1, not {value!r}")
    if isinstance(live_buffer, bool) or not isinstance(live_buffer, int) or live_buffer < 1:
        raise ValidationError(f"live_buffer must be an int >= 1, not {live_buffer!r}")
    _check_stream_options(keepalive, retry)
    api = _Api(
        rt,
        allowed,
        keepalive=float(keepalive),
        retry=retry,
        max_body=max_body,
        max_clients=max_clients,
        live_buffer=live_buffer,
    )
    routes = [
        Route("/runs/{run_id}", api.status, methods=["GET"]),
        Route("/runs/{run_id}/streams/{key}", api.durable, methods=["GET"]),
        Route("/runs/{run_id}/live", api.live, methods=["GET"]),
        Route("/workflows", api.list_workflows, methods=["GET"]),
        Route("/workflows/{name}", api.start, methods=["POST"]),
    ]
    if page:
        routes.append(Route("/", api.page, methods=["GET"]))
    return Starlette(
        routes=routes,
        exception_handlers={
            ActorflowError: _on_actorflow_error,
            HTTPException: _on_http_error,
            Exception: _on_internal_error,
        },
    )


# -- serving -------------------------------------------------------------------------


async def serve(
    asgi_app: Callable[..., Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    ready: Callable[[int], object] | None = None,
    shutdown_timeout: float = 1.0,
) -> None:
    """Serve an ASGI app until cancelled, or until Ctrl-C (SIGINT) or SIGTERM.

    On asyncio it runs uvicorn; on trio, hypercorn. Open the runtime around it::

        async with af.Runtime("chat.db") as rt:
            await af.web.serve(af.web.app(rt, workflows=[chat]), port=8000)

    Args:
        asgi_app: the application, e.g. :func:`app`'s.
        host: the address to listen on; loopback by default.
        port: the TCP port; ``0`` picks a free one (see ``ready``).
        ready: called with the port once the server listens.
        shutdown_timeout: seconds open streams get to finish when it stops.

    Raises:
        ActorflowError: the server could not listen on ``host:port``.
    """
    if sniffio.current_async_library() == "trio":
        await _serve_hypercorn(asgi_app, host, port, ready, shutdown_timeout)
    else:
        await _serve_uvicorn(asgi_app, host, port, ready, shutdown_timeout)


async def _serve_uvicorn(
    asgi_app: Callable[..., Any],
    host: str,
    port: int,
    ready: Callable[[int], object] | None,
    shutdown_timeout: float,
) -> None:
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "serving on asyncio needs uvicorn; install the web extra: pip install 'actorflow[web]'"
        ) from None
    # Bound here rather than by uvicorn, so that a port in use is our one-line
    # error (uvicorn logs it and exits the process).
    sock = _listen(host, port)
    config = uvicorn.Config(
        asgi_app,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=math.ceil(shutdown_timeout),
    )
    server = _uvicorn_server_class()(config)
    done = anyio.Event()

    async def run() -> None:
        # Shielded so that a cancelled caller still gets a graceful shutdown
        # (sockets closed, connections ended) rather than an abandoned server.
        try:
            with anyio.CancelScope(shield=True):
                await server.serve(sockets=[sock])
        finally:
            done.set()

    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                # The socket listens already: a client may connect now, and is
                # accepted as soon as uvicorn has started.
                if ready is not None:
                    ready(sock.getsockname()[1])
                await done.wait()
            finally:
                server.should_exit = True


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Raises:
        ActorflowError: the address is in use, or not one of this machine's.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ActorflowError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host"
        ) from None


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` at the first SIGINT (Ctrl-C) or SIGTERM: the server stops, quietly."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def _uvicorn_server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, whose Ctrl-C (or SIGTERM) just stops it: serve() returns.

        (uvicorn's own re-raises the signal once it has stopped, which would
        surface as a KeyboardInterrupt inside our task group.)
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


async def _serve_hypercorn(
    asgi_app: Callable[..., Any],
    host: str,
    port: int,
    ready: Callable[[int], object] | None,
    shutdown_timeout: float,
) -> None:
    try:
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "serving on trio needs hypercorn; install the web extra: pip install 'actorflow[web]'"
        ) from None
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket now
    config.graceful_timeout = shutdown_timeout
    config.accesslog = None
    config.loglevel = "WARNING"
    async with anyio.create_task_group() as tg:
        if threading.current_thread() is threading.main_thread():
            tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await tg.start(hypercorn_serve, asgi_app, config)
        if ready is not None:
            ready(bound)
