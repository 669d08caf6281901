"""Serving an ASGI app until stopped: uvicorn on asyncio, hypercorn on trio."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import sniffio

from .._exceptions import ActorflowError, ValidationError
from ._guard import bearer_token

#: Where ``actorflow serve`` reads its auth token when ``--auth-token`` is not given.
AUTH_TOKEN_ENV = "ACTORFLOW_AUTH_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves only this machine (``localhost``, ``127.x``, ``::1``)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve anywhere
        return False


def serve_options(host: str, auth_token: str | None = None) -> dict[str, Any]:
    """The :func:`app` options for ``actorflow serve --host HOST [--auth-token TOKEN]``.

    Without a token (from ``auth_token`` or the ``ACTORFLOW_AUTH_TOKEN``
    environment variable) only a loopback bind is allowed: anyone who can reach
    the server could read every run and start workflows. With a token, every
    request needs ``Authorization: Bearer TOKEN``; a non-loopback bind then
    answers to any Host name (the token, which a browser does not send by
    itself, is what keeps other sites out).

    Raises:
        ActorflowError: a non-loopback ``host`` and no token.
        ValidationError: an empty token, or one with spaces.
    """
    token = auth_token if auth_token is not None else os.environ.get(AUTH_TOKEN_ENV)
    if token is None or (auth_token is None and not token):
        if not is_loopback(host):
            raise ActorflowError(
                f"refusing to serve on {host!r} without authentication (anyone who reaches it "
                "could read and start runs); give --auth-token TOKEN or set "
                f"{AUTH_TOKEN_ENV}, or bind to 127.0.0.1"
            )
        return {}
    options: dict[str, Any] = {"auth": bearer_token(token)}
    if not is_loopback(host):
        options["allowed_hosts"] = ("*",)
    return options


async def serve(
    asgi_app: Callable[..., Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    ready: Callable[[int], object] | None = None,
    shutdown_timeout: float = 1.0,
    idle_timeout: float = 5.0,
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
        idle_timeout: seconds a connection may take to send a request's
            headers, or stay idle between requests, before it is closed (a
            client that stops mid-request holds no connection for longer).
            A response being streamed is not idle.

    Raises:
        ActorflowError: the server could not listen on ``host:port``.
        ValidationError: a bad ``idle_timeout``.
    """
    if (
        isinstance(idle_timeout, bool)
        or not isinstance(idle_timeout, int | float)
        or not (0 < idle_timeout < math.inf)
    ):
        raise ValidationError(f"idle_timeout must be a number of seconds > 0, not {idle_timeout!r}")
    if sniffio.current_async_library() == "trio":
        await _serve_hypercorn(asgi_app, host, port, ready, shutdown_timeout, idle_timeout)
    else:
        await _serve_uvicorn(asgi_app, host, port, ready, shutdown_timeout, idle_timeout)


async def _serve_uvicorn(
    asgi_app: Callable[..., Any],
    host: str,
    port: int,
    ready: Callable[[int], object] | None,
    shutdown_timeout: float,
    idle_timeout: float,
) -> None:
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "serving on asyncio needs uvicorn; install the web extra: pip install '.[web]' in an "
            "actorflow checkout, or pip install 'actorflow[web] @ git+<clone URL>'"
        ) from None
    # Bound here rather than by uvicorn, so that a port in use is our one-line
    # error (uvicorn logs it and exits the process).
    sock = _listen(host, port)
    config = uvicorn.Config(
        asgi_app,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=math.ceil(shutdown_timeout),
        timeout_keep_alive=math.ceil(idle_timeout),
        http=_uvicorn_protocol_class(idle_timeout),
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


def _uvicorn_protocol_class(header_timeout: float) -> type[Any]:
    import asyncio

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        """uvicorn's h11 protocol that closes a connection whose request headers are late.

        (uvicorn's keep-alive timer starts only after a response, and any data
        stops it: a client that connects, or sends part of a request line, and
        then stops would hold its connection for ever.) The deadline runs from
        the connection, or the end of the previous response, to a whole
        request head; data arriving meanwhile does not extend it.
        """

        _headers_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._headers_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._headers_arrived()
            self._headers_deadline = self.loop.call_later(header_timeout, self._headers_late)

        def _headers_arrived(self) -> None:
            if self._headers_deadline is not None:
                self._headers_deadline.cancel()
                self._headers_deadline = None

        def _headers_late(self) -> None:
            self._headers_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return Protocol


async def _serve_hypercorn(
    asgi_app: Callable[..., Any],
    host: str,
    port: int,
    ready: Callable[[int], object] | None,
    shutdown_timeout: float,
    idle_timeout: float,
) -> None:
    try:
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "serving on trio needs hypercorn; install the web extra: pip install '.[web]' in an "
            "actorflow checkout, or pip install 'actorflow[web] @ git+<clone URL>'"
        ) from None
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket now
    config.graceful_timeout = shutdown_timeout
    # Hypercorn's keep-alive timer also runs while a request's headers arrive.
    config.keep_alive_timeout = idle_timeout
    config.accesslog = None
    config.loglevel = "WARNING"
    async with anyio.create_task_group() as tg:
        if threading.current_thread() is threading.main_thread():
            tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await tg.start(hypercorn_serve, asgi_app, config)
        if ready is not None:
            ready(bound)
