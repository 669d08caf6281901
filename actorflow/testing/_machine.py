"""A hypothesis state machine over a harness: rules are sync, the runtime runs in virtual time."""

from __future__ import annotations

import asyncio
import math
import queue
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.abc
import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from .._eventloop import set_autojump, virtual_time_loop_factory
from ._harness import Harness
from ._schedule import advance, settle

__all__ = ("RuntimeStateMachine",)

T = TypeVar("T")


@attrs.define(eq=False)
class _Request:
    fn: Callable[[Harness], Awaitable[Any]]
    done: anyio.Event = attrs.field(factory=anyio.Event)
    value: Any = None
    error: BaseException | None = None


class RuntimeStateMachine(RuleBasedStateMachine):
    """A hypothesis state machine over a :class:`Harness`, with crash and time rules.

    Subclass it, add ``@rule``/``@invariant`` methods that call
    :meth:`run` (``self.run(lambda h: h.send(run_id, x))``), and collect
    ``TestMyMachine = MyMachine.TestCase``. Each example opens a harness in
    virtual time on :attr:`backend`. Hypothesis rules are sync: on asyncio
    each rule runs the loop in its own thread until the rule's work is done
    and every task waits; trio runs as a guest of that thread the same way.
    Between rules nothing runs and time moves only when a rule says so, so
    every rule sees the runtime settled and examples replay exactly.

    Built-in rules: :meth:`crash_and_restart` (the runtime dies between two
    appends, the next life resumes its runs) and :meth:`advance_time`
    (virtual time moves, each timer firing at its own time).

    Attributes:
        backend: ``"asyncio"`` or ``"trio"`` (subclass again for the other).
        harness_options: keyword arguments of the :class:`Harness`.
        max_advance: the longest single :meth:`advance_time`, in seconds.
    """

    backend: ClassVar[str] = "asyncio"
    harness_options: ClassVar[dict[str, Any]] = {}
    max_advance: ClassVar[float] = 3600.0

    def __init__(self) -> None:
        super().__init__()
        self._requests: Any = None
        self._host_failed = False
        self._driver: _LoopDriver | _GuestDriver = (
            _LoopDriver() if self.backend == "asyncio" else _GuestDriver()
        )
        try:
            self.harness = self._driver.start(self._serve)
        except BaseException:
            self._driver.close()
            raise

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[Harness]) -> None:
        set_autojump(False)  # time moves when a rule says so
        send, receive = anyio.create_memory_object_stream[_Request](math.inf)
        self._requests = send
        async with receive, Harness(**self.harness_options) as h:
            await settle()
            task_status.started(h)
            async for request in receive:
                try:
                    request.value = await request.fn(h)
                    await settle()
                except BaseException as exc:
                    request.error = exc
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    request.done.set()

    def run(self, fn: Callable[[Harness], Awaitable[T]]) -> T:
        """Run ``fn(harness)`` in the runtime's event loop, then settle; return its value.

        Raises:
            whatever ``fn`` raised, or :class:`~actorflow.testing.Deadlock`.
        """
        request = _Request(fn)

        async def submit() -> None:
            self._requests.send_nowait(request)
            await request.done.wait()

        self._driver.call(submit)
        if request.error is not None:
            if not isinstance(request.error, Exception):  # cancelled: the harness failed
                self._host_failed = True
                self._driver.host_result()  # raise what it raised
            raise request.error
        value: T = request.value
        return value

    @rule()
    def crash_and_restart(self) -> None:
        """The runtime dies now (SIGKILL between two appends); the next life resumes its runs."""

        async def crash(h: Harness) -> None:
            h.crash_now()
            # The next life opens after the harness's downtime, which passes in virtual time.
            await advance(h.downtime)

        self.run(crash)

    @rule(seconds=st.floats(0.0, 1.0) | st.sampled_from([1.0, 60.0, 3600.0]))
    def advance_time(self, seconds: float) -> None:
        """Virtual time moves forward by ``seconds`` (capped at ``max_advance``)."""
        self.run(lambda h: advance(min(seconds, self.max_advance)))

    def teardown(self) -> None:
        """Close the harness and its event loop."""
        try:
            if self._host_failed:  # a rule raised why already; nothing receives any more
                if self._requests is not None:
                    self._requests.close()
            else:
                if self._requests is not None:
                    self._driver.call(self._requests.aclose)
                self._driver.host_result()
        finally:
            self._driver.close()


