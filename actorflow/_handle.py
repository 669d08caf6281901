"""RunHandle: one run, by id, over the runtime's public operations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import attrs

from ._live import Overflow
from ._restarts import StreamRestart
from .abc import LiveSubscription, RunStatus, StreamEntry

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ("RunHandle",)

O = TypeVar("O")  # noqa: E741
T = TypeVar("T")


@attrs.frozen
class RunHandle(Generic[O]):
    """A handle on one run, in its runtime's journal.

    Every method is the runtime's method of the same name with this run's id.

    Attributes:
        run_id: the run's id.
    """

    _runtime: Runtime = attrs.field(repr=False, alias="runtime")
    run_id: str

    async def status(self) -> RunStatus:
        """The run's committed status.

        Raises:
            RunNotFound: no such run.
        """
        return await self._runtime.status(self.run_id)

    async def result(self, timeout: float | None = None) -> O:
        """Wait for the run to end and return its output.

        Args:
            timeout: give up after this many seconds (``TimeoutError``).

        Raises:
            RunFailed: the workflow raised; carries its error type, message and traceback.
            RunCancelled: the run was cancelled.
            RunNotFound: no such run.
            TimeoutError: the timeout passed first.
        """
        output: O = await self._runtime.result(self.run_id, timeout=timeout)
        return output

    async def cancel(self) -> None:
        """Cancel the run and wait until it has ended CANCELLED (no-op if it already ended).

        Raises:
            RunNotFound: no such run.
        """
        await self._runtime.cancel(self.run_id)

    async def send(self, value: object, *, topic: str = "default") -> None:
        """Send ``value`` to this run's durable inbox (see :meth:`Runtime.send`)."""
        await self._runtime.send(self.run_id, value, topic=topic)

    async def get_event(self, key: str, *, timeout: float | None = None) -> Any:
        """Wait for event ``key`` of this run (see :meth:`Runtime.get_event`)."""
        return await self._runtime.get_event(self.run_id, key, timeout=timeout)

    def subscribe(
        self,
        step: str | None = None,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
    ) -> LiveSubscription:
        """Subscribe to this run's live stream (one step's, or all), until the run ends."""
        return self._runtime.subscribe_run(self.run_id, step, buffer=buffer, overflow=overflow)

    @overload
    def read_stream(
        self, key: str, *, from_offset: int = 0, restarts: bool = False
    ) -> AsyncIterator[object]: ...
    @overload
    def read_stream(
        self, key: str, *, from_offset: int = 0, type: type[T], restarts: Literal[False] = False
    ) -> AsyncIterator[T]: ...
    @overload
    def read_stream(
        self, key: str, *, from_offset: int = 0, type: type[T], restarts: Literal[True]
    ) -> AsyncIterator[T | StreamRestart]: ...

    @overload
    def read_stream(
        self, key: str, *, from_offset: int = 0, type: Any = None, restarts: bool = False
    ) -> AsyncIterator[Any]: ...

    def read_stream(
        self, key: str, *, from_offset: int = 0, type: Any = None, restarts: bool = False
    ) -> AsyncIterator[Any]:
        """The values of durable stream ``key``: replay from ``from_offset``, then live.

        ``type=`` converts each value (``handle.read_stream("tokens", type=str)``
        is an ``AsyncIterator[str]``); ``restarts=True`` yields a
        :class:`~actorflow.StreamRestart` where a retried step starts over (see
        :meth:`Runtime.read_stream`).
        """
        return self._runtime.read_stream(
            self.run_id, key, from_offset=from_offset, type=type, restarts=restarts
        )

    @overload
    def read_stream_entries(
        self, key: str, *, from_offset: int = 0, restarts: Literal[False] = False
    ) -> AsyncIterator[StreamEntry]: ...
    @overload
    def read_stream_entries(
        self, key: str, *, from_offset: int = 0, restarts: bool
    ) -> AsyncIterator[StreamEntry | StreamRestart]: ...

    def read_stream_entries(
        self, key: str, *, from_offset: int = 0, restarts: bool = False
    ) -> AsyncIterator[StreamEntry | StreamRestart]:
        """The entries of durable stream ``key``, as :class:`~actorflow.StreamEntry`.

        With ``restarts=True``, a :class:`~actorflow.StreamRestart` comes before
        the first entry of a step's retried attempt.
        """
        return self._runtime.read_stream_entries(
            self.run_id, key, from_offset=from_offset, restarts=restarts
        )
