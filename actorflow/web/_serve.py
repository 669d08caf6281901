"""Serving an ASGI app until stopped: uvicorn on asyncio, hypercorn on trio."""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import sniffio

from .._exceptions import ActorflowError


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
