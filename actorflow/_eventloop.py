"""The one place that knows which event loop runs: asyncio or trio.

Everything else in actorflow is written against anyio. A few things anyio does
not offer cheaply live here, behind backend-neutral functions, the way anyio
keeps its own backends behind one interface. trio is imported lazily, so
actorflow works without it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

__all__ = (
    "CallSoon",
    "current_call_here",
    "current_call_soon",
    "current_loop_token",
    "jump",
    "next_timer",
    "seconds_to_next_deadline",
    "set_autojump",
    "set_schedule_seed",
    "spawn_detached",
    "virtual_time_backend",
    "virtual_time_loop_factory",
    "wait_idle",
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


#: asyncio keeps only weak references to tasks: these are held until they end.
_detached: set[Any] = set()


def spawn_detached(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Start ``fn()`` in a task of its own that outlives the caller's task.

    For what structured concurrency cannot express: a task group entered in
    one task and left in another (a runtime opened in one notebook cell and
    closed in the next). ``fn`` must not raise (on trio, a system task that
    raises crashes the run); it is cancelled when the event loop ends.
    """
    if _current_library() == "trio":
        import trio

        trio.lowlevel.spawn_system_task(fn)
    else:
        import asyncio

        task = asyncio.get_running_loop().create_task(fn())
        _detached.add(task)
        task.add_done_callback(_detached.discard)


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
            # Futures of wait_idle(): resolved when nothing is ready, before time jumps.
            self._idle_waiters: list[asyncio.Future[None]] = []
            # set_schedule_seed(): shuffles the ready tasks of each iteration.
            self._schedule_rng: random.Random | None = None
            # set_autojump(False): time moves only by jump(), as a test says.
            self._autojump = True

        def time(self) -> float:
            return self._virtual_now

        def _run_once(self) -> None:
            # asyncio has no public hook for "the loop is idle": read its queues.
            ready: Any = getattr(self, "_ready")  # noqa: B009
            if not ready and not getattr(self, "_stopping"):  # noqa: B009
                if self._idle_waiters:
                    # Every task waits: wake whoever asked, before time moves.
                    waiters, self._idle_waiters = self._idle_waiters, []
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                elif self._autojump:
                    deadline = next_timer(self)
                    if deadline < _INF:
                        self._virtual_now = max(self._virtual_now, deadline)
            elif self._schedule_rng is not None and len(ready) > 1:
                _shuffle_tasks(ready, self._schedule_rng)
            super()._run_once()  # type: ignore[misc]

    return VirtualTimeEventLoop


def next_timer(loop: Any) -> float:
    """The loop time of an asyncio loop's next live timer, or infinity.

    A timer at infinity (anyio's ``sleep_forever``) is no next event: jumping
    there would push every later deadline to infinity.
    """
    scheduled: Any = getattr(loop, "_scheduled")  # noqa: B009
    return min((w for h in scheduled if not h.cancelled() and (w := h.when()) < _INF), default=_INF)


def _shuffle_tasks(ready: Any, rng: random.Random) -> None:
    """Shuffle the ready task steps among their own places; other callbacks keep theirs.

    Callbacks scheduled with ``call_soon`` keep their FIFO order, which asyncio
    promises; only the order in which ready tasks resume changes, which it
    does not.
    """
    places = [i for i, handle in enumerate(ready) if _is_task_step(handle)]
    if len(places) > 1:
        handles = [ready[i] for i in places]
        rng.shuffle(handles)
        for i, handle in zip(places, handles, strict=True):
            ready[i] = handle


def _is_task_step(handle: Any) -> bool:
    """Whether a ready handle resumes an asyncio Task (its callback is bound to the task)."""
    import asyncio

    return isinstance(getattr(getattr(handle, "_callback", None), "__self__", None), asyncio.Task)


