"""The one place that knows which event loop runs: asyncio or trio.

Everything else in actorflow is written against anyio. A few things anyio does
not offer cheaply live here, behind backend-neutral functions, the way anyio
keeps its own backends behind one interface. trio is imported lazily, so
actorflow works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ("CallSoon", "current_call_soon")

CallSoon: TypeAlias = Callable[..., object]
"""``call_soon(fn, *args)``: schedule ``fn(*args)`` on an event loop, from any thread.

It never blocks and never waits for ``fn`` to run. Once the loop has stopped it
raises :class:`RuntimeError`.
"""


def _current_library() -> str:
    try:
        import sniffio
    except ImportError:  # sniffio comes with trio: without it only asyncio can run
        return "asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            "current_call_soon() must be called from async code running on asyncio or trio"
        ) from None


def current_call_soon() -> CallSoon:
    """Return a thread-safe, non-blocking ``call_soon`` for the running event loop.

    Call it from async code; the returned function may then be called from any
    thread (a journal's writer thread, for instance) to run a callback in the
    loop's thread: ``loop.call_soon_threadsafe`` on asyncio,
    ``TrioToken.run_sync_soon`` on trio.

    Raises:
        RuntimeError: no supported event loop runs in this thread.
    """
    library = _current_library()
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop().call_soon_threadsafe
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    raise RuntimeError(f"actorflow runs on asyncio or trio, not on {library!r}")
