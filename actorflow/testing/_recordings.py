"""What a harness's readers saw: durable stream entries and live messages, by life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs

from .._live import Overflow
from ..abc import LiveBroker, LiveSubscription, Message, StreamEntry

__all__ = ("Listener", "LiveRecording", "StreamRecording")


@attrs.define(eq=False)
class StreamRecording:
    """What one durable-stream reader of a :class:`~actorflow.testing.Harness` saw.

    The reader follows the stream across crashes: after each restart it reads
    on from the offset after the last entry it got, as a client reconnecting
    with ``Last-Event-ID`` would.

    Attributes:
        run_id: the run read.
        key: the stream read.
        from_offset: the offset it started at.
        entries: every entry read, in the order read.
        lives: for each entry, the life (from 1) in which it was read.
        attached_at: how many journal appends had happened when it attached.
    """

    run_id: str
    key: str
    from_offset: int = 0
    entries: list[StreamEntry] = attrs.field(factory=list)
    lives: list[int] = attrs.field(factory=list)
    attached_at: int | None = None
    _done: anyio.Event = attrs.field(factory=anyio.Event, repr=False)
    _changed: anyio.Event = attrs.field(factory=anyio.Event, repr=False)

    def add(self, entry: StreamEntry, life: int) -> None:
        """Record ``entry``, read in life number ``life``."""
        self.entries.append(entry)
        self.lives.append(life)
        self._wake()

    def finish(self) -> None:
        """The reader reached the end of the stream."""
        self._done.set()
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def follow(self) -> AsyncIterator[StreamEntry]:
        """Yield every entry recorded, as it is recorded, until the end of the stream."""
        index = 0
        while True:
            while index < len(self.entries):
                yield self.entries[index]
                index += 1
            if self.done:
                return
            await self._changed.wait()

    @property
    def values(self) -> list[object]:
        """The values read, in the order read."""
        return [entry.value for entry in self.entries]

    @property
    def done(self) -> bool:
        """Whether the reader reached the end of the stream (it is closed)."""
        return self._done.is_set()

    async def wait(self) -> None:
        """Wait until the reader has reached the end of the stream."""
        await self._done.wait()

    def next_offset(self) -> int:
        """The offset the reader asks for next."""
        return self.entries[-1].offset + 1 if self.entries else self.from_offset


@attrs.define(eq=False)
class LiveRecording:
    """What one live subscriber of a :class:`~actorflow.testing.Harness` saw, life by life.

    Live streams are not durable: each life has a new broker, whose ``seq``
    count starts again, and what was published while the subscriber was
    away is gone. So messages are kept per life.

    Attributes:
        pattern: the subject pattern subscribed to.
        messages: every message received, in order.
        lives: for each message, the life (from 1) in which it was received.
        dropped: per life, what the subscription counted as dropped (overflow).
    """

    pattern: str
    messages: list[Message] = attrs.field(factory=list)
    lives: list[int] = attrs.field(factory=list)
    dropped: dict[int, int] = attrs.field(factory=dict)

    @property
    def values(self) -> list[object]:
        """The data of every message, in order."""
        return [message.data for message in self.messages]

    def by_life(self) -> dict[int, list[Message]]:
        """The messages of each life."""
        out: dict[int, list[Message]] = {}
        for life, message in zip(self.lives, self.messages, strict=True):
            out.setdefault(life, []).append(message)
        return out


@attrs.define(eq=False)
class Listener:
    """A live recorder of a harness: a subscription per life, handed over a channel to its task."""

    recording: LiveRecording
    buffer: int
    overflow: Overflow
    delay: float
    done: anyio.Event = attrs.field(factory=anyio.Event)
    lives_in: Any = attrs.field(init=False)
    lives_out: Any = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.lives_in, self.lives_out = anyio.create_memory_object_stream[
            tuple[Any, LiveSubscription]
        ](float("inf"))

    def subscribe(self, life: Any, broker: LiveBroker) -> None:
        """Subscribe in ``life`` (a harness's Life) and hand the subscription to :meth:`listen`."""
        sub = broker.subscribe(self.recording.pattern, buffer=self.buffer, overflow=self.overflow)
        life.subscriptions.add(sub)
        self.lives_in.send_nowait((life, sub))

    async def listen(self) -> None:
        """Record each life's subscription until one finishes without a crash."""
        recording = self.recording
        try:
            async for life, sub in self.lives_out:
                scope = anyio.CancelScope()
                life.guards.add(scope)
                finished = False
                with scope:
                    async with sub:
                        async for message in sub:
                            if life.crashed is not None:
                                break
                            recording.messages.append(message)
                            recording.lives.append(life.index)
                            if self.delay:
                                await anyio.sleep(self.delay)
                        finished = life.crashed is None
                life.guards.discard(scope)
                recording.dropped[life.index] = sub.dropped
                if finished:
                    return
        finally:
            self.lives_out.close()
            self.done.set()