def _virtual_loop() -> Any:
    """The running asyncio loop if it is a virtual-time loop, else ``None``."""
    import asyncio

    loop = asyncio.get_running_loop()
    return loop if hasattr(loop, "_idle_waiters") else None


async def wait_idle() -> None:
    """Return once every other task of the loop waits (on something that has not happened).

    On actorflow's virtual-time asyncio loop this is exact and polls nothing:
    the loop wakes the caller when no callback is ready, before it moves
    time. On trio it is ``trio.testing.wait_all_tasks_blocked()``; on another
    asyncio loop, ``anyio.wait_all_tasks_blocked()``.
    """
    library = _current_library()
    if library == "trio":
        import trio.testing

        await trio.testing.wait_all_tasks_blocked()
        return
    loop = _virtual_loop()
    if loop is None:
        import anyio

        await anyio.wait_all_tasks_blocked()
        return
    waiter = loop.create_future()
    loop._idle_waiters.append(waiter)
    await waiter


def seconds_to_next_deadline() -> float:
    """Loop seconds until the next timer of the running loop (infinity if none)."""
    if _current_library() == "trio":
        import trio

        return float(trio.lowlevel.current_statistics().seconds_to_next_deadline)
    import asyncio

    loop = asyncio.get_running_loop()
    return max(0.0, next_timer(loop) - loop.time())


def set_schedule_seed(seed: int | None) -> bool:
    """Perturb, reproducibly, the order in which ready tasks run (``None``: stop).

    On the virtual-time asyncio loop, the ready tasks of each loop iteration
    are shuffled by a ``random.Random(seed)``; on trio, which already runs
    each batch of ready tasks in a random order, its scheduler's generator is
    seeded. Returns False where it cannot (another asyncio loop).
    """
    if _current_library() == "trio":
        import trio

        # trio's scheduler draws from one module-level Random; no public seam.
        rng = getattr(getattr(trio, "_core")._run, "_r", None)  # noqa: B009
        if rng is None or seed is None:
            return rng is not None
        rng.seed(seed)
        return True
    loop = _virtual_loop()
    if loop is None:
        return False
    loop._schedule_rng = None if seed is None else random.Random(seed)
    return True


def set_autojump(enabled: bool) -> None:
    """Whether virtual time jumps to the next timer when every task waits (it does by default).

    Off, time moves only by :func:`jump`: a test then decides when timers
    fire. Works in a virtual-time run (trio's ``MockClock``, or the
    virtual-time asyncio loop).

    Raises:
        RuntimeError: the running loop is not in virtual time.
    """
    if _current_library() == "trio":
        _mock_clock().autojump_threshold = 0 if enabled else _INF
        return
    _require_virtual_loop()._autojump = enabled


def jump(seconds: float) -> None:
    """Move virtual time forward by ``seconds`` now (timers due by then fire).

    Raises:
        RuntimeError: the running loop is not in virtual time.
    """
    if not seconds >= 0:
        raise ValueError(f"time only moves forward, not by {seconds!r} s")
    if _current_library() == "trio":
        _mock_clock().jump(seconds)
        return
    loop = _require_virtual_loop()
    loop._virtual_now += seconds


def _mock_clock() -> Any:
    import trio
    from trio.testing import MockClock

    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, MockClock):
        raise RuntimeError("this trio run is not in virtual time: run it with MockClock")
    return clock


def _require_virtual_loop() -> Any:
    loop = _virtual_loop()
    if loop is None:
        raise RuntimeError(
            "this asyncio loop is not in virtual time: run it with virtual_time_backend('asyncio')"
        )
    return loop


def virtual_time_backend(backend: str) -> tuple[str, dict[str, Any]]:
    """anyio's ``(backend, options)`` for a run in virtual time on ``backend``."""
    if backend == "trio":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    if backend == "asyncio":
        return ("asyncio", {"loop_factory": virtual_time_loop_factory()})
    raise ValueError(f"backend must be 'asyncio' or 'trio', not {backend!r}")
