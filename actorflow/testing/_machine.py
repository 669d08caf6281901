"""A hypothesis state machine over a harness: rules are sync, the runtime runs in virtual time."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.abc
import attrs
from anyio.from_thread import start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from .._eventloop import set_autojump, virtual_time_backend, virtual_time_loop_factory
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
    and every task waits; on trio the loop runs in a thread of its own,
    reached through a portal. Time moves only when a rule says so, so every
    rule sees the runtime settled and examples replay exactly.

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
        self._driver: _LoopDriver | _PortalDriver = (
            _LoopDriver() if self.backend == "asyncio" else _PortalDriver(self.backend)
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
        """Close the harness (and the loop's thread, on trio)."""
        try:
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


class _PortalDriver:
    """Runs a trio loop (in virtual time) in a thread; rules call into it through a portal."""

    def __init__(self, backend: str) -> None:
        name, options = virtual_time_backend(backend)
        self._portal_cm = start_blocking_portal(name, options)
        self._portal = self._portal_cm.__enter__()
        self._host: Any = None

    def start(self, serve: Serve) -> Harness:
        self._host, harness = self._portal.start_task(serve)
        result: Harness = harness
        return result

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return self._portal.call(fn)

    def host_result(self) -> None:
        self._host.result(timeout=60)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)
