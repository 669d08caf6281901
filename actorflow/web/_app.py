"""The ASGI application: its routes over a runtime, and :func:`app` that builds it."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import attrs
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .._codec import decode_value
from .._exceptions import ActorflowError, ValidationError, WorkflowNotFound
from .._live import run_pattern
from .._registry import Workflow
from .._restarts import StreamRestart
from .._validate import validate_key
from ..abc import LiveSubscription, RunInfo, StreamEntry
from ._guard import Auth, Guard, _normalize_hosts, _normalize_origins
from ._http import (
    RuntimeNotOpen,
    TooManyClients,
    _json_response,
    _on_actorflow_error,
    _on_http_error,
    _on_internal_error,
    _read_body,
    _start_offset,
)
from ._lifespan import opening
from ._manage import Management
from ._sse import Event, EventStreamResponse, _check_stream_options

if TYPE_CHECKING:
    from .._runtime import Runtime


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
    manage: bool = False
    clients: int = 0

    # -- helpers -----------------------------------------------------------------------

    def _check_capacity(self) -> None:
        if self.clients >= self.max_clients:
            raise TooManyClients(
                f"this server already streams to {self.clients} clients (max_clients="
                f"{self.max_clients}); retry later, or raise app(..., max_clients=N)"
            )

    def _close_client(self) -> None:
        self.clients -= 1

    def _stream(self, events: AsyncIterable[object]) -> EventStreamResponse:
        self._check_capacity()
        self.clients += 1
        return EventStreamResponse(
            events, keepalive=self.keepalive, retry=self.retry, on_close=self._close_client
        )

    def _check_open(self) -> None:
        if not self.rt.is_open:
            raise RuntimeNotOpen(
                f"the runtime {self.rt!r} is not open; open it in the application's lifespan "
                "(FastAPI(lifespan=actorflow.web.lifespan(rt))), or serve inside `async with rt`"
            )

    async def _run(self, run_id: str) -> RunInfo:
        self._check_open()
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
        try:
            return _json_response(body)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            # The output is the one field that may be a value msgpack stores
            # but JSON cannot carry (a dict with tuple keys, an extension type).
            body["output"] = None
            body["output_error"] = {
                "type": "EncodeError",
                "message": f"the output of run {info.run_id!r} cannot be sent as JSON ({exc}); "
                "read it from Python (rt.handle(run_id).result())",
            }
            return _json_response(body)

    async def durable(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        key = validate_key(request.path_params["key"])
        offset = _start_offset(request)
        await self._run(run_id)
        return self._stream(self._durable_events(run_id, key, offset))

    async def _durable_events(self, run_id: str, key: str, offset: int) -> AsyncIterator[object]:
        entries = self.rt.read_stream_entries(run_id, key, from_offset=offset, restarts=True)
        async with aclosing(
            cast("AsyncGenerator[StreamEntry | StreamRestart, None]", entries)
        ) as it:
            async for entry in it:
                yield entry
        yield await self._end(run_id)

    async def live(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        relative = request.query_params.get("subject", ">")
        try:
            run_pattern(run_id, relative)
        except ValidationError:
            raise ValidationError(
                f"invalid subject {relative!r}: a NATS-style pattern relative to the run, "
                "such as 'generate', '*' or '>'"
            ) from None
        await self._run(run_id)
        # Refused before subscribing: a refused client must leave no subscription
        # behind (nothing awaits between here and _stream's count).
        self._check_capacity()
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
        self._check_open()
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
        except RecursionError:
            raise ValidationError(
                f"the request body for workflow {name!r} is nested too deeply to decode; "
                "send a flatter input"
            ) from None
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
            # An absolute path: relative, it would resolve against this request's
            # path (/workflows/runs/...). root_path: where the app is mounted.
            headers={"location": f"{request.scope.get('root_path', '')}/runs/{run_id}"},
        )

    async def list_workflows(self, request: Request) -> Response:
        return _json_response({"workflows": sorted(self.workflows)})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_page_html())


@functools.cache
def _page_html() -> str:
    return resources.files("actorflow.web").joinpath("_page.html").read_text("utf-8")


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
    auth: Auth | None = None,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] = (),
    manage: bool | None = None,
) -> Starlette:
    """An ASGI app streaming the runs of ``rt`` as Server-Sent Events (routes above).

    ``rt`` need not be open yet, so the app can be made at import time. Served
    on its own (``uvicorn module:app``), the app opens ``rt`` on the ASGI
    lifespan's startup, unless it is open already, and closes it on shutdown.
    Mounted in FastAPI or Starlette (``api.mount("/af", actorflow.web.app(rt))``),
    its lifespan does not run (mounted apps' never do): open ``rt`` in the
    parent's, with ``FastAPI(lifespan=actorflow.web.lifespan(rt))``. While
    ``rt`` is not open, requests are answered ``503``.

    Args:
        rt: the runtime whose runs it serves.
        workflows: the workflows ``POST /workflows/{name}`` may start; no others.
        keepalive: seconds of silence on a stream after which a comment is sent.
        retry: milliseconds a browser waits before reconnecting a dropped stream.
        max_body: the largest request body accepted, in bytes (larger: 413).
        max_clients: how many SSE streams may be open at once (more: 503).
        live_buffer: messages buffered per live client before the oldest are
            dropped (each event then says how many it lost: ``dropped_before``).
        page: serve the dashboard at ``/``.
        auth: called with every request (a Starlette ``Request``), before its
            route; sync or async. It returns ``None`` (or ``True``) to let the
            request through, ``False`` to refuse it with 401, or raises
            :class:`Unauthorized` (401) or :class:`Forbidden` (403).
            :func:`bearer_token` makes one that checks ``Authorization: Bearer``.
        allowed_hosts: the names the server answers to, as in the ``Host``
            header (``"example.com"`` with any port, or ``"example.com:8443"``);
            others are refused with 403, so a page on another site whose DNS
            name resolves to this server cannot read it. ``None``: ``localhost``,
            ``127.0.0.1`` and ``[::1]``; ``["*"]``: any (behind a proxy that
            checks it, or with ``auth``).
        allowed_origins: origins (``"https://app.example.com"``) besides the
            server's own from which a browser may send state-changing requests
            (``POST``); ``["*"]``: any. A ``POST`` whose ``Origin`` is another
            site's is refused with 403, and one whose body is not declared
            ``application/json`` with 415, which a cross-site form cannot send.
        manage: whether ``POST /runs/{id}/cancel`` and ``POST /runs/{id}/send``
            (and the dashboard's cancel and send buttons) may change runs;
            refused with 403 otherwise. ``None``: when ``workflows`` is not
            empty, since an app that may start runs may manage them too.

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
    if manage is not None and not isinstance(manage, bool):
        raise ValidationError(f"manage must be True, False or None, not {manage!r}")
    if auth is not None and not callable(auth):
        raise ValidationError(f"auth must be a callable taking the request, not {auth!r}")
    guard = Middleware(
        Guard,
        auth=auth,
        allowed_hosts=_normalize_hosts(allowed_hosts),
        allowed_origins=_normalize_origins(allowed_origins),
    )
    api = _Api(
        rt,
        allowed,
        keepalive=float(keepalive),
        retry=retry,
        max_body=max_body,
        max_clients=max_clients,
        live_buffer=live_buffer,
        manage=bool(allowed) if manage is None else manage,
    )
    runs = Management(rt, api.manage, max_body)
    routes = [
        Route("/runs/{run_id}", api.status, methods=["GET"]),
        Route("/runs/{run_id}/streams/{key}", api.durable, methods=["GET"]),
        Route("/runs/{run_id}/live", api.live, methods=["GET"]),
        Route("/workflows", api.list_workflows, methods=["GET"]),
        Route("/workflows/{name}", api.start, methods=["POST"]),
        Route("/runs", runs.list_runs, methods=["GET"]),
        Route("/runs/{run_id}/steps", runs.steps, methods=["GET"]),
        Route("/runs/{run_id}/cancel", runs.cancel, methods=["POST"]),
        Route("/runs/{run_id}/send", runs.send, methods=["POST"]),
    ]
    if page:
        routes.append(Route("/", api.page, methods=["GET"]))
    return Starlette(
        routes=routes,
        middleware=[guard],
        lifespan=opening(rt, unless_open=True),
        exception_handlers={
            ActorflowError: _on_actorflow_error,
            HTTPException: _on_http_error,
            Exception: _on_internal_error,
        },
    )
