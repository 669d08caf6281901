"""The one place that knows which event loop runs: asyncio or trio.

Everything else in actorflow is written against anyio. A few things anyio does
not offer cheaply live here, behind backend-neutral functions, the way anyio
keeps its own backends behind one interface. trio is imported lazily, so
actorflow works without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = (
    "CallSoon",
    "current_call_here",
    "current_call_soon",
    "current_loop_token",
    "virtual_time_backend",
    "virtual_time_loop_factory",
)

_INF = float("inf")

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


def current_call_here() -> CallSoon:
    """Return ``call_soon(fn, *args)`` for the running loop, to call from its own thread.

    The callback runs soon after the current task yields, with no system call:
    ``loop.call_soon`` on asyncio; on trio, a system task of this run (one per
    run) that runs the callbacks queued since it last ran. (trio's own
    ``run_sync_soon`` is thread-safe and wakes the loop through a socket,
    which costs a system call and an I/O wake-up per callback.) A callback
    that raises is logged to the ``actorflow`` logger, as asyncio does.

    Raises:
        RuntimeError: no supported event loop runs in this thread.
    """
    library = _current_library()
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop().call_soon
    if library == "trio":
        return _trio_call_here()
    return current_call_soon()  # raises the error naming the library


def _trio_call_here() -> CallSoon:
    import trio

    var = _trio_run_var()
    runner: _TrioCallbacks | None = var.get(None)
    if runner is None:
        runner = _TrioCallbacks()
        trio.lowlevel.spawn_system_task(runner.run, name="actorflow callbacks")
        var.set(runner)
    return runner.call


_RUN_VAR: Any = None


def _trio_run_var() -> Any:
    global _RUN_VAR
    if _RUN_VAR is None:
        import trio

        _RUN_VAR = trio.lowlevel.RunVar("actorflow_callbacks")
    return _RUN_VAR


class _TrioCallbacks:
    """Runs callbacks queued from the trio thread, in a system task of the run."""

    __slots__ = ("_calls", "_waiting")

    def __init__(self) -> None:
        self._calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._waiting: Any = None  # the system task, while it waits for callbacks

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        import trio

        self._calls.append((fn, args))
        task, self._waiting = self._waiting, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    async def run(self) -> None:
        import trio

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiting = None
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            if not self._calls:
                self._waiting = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(abort)
            calls, self._calls = self._calls, []
            for fn, args in calls:
                try:
                    fn(*args)
                except Exception:
                    logging.getLogger("actorflow").exception("callback %r failed", fn)


def current_loop_token() -> object:
    """An object that identifies the running event loop (one per ``anyio.run``).

    Raises:
        RuntimeError: no supported event loop runs in this thread.
    """
    library = _current_library()
    if library == "asyncio":
        import asyncio

        return asyncio.get_running_loop()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    return current_call_soon()  # raises the error naming the library


def virtual_time_loop_factory() -> Callable[[], Any]:
    """A factory of asyncio loops whose clock jumps to the next timer when nothing is ready.

    The asyncio twin of trio's ``MockClock(autojump_threshold=0)``: timeouts,
    sleeps and backoff take no real time. Pass it as anyio's
    ``backend_options={"loop_factory": ...}``.
    """
    import asyncio

    class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
        def __init__(self) -> None:
            super().__init__()
            self._virtual_now = 0.0

        def time(self) -> float:
            return self._virtual_now

        def _run_once(self) -> None:
            # asyncio has no public hook for "the loop is idle": read its queues.
            ready: Any = getattr(self, "_ready")  # noqa: B009
            scheduled: Any = getattr(self, "_scheduled")  # noqa: B009
            if not ready and not getattr(self, "_stopping"):  # noqa: B009
                # A timer at infinity (anyio's sleep_forever) is no next event:
                # jumping there would push every later deadline to infinity.
                live = [w for h in scheduled if not h.cancelled() and (w := h.when()) < _INF]
                if live:
                    self._virtual_now = max(self._virtual_now, min(live))
            super()._run_once()  # type: ignore[misc]

    return VirtualTimeEventLoop


def virtual_time_backend(backend: str) -> tuple[str, dict[str, Any]]:
    """anyio's ``(backend, options)`` for a run in virtual time on ``backend``."""
    if backend == "trio":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    if backend == "asyncio":
        return ("asyncio", {"loop_factory": virtual_time_loop_factory()})
    raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