Serve = Callable[..., Awaitable[None]]


class _LoopDriver:
    """Drives a virtual-time asyncio loop from the rule's own thread, one rule at a time.

    Between two rules the loop does not run at all, so nothing happens that
    no rule asked for, and a rule costs no thread hand-off.
    """

    def __init__(self) -> None:
        self.loop = virtual_time_loop_factory()()
        self.host: asyncio.Task[None] | None = None

    def start(self, serve: Serve) -> Harness:
        started: asyncio.Future[Harness] = self.loop.create_future()

        class Status:
            def started(self, value: Harness) -> None:
                started.set_result(value)

        self.host = self.loop.create_task(serve(task_status=Status()))
        self.loop.run_until_complete(
            asyncio.wait([started, self.host], return_when=asyncio.FIRST_COMPLETED)
        )
        if not started.done():
            self.host.result()  # raises why the harness did not open
        return started.result()

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            return await fn()

        return self.loop.run_until_complete(main())

    def host_result(self) -> None:
        assert self.host is not None
        if not self.host.done():
            self.loop.run_until_complete(self.host)
        self.host.result()

    def close(self) -> None:
        if self.host is not None and not self.host.done():
            self.host.cancel()
            self.loop.run_until_complete(asyncio.wait([self.host]))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


class _GuestDriver:
    """Runs trio (in virtual time) as a guest of the rule's own thread, one rule at a time.

    trio's guest mode hands its scheduler's batches to a host through
    ``run_sync_soon_threadsafe``; here the host is a queue that each rule
    drains until its work is done, so between rules nothing runs.
    """

    def __init__(self) -> None:
        self._batches: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._outcome: Any = None
        self._token: Any = None
        self._scope: Any = None
        self._spawn: Callable[[Callable[[], Awaitable[Any]], Callable[[Any], None]], None]

    def _pump(self, until: Callable[[], bool]) -> None:
        while not until() and self._outcome is None:
            self._batches.get()()

    def start(self, serve: Serve) -> Harness:
        import trio
        from trio.testing import MockClock

        opened: list[Harness] = []

        class Status:
            def started(self, value: Harness) -> None:
                opened.append(value)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._token = trio.lowlevel.current_trio_token()
                self._scope = nursery.cancel_scope

                def spawn(fn: Callable[[], Awaitable[Any]], reply: Callable[[Any], None]) -> None:
                    async def run() -> None:
                        try:
                            reply((await fn(), None))
                        except BaseException as exc:
                            reply((None, exc))
                            if not isinstance(exc, Exception):
                                raise

                    nursery.start_soon(run)

                self._spawn = spawn
                await serve(task_status=Status())

        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=self._batches.put,
            done_callback=self._done,
            clock=MockClock(autojump_threshold=0),
            host_uses_signal_set_wakeup_fd=False,
        )
        self._pump(lambda: bool(opened))
        if not opened:
            self.host_result()
        return opened[0]

    def _done(self, outcome: Any) -> None:
        self._outcome = outcome

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        replies: list[tuple[Any, BaseException | None]] = []
        self._token.run_sync_soon(self._spawn, fn, replies.append)
        self._pump(lambda: bool(replies))
        if not replies:
            self.host_result()
            raise RuntimeError("the harness's trio run ended")
        value, error = replies[0]
        if error is not None:
            raise error
        return value

    def host_result(self) -> None:
        self._pump(lambda: False)
        try:
            self._outcome.unwrap()
        except BaseExceptionGroup as group:
            # The guest's own nursery wraps what the harness raised: raise that.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def close(self) -> None:
        if self._outcome is None:
            self._token.run_sync_soon(self._scope.cancel)
            self._pump(lambda: False)
