"""Who may call the app: the Host allow-list, ``auth``, and the checks on state-changing requests.

A browser on any site can send requests to a server on the user's loopback
address: a page whose DNS name resolves to 127.0.0.1 (DNS rebinding) reads the
answers, and a cross-site form POST starts runs (CSRF). The Host allow-list
refuses the first; a JSON content type (which a form cannot send) and an
allowed Origin on state-changing requests refuse the second.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import attrs
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .._exceptions import ActorflowError, ValidationError
from ._http import Forbidden, Unauthorized, UnsupportedMediaType, _on_actorflow_error

#: ``auth(request)``: returns ``None`` or ``True`` to accept, ``False`` to refuse
#: with 401, or raises :class:`Unauthorized` (401) or :class:`Forbidden` (403).
Auth = Callable[[Request], "bool | Awaitable[bool | None] | None"]

#: The Host names a local server answers to by default (any port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")

#: Methods that change nothing, so need no CSRF check.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(token: str) -> Auth:
    """An ``auth`` callable for :func:`app` accepting ``Authorization: Bearer <token>``.

    The comparison takes the same time whatever the header holds, so it does not
    tell a client how much of a guess was right.

    Raises:
        ValidationError: ``token`` is empty or holds whitespace or control characters.
    """
    if (
        not isinstance(token, str)
        or not token
        or not token.isprintable()
        or any(c.isspace() for c in token)
    ):
        raise ValidationError(
            "an auth token must be a non-empty string with no spaces or control characters"
        )
    expected = f"Bearer {token}".encode()

    def check(request: Request) -> None:
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            raise Unauthorized(
                f"{request.method} {request.url.path!r} needs a valid 'Authorization: Bearer "
                "<token>' header; send the token the server was started with"
            )

    return check


def _host_name(authority: str) -> str:
    """The name part of a Host header (``[::1]:8000`` -> ``[::1]``), lower-case."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end > 0 else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _normalize_hosts(hosts: Iterable[str] | None) -> frozenset[str]:
    if hosts is None:
        return frozenset(LOOPBACK_HOSTS)
    if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
        raise ValidationError(
            f"allowed_hosts must be a list of host names (or ['*']), not {hosts!r}"
        )
    # A bare IPv6 address, as a user would write it, in its Host header form.
    return frozenset(
        f"[{h.lower()}]" if h.count(":") > 1 and not h.startswith("[") else h.lower() for h in hosts
    )


def _normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    if isinstance(origins, str) or not all(isinstance(o, str) and o for o in origins):
        raise ValidationError(
            "allowed_origins must be a list of origins such as 'https://app.example.com' "
            f"(or ['*']), not {origins!r}"
        )
    return frozenset(o.lower().rstrip("/") for o in origins)


def _same_origin(origin: str, authority: str) -> bool:
    """Whether a browser's ``Origin`` names the server the request was sent to (its Host)."""
    try:
        theirs = urlsplit(origin)
        ours = urlsplit("//" + authority)
        if theirs.scheme not in ("http", "https") or not theirs.hostname or not ours.hostname:
            return False
        default = 443 if theirs.scheme == "https" else 80
        return theirs.hostname == ours.hostname and (theirs.port or default) == (
            ours.port or default
        )
    except ValueError:  # a port that is not a number
        return False


@attrs.define(eq=False)
class Guard:
    """ASGI middleware: checks the Host, runs ``auth``, checks state-changing requests.

    In that order: a request from a host the server does not answer to is
    refused before any credentials are looked at.
    """

    app: ASGIApp
    auth: Auth | None = None
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_HOSTS)
    allowed_origins: frozenset[str] = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            authority = self._check_host(request)
            if self.auth is not None:
                await self._authenticate(request)
            if request.method not in _SAFE_METHODS:
                self._check_state_change(request, authority)
        except ActorflowError as exc:
            response = await _on_actorflow_error(request, exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_host(self, request: Request) -> str:
        authority = request.headers.get("host", "")
        if "*" in self.allowed_hosts:
            return authority
        if authority.strip().lower() in self.allowed_hosts:  # an entry with its port
            return authority
        if _host_name(authority) not in self.allowed_hosts:
            raise Forbidden(
                f"this server does not answer to the host {authority!r}; connect to it by one "
                "of its allowed names, or add this one to app(..., allowed_hosts=[...])"
            )
        return authority

    async def _authenticate(self, request: Request) -> None:
        assert self.auth is not None
        verdict = self.auth(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is False:
            raise Unauthorized(
                f"{request.method} {request.url.path!r} needs credentials this server accepts"
            )

    def _check_state_change(self, request: Request, authority: str) -> None:
        origin = request.headers.get("origin")
        if (
            origin is not None
            and "*" not in self.allowed_origins
            and origin.lower().rstrip("/") not in self.allowed_origins
            and not _same_origin(origin, authority)
        ):
            raise Forbidden(
                f"{request.method} {request.url.path!r} from the origin {origin!r} is refused "
                "(a cross-site request); add it to app(..., allowed_origins=[...]) if you trust it"
            )
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        content_type = request.headers.get("content-type")
        if (has_body or content_type is not None) and (
            (content_type or "").split(";", 1)[0].strip().lower() != "application/json"
        ):
            # A form (which any site can post) cannot send this type.
            raise UnsupportedMediaType(
                f"{request.method} {request.url.path!r} takes a JSON body: send it with "
                f"'Content-Type: application/json', not {content_type!r}"
            )
