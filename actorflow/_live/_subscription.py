"""A subscription: one bounded buffer, filled by publishers and drained by its consumer.

Both sides hold one :class:`SubscriptionState` (as trio's memory channels
share a ``MemoryChannelState``): publishers append to it and apply its
overflow policy, the :class:`Subscription` its consumer iterates takes from
it, and neither reaches into the other.

A subscriber drains its buffer in batches: while messages are buffered,
``__anext__`` pops the next one without suspending, and it waits on an event
only when the buffer is empty. The buffer is the bound: there is no second,
private batch that could hold more than ``buffer`` messages, and
``drop_oldest`` really evicts the oldest message the subscriber has not seen.

Accounting
----------
For every subscription, counting the messages that reached it while it was
open (``offered``)::

    delivered + dropped + buffered + discarded == offered

where ``discarded`` are the messages still buffered when it was closed with
:meth:`Subscription.aclose`. Each delivered :class:`Message` carries in
``dropped_before`` how many messages this subscription lost just before it,
so ``sum(m.dropped_before for m in delivered) == dropped - unreported_drops``:
drops are *unreported* while no message has been delivered after them yet
(``drop_newest`` discarded the latest messages and nothing came after, or the
subscription finished right after a drop). ``seq`` lets a consumer see its
losses per step too: it starts at 1 and grows by one per publish of a step.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

import anyio
import anyio.lowlevel
import attrs

from .._exceptions import SlowConsumer
from ._message import (
    DATA,
    MSG,
    SEQ,
    SOURCE,
    Entry,
    Message,
    Overflow,
    Source,
    SubscriptionStatistics,
)
from ._wakeups import Wakeups, wake_threshold

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("CLOSED", "FAILED", "FINISHING", "OPEN", "Subscription", "SubscriptionState")

_log = logging.getLogger("actorflow.live")

# Subscription states.
OPEN = 0  # taking messages
FINISHING = 1  # finished (run ended, runtime closed): drain, then stop
FAILED = 2  # overflow="error" overflowed: drain, then raise SlowConsumer
CLOSED = 3  # closed by its owner, or SlowConsumer already raised: stop now


@attrs.define(eq=False)
class SubscriptionState:
    """What a subscription's publishers and its consumer share.

    Everything runs on the event loop's thread: a field is only ever changed
    between two awaits, so no lock is needed, and each method leaves the
    accounting identity (see the module docstring) true.
    """

    pattern: str
    overflow: Overflow
    size: int
    run_id: str | None = None
    # The broker's wake-up batching; None once detached from the broker.
    wakeups: Wakeups | None = attrs.field(default=None, repr=False)
    # Called once, when the subscription stops taking messages, so the broker
    # forgets it.
    on_detach: Callable[[SubscriptionState], None] | None = attrs.field(default=None, repr=False)
    # Under drop_oldest a deque with maxlen: appending to a full one evicts its head.
    buffer: deque[Entry] = attrs.field(init=False, repr=False)
    # Absolute index (count of entries ever taken, plus those evicted before
    # drop_oldest's maxlen deque took over; only marks use it) of buffer[0].
    head: int = attrs.field(default=0, init=False, repr=False)
    # Drops are reported on the entry that follows them. head_drops belong to
    # buffer[0], tail_drops to the next entry appended, and marks holds
    # [absolute index, n] for the entries in between that have drops before
    # them (only drop_newest and cancelled block publishes create those).
    head_drops: int = attrs.field(default=0, init=False, repr=False)
    tail_drops: int = attrs.field(default=0, init=False, repr=False)
    marks: deque[list[int]] = attrs.field(factory=deque, init=False, repr=False)
    # Messages lost so far, except under drop_oldest, where the evictions not
    # yet reported (head_drops) are added on read: an eviction then costs the
    # publisher one counter update, not two.
    dropped: int = attrs.field(default=0, init=False, repr=False)
    # overflow == "drop_oldest", as a flag the publisher's loop can test cheaply.
    evicts: bool = attrs.field(init=False, repr=False)
    discarded: int = attrs.field(default=0, init=False, repr=False)
    status: int = attrs.field(default=OPEN, init=False, repr=False)
    # Set by a publisher when it appends while the consumer waits.
    waiter: anyio.Event | None = attrs.field(default=None, init=False, repr=False)
    # Set by the consumer when it takes a message while a publisher waits for room.
    space: anyio.Event | None = attrs.field(default=None, init=False, repr=False)
    # While the broker batches wake-ups, a waiting consumer is woken at once
    # only when this many messages are buffered; otherwise when publishers pause.
    wake_at: int = attrs.field(init=False, repr=False)
    # Whether the broker holds this state for its next batched wake-up.
    deferred: bool = attrs.field(default=False, init=False, repr=False)
    # Drops are logged when their total reaches this, which then doubles: a
    # subscriber that stays slow logs a line per doubling, not per message.
    log_drops_at: int = attrs.field(default=1, init=False, repr=False)

    @buffer.default
    def _default_buffer(self) -> deque[Entry]:
        return deque(maxlen=self.size) if self.overflow == "drop_oldest" else deque()

    @evicts.default
    def _default_evicts(self) -> bool:
        return self.overflow == "drop_oldest"

    @wake_at.default
    def _default_wake_at(self) -> int:
        return wake_threshold(self.size)

    def total_dropped(self) -> int:
        """Messages lost so far, reported or not."""
        return self.dropped + self.head_drops if self.evicts else self.dropped

    def statistics(self) -> SubscriptionStatistics:
        """Return a snapshot of the counters."""
        return SubscriptionStatistics(
            pattern=self.pattern,
            overflow=self.overflow,
            buffer_size=self.size,
            buffered=len(self.buffer),
            # Only drop_oldest drops advance the head (they evict it).
            delivered=self.head,
            dropped=self.total_dropped(),
            unreported_drops=(self.head_drops + self.tail_drops + sum(n for _, n in self.marks)),
            discarded=self.discarded,
            closed=self.status != OPEN,
        )

    # -- publisher side ------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Buffer ``entry`` (there is room), reporting any drops before it on it."""
        buf = self.buffer
        tail_drops = self.tail_drops
        if tail_drops:
            self.tail_drops = 0
            if buf:
                self.marks.append([self.head + len(buf), tail_drops])
            else:
                self.head_drops = tail_drops
        buf.append(entry)
        if self.waiter is not None:
            self.wake()

    def wake(self) -> None:
        """Wake the waiting consumer, or leave it to the broker's next batched wake-up."""
        wakeups = self.wakeups
        if wakeups is not None and wakeups.batching and len(self.buffer) < self.wake_at:
            if not self.deferred:
                wakeups.defer(self)
            return
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    def overflowed(self) -> bool:
        """Apply a non-evicting policy to a message arriving at a full buffer.

        ``drop_oldest`` is handled inline by the publisher. Returns ``False``
        if the publisher must wait for room (``block``).
        """
        overflow = self.overflow
        if overflow == "block":
            return False
        # drop_newest or error: the arriving message is lost, and reported on
        # whatever is appended next.
        self.dropped += 1
        self.tail_drops += 1
        if overflow == "error":
            self.status = FAILED
            self.detach()
        return True

    def lose(self) -> None:
        """Count a message a cancelled ``block`` publisher could not deliver."""
        if self.status == OPEN:
            self.dropped += 1
            self.tail_drops += 1

    def skip(self, n: int) -> None:
        """Count ``n`` messages lost upstream, before the next one to arrive.

        A broker that crosses processes calls it when the ``seq`` of a step's
        messages jumps (a reconnect, a full hand-off buffer). The loss is
        reported in the ``dropped_before`` of the next message delivered:
        under ``drop_oldest``, which keeps no marks between buffered entries,
        that can be a message buffered before the gap (the count is exact,
        and ``seq`` still shows where the gap was).
        """
        if self.status != OPEN or n <= 0:
            return
        if self.evicts:
            self.head_drops += n
        else:
            self.dropped += n
            self.tail_drops += n

    async def wait_for_space(self) -> None:
        """Wait until the consumer takes a message or the subscription stops."""
        space = self.space
        if space is None:
            space = self.space = anyio.Event()
        await space.wait()

    # -- consumer side -------------------------------------------------------

    def settle(self, msg: Message, head: int) -> Message:
        """After taking entry ``head``: free a waiting publisher, report drops."""
        space = self.space
        if space is not None:
            self.space = None
            space.set()
        dropped = self.head_drops
        marks = self.marks
        self.head_drops = marks.popleft()[1] if marks and marks[0][0] == head + 1 else 0
        if dropped:
            if self.evicts:
                self.dropped += dropped
            if self.dropped >= self.log_drops_at:
                self._log_drops()
            msg = Message(msg.subject, msg.run_id, msg.step_id, msg.seq, msg.data, dropped)
        return msg

    def _log_drops(self) -> None:
        while self.log_drops_at <= self.dropped:
            self.log_drops_at *= 2
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "a slow subscriber of %r has lost %d messages so far (overflow=%s, buffer=%d); "
                "read faster or give it a larger buffer",
                self.pattern,
                self.dropped,
                self.overflow,
                self.size,
                extra={"run_id": self.run_id},
            )

    # -- closing -------------------------------------------------------------

    def detach(self) -> None:
        """Stop taking messages and wake everyone waiting on this subscription."""
        on_detach = self.on_detach
        if on_detach is not None:
            self.on_detach = self.wakeups = None
            on_detach(self)
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set()
        space, self.space = self.space, None
        if space is not None:
            space.set()

    def finish(self) -> None:
        """Take no new messages; the consumer drains the buffer, then stops."""
        if self.status == OPEN:
            self.status = FINISHING
            self.detach()

    def close(self) -> None:
        """Take no new messages and discard the buffered ones."""
        if self.status == CLOSED:
            return
        self.status = CLOSED
        self.discarded += len(self.buffer)
        self.buffer.clear()
        if self.evicts:
            self.dropped += self.head_drops
        self.tail_drops += self.head_drops + sum(n for _, n in self.marks)
        self.head_drops = 0
        self.marks.clear()
        self.detach()


