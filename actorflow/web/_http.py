"""The app's HTTP plumbing: its refusals, reading a bounded body, JSON answers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .._exceptions import (
    ActorflowError,
    EncodeError,
    RunNotFound,
    ValidationError,
    WorkflowNotFound,
)
from ._sse import _error_body, _json

# The app's refusals; their class names are the ``type`` of the JSON error
# bodies clients see. Unauthorized and Forbidden are public (an ``auth``
# callable raises them); the others only the app raises.


class Unauthorized(ActorflowError):
    """An ``auth`` callable refuses a request that has no valid credentials (401)."""


class Forbidden(ActorflowError):
    """A request refused for who sent it: its Host, its Origin, or by ``auth`` (403)."""


class UnsupportedMediaType(ActorflowError):
    """A state-changing request whose body is not declared ``application/json`` (415)."""


class TooManyClients(ActorflowError):
    """The app already streams to ``max_clients`` clients (503)."""


class RuntimeNotOpen(ActorflowError):
    """A request reached the app while its runtime is not open (503)."""


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
    (Unauthorized, 401),
    (Forbidden, 403),
    (UnsupportedMediaType, 415),
    (RunNotFound, 404),
    (WorkflowNotFound, 404),
    (PayloadTooLarge, 413),
    (TooManyClients, 503),
    (RuntimeNotOpen, 503),
    (ValidationError, 400),
    (EncodeError, 400),
)


async def _on_actorflow_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 409)
    # A body refused before it was all read leaves the rest of it on the wire:
    # the connection cannot carry another request, so tell the client not to
    # reuse it (hypercorn closes it; a client that reused it would fail).
    headers = {"connection": "close"} if getattr(exc, "close", False) else {}
    if isinstance(exc, Unauthorized):
        headers["www-authenticate"] = "Bearer"
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