def _message(entry: Entry) -> Message:
    """The entry's Message, built by the first subscriber that takes it."""
    msg: Message | None = entry[MSG]
    if msg is None:
        source: Source = entry[SOURCE]
        msg = entry[MSG] = Message(
            source.subject, source.run_id, source.step_id, entry[SEQ], entry[DATA], 0
        )
    return msg


@attrs.define(eq=False, repr=False)
class Subscription:
    """A subscriber: an async iterator of :class:`Message` with its own bounded buffer.

    Obtain one from :meth:`Broker.subscribe` (``rt.subscribe``,
    ``handle.subscribe``) and use it as an async context manager::

        async with rt.subscribe("stream.*.main") as sub:
            async for msg in sub:
                print(msg.seq, msg.data)

    Iteration ends (``StopAsyncIteration``) after the buffered messages once
    the subscription is finished (its run ended, the runtime closed), and at
    once after :meth:`aclose`. With ``overflow="error"`` it raises
    :class:`~actorflow.SlowConsumer` after the messages that were buffered
    when the buffer overflowed.

    ``__anext__`` returns a buffered message without suspending, so draining a
    buffer is cheap; it waits (and so yields to the event loop) only when the
    buffer is empty.
    """

    _state: SubscriptionState = attrs.field(alias="state")
    # The state's buffer, which is never replaced: one attribute lookup less
    # on the per-message path.
    _buffer: deque[Entry] = attrs.field(init=False)

    @_buffer.default
    def _default_buffer(self) -> deque[Entry]:
        return self._state.buffer

    def __repr__(self) -> str:
        state = self._state
        return (
            f"Subscription(pattern={state.pattern!r}, overflow={state.overflow!r}, "
            f"buffer_size={state.size!r}, run_id={state.run_id!r})"
        )

    @property
    def pattern(self) -> str:
        """The subject pattern this subscription listens to."""
        return self._state.pattern

    @property
    def overflow(self) -> Overflow:
        """The overflow policy."""
        return self._state.overflow

    @property
    def buffer_size(self) -> int:
        """The buffer's capacity, in messages."""
        return self._state.size

    @property
    def run_id(self) -> str | None:
        """The run this subscription is scoped to, or ``None`` for a runtime-wide one."""
        return self._state.run_id

    @property
    def dropped(self) -> int:
        """How many messages this subscription lost to its overflow policy so far."""
        return self._state.total_dropped()

    @property
    def closed(self) -> bool:
        """Whether the subscription no longer takes messages (finished, failed or closed)."""
        return self._state.status != OPEN

    def statistics(self) -> SubscriptionStatistics:
        """Return a snapshot of this subscription's counters."""
        return self._state.statistics()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        """Return the next message, waiting for one if the buffer is empty.

        Raises:
            StopAsyncIteration: the subscription was closed, or it finished and
                its buffer is drained.
            SlowConsumer: ``overflow="error"`` and the buffer overflowed; raised
                once, after the messages buffered before the overflow.
        """
        buf = self._buffer
        if not buf:
            return await self._wait_and_take()
        # _take(), inlined: this is the per-message cost of every subscriber.
        state = self._state
        entry = buf.popleft()
        head = state.head
        state.head = head + 1
        msg: Message | None = entry[MSG]
        if msg is None:
            source: Source = entry[SOURCE]
            msg = entry[MSG] = Message(
                source.subject, source.run_id, source.step_id, entry[SEQ], entry[DATA], 0
            )
        if state.space is not None or state.head_drops or state.marks:
            return state.settle(msg, head)
        return msg

    def _take(self) -> Message:
        state = self._state
        entry = self._buffer.popleft()
        head = state.head
        state.head = head + 1
        return state.settle(_message(entry), head)

    async def _wait_and_take(self) -> Message:
        state = self._state
        spun = False
        while not self._buffer:
            status = state.status
            if status != OPEN:
                if status == FAILED:
                    state.status = CLOSED
                    raise SlowConsumer(
                        f"subscription to {state.pattern!r} fell behind: its buffer of "
                        f"{state.size} message(s) was full when another arrived "
                        "(overflow='error'); subscribe with a bigger buffer=, with "
                        "overflow='drop_oldest' or 'drop_newest' to tolerate losses, or "
                        "with overflow='block' to make the publisher wait"
                    )
                raise StopAsyncIteration
            wakeups = state.wakeups
            if not spun and (wakeups is None or not wakeups.coalescing):
                # Yield once before parking: a publisher that is keeping up will
                # usually have published again by then, and a plain yield costs
                # far less than an event's round trip. (While the broker batches
                # wake-ups, parking at once is what lets a batch build up.)
                spun = True
                await anyio.lowlevel.checkpoint()
                continue
            # Several tasks may wait on one subscription: they share the event.
            waiter = state.waiter
            if waiter is None:
                waiter = state.waiter = anyio.Event()
            await waiter.wait()
        return self._take()

    def finish(self) -> None:
        """End the subscription gracefully: no new messages; the iterator drains, then stops.

        This is what happens to a run's subscriptions when the run ends, and to
        every subscription when the runtime closes. Idempotent; it does
        nothing to a closed subscription.
        """
        self._state.finish()

    def close(self) -> None:
        """Unsubscribe now: buffered messages are discarded and the iterator stops.

        A task waiting in ``__anext__`` gets ``StopAsyncIteration``; publishers
        waiting for room (``overflow="block"``) go on. Idempotent.
        """
        self._state.close()

    async def aclose(self) -> None:
        """Unsubscribe now (see :meth:`close`). Idempotent."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
