"""The live-stream broker: NATS-style publish/subscribe inside one runtime.

A step publishes with ``await ctx.put_stream(data)`` on the subject
``stream.<run_id>.<step_id>`` (see :mod:`actorflow._subjects`); every
:class:`Subscription` whose pattern matches gets the message in its own
bounded buffer. Nothing is stored: a message no subscription matches is gone.

How it stays fast and fair
--------------------------
The cost of in-process fan-out is the *await*, not the copy: an awaited send
per message per subscriber caps delivery at tens of thousands per second. So
:meth:`Publisher.publish` hands the message to every matching subscription
with plain, non-blocking buffer operations (each subscription applies its own
overflow policy on the spot), wakes only the subscribers that are actually
waiting, and then yields to the event loop exactly once. The only exception
is a ``"block"`` subscription whose buffer is full: that is the one case
where a publisher waits, because the subscriber asked for it.

A subscriber drains its buffer in batches: while messages are buffered,
``__anext__`` pops the next one without suspending, and it waits on an event
only when the buffer is empty. The buffer is the bound: there is no second,
private batch that could hold more than ``buffer`` messages, and
``drop_oldest`` really evicts the oldest message the subscriber has not seen.

Waking a waiting subscriber costs a task switch, so with many subscribers
and a busy publisher, per-message wake-ups would cost more than the
deliveries. :meth:`Broker.run` (a task the runtime starts) batches them: the
first message after a pause wakes its subscribers at once; while publishers
keep publishing, wake-ups wait a bounded linger (or until half a buffer is
filled), then subscribers drain what accumulated in one go. Without it, every
message wakes a waiting subscriber, and a consumer yields once before parking.

The matching subscriptions of a publisher are cached together with the
:class:`~actorflow._subjects.SubjectIndex` version, so publishing with no
subscriber costs a version check and the yield, and allocates nothing.

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

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Literal, Self, get_args

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import msgspec

from .._exceptions import SlowConsumer, ValidationError
from ._subjects import SubjectIndex, stream_subject, validate_pattern

if TYPE_CHECKING:
    from types import TracebackType

__all__ = (
    "Broker",
    "BrokerStatistics",
    "Message",
    "Overflow",
    "Publisher",
    "Subscription",
    "SubscriptionStatistics",
)

Overflow = Literal["drop_oldest", "drop_newest", "block", "error"]
"""What a subscription does when a message arrives and its buffer is full.

- ``"drop_oldest"`` (default): evict the oldest buffered message.
- ``"drop_newest"``: discard the arriving message.
- ``"block"``: the publisher waits until there is room (opt-in backpressure).
- ``"error"``: the subscription stops taking messages; its iterator yields
  what was buffered, then raises :class:`~actorflow.SlowConsumer`.
"""

_OVERFLOWS: tuple[str, ...] = get_args(Overflow)

# Subscription states.
_OPEN = 0  # taking messages
_FINISHING = 1  # finished (run ended, runtime closed): drain, then stop
_FAILED = 2  # overflow="error" overflowed: drain, then raise SlowConsumer
_CLOSED = 3  # closed by its owner, or SlowConsumer already raised: stop now

# A buffered entry is shared by every subscription the publish reached:
# [message or None, publisher, seq, data]. The Message is built by the first
# subscriber that takes the entry, so a message nobody reads (a stalled
# subscriber's evictions) costs one small list, not an object per field.
_MSG, _PUB, _SEQ, _DATA = range(4)
_Entry = list[Any]

# While publishers are busy, a waiting subscriber is woken once this many
# messages are buffered (or half its buffer, if smaller), not on every message.
_BATCH = 128
# How many event-loop cycles without a publish count as publishers pausing.
_QUIET_CYCLES = 3
# After this many busy cycles in a row, publishing counts as sustained, and the
# batching task checks for a pause every _LINGER seconds rather than every cycle.
_HOT_CYCLES = 64
# How long a deferred wake-up may wait while publishers are busy, in seconds:
# _LINGER, plus a little per subscriber waiting, because waking many costs
# more (so fan-out still drains in big batches), at most _MAX_LINGER. This is
# also how often the batching task looks when publishing is sustained.
_LINGER = 200e-6
_LINGER_PER_SUBSCRIBER = 20e-6
_MAX_LINGER = 2e-3


class Message(msgspec.Struct, frozen=True):
    """One live-stream message, as a subscriber receives it.

    A frozen msgspec Struct, like every mailbox message: building one costs a
    seventh of a frozen attrs class's, and one is built per message delivered.

    Attributes:
        subject: where it was published: ``stream.<run_id>.<step_id>``.
        run_id: the run that published it.
        step_id: the step that published it (``main`` for the workflow body).
        seq: its number among the publishes of that step: 1, 2, 3, ...
        data: the published object itself (not a copy).
        dropped_before: how many messages this subscription lost just before
            this one (0 when none).
    """

    subject: str
    run_id: str
    step_id: str
    seq: int
    data: object
    dropped_before: int = 0


@attrs.frozen
class SubscriptionStatistics:
    """A snapshot of a subscription's counters (see :meth:`Subscription.statistics`).

    Attributes:
        pattern: the subscribed pattern.
        overflow: the overflow policy.
        buffer_size: the buffer's capacity.
        buffered: messages waiting in the buffer.
        delivered: messages handed to the consumer.
        dropped: messages lost to the overflow policy (or to a cancelled
            ``block`` publisher).
        unreported_drops: drops no delivered message has reported yet in
            ``dropped_before``.
        discarded: messages still buffered when the subscription was closed.
        closed: the subscription no longer takes messages.
    """

    pattern: str
    overflow: Overflow
    buffer_size: int
    buffered: int
    delivered: int
    dropped: int
    unreported_drops: int
    discarded: int
    closed: bool


@attrs.frozen
class BrokerStatistics:
    """A snapshot of a broker (see :meth:`Broker.statistics`).

    Attributes:
        subscriptions: open subscriptions.
        publishers: publishers the broker keeps for runs not yet ended.
    """

    subscriptions: int
    publishers: int


@attrs.define(eq=False)
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

    _pattern: str = attrs.field(alias="pattern")
    _overflow: Overflow = attrs.field(alias="overflow")
    _size: int = attrs.field(alias="buffer_size")
    _broker: Broker | None = attrs.field(alias="broker", repr=False)
    _run_id: str | None = attrs.field(alias="run_id", default=None)
    # Under drop_oldest a deque with maxlen: appending to a full one evicts its head.
    _buffer: deque[_Entry] = attrs.field(init=False, repr=False)
    # Absolute index (count of entries ever taken, plus those evicted before
    # drop_oldest's maxlen deque took over; only marks use it) of _buffer[0].
    _head: int = attrs.field(default=0, init=False, repr=False)
    # Drops are reported on the entry that follows them. _head_drops belong to
    # _buffer[0], _tail_drops to the next entry appended, and _marks holds
    # [absolute index, n] for the entries in between that have drops before
    # them (only drop_newest and cancelled block publishes create those).
    _head_drops: int = attrs.field(default=0, init=False, repr=False)
    _tail_drops: int = attrs.field(default=0, init=False, repr=False)
    _marks: deque[list[int]] = attrs.field(factory=deque, init=False, repr=False)
    # Messages lost so far, except under drop_oldest, where the evictions not
    # yet reported (_head_drops) are added on read: an eviction then costs the
    # publisher one counter update, not two.
    _dropped: int = attrs.field(default=0, init=False, repr=False)
    # overflow == "drop_oldest", as a flag the publisher's loop can test cheaply.
    _evicts: bool = attrs.field(init=False, repr=False)
    _discarded: int = attrs.field(default=0, init=False, repr=False)
    _state: int = attrs.field(default=_OPEN, init=False, repr=False)
    # Set by a publisher when it appends while the consumer waits.
    _waiter: anyio.Event | None = attrs.field(default=None, init=False, repr=False)
    # Set by the consumer when it takes a message while a publisher waits for room.
    _space: anyio.Event | None = attrs.field(default=None, init=False, repr=False)
    # While the broker coalesces wake-ups, a waiting consumer is woken at once
    # only when this many messages are buffered; otherwise when publishers pause.
    _wake_at: int = attrs.field(init=False, repr=False)
    # Whether the broker holds this subscription for its next batched wake-up.
    _deferred: bool = attrs.field(default=False, init=False, repr=False)

    @_buffer.default
    def _default_buffer(self) -> deque[_Entry]:
        return deque(maxlen=self._size) if self._overflow == "drop_oldest" else deque()

    @_evicts.default
    def _default_evicts(self) -> bool:
        return self._overflow == "drop_oldest"

    @_wake_at.default
    def _default_wake_at(self) -> int:
        return max(1, min(_BATCH, self._size // 2))

    @property
    def pattern(self) -> str:
        """The subject pattern this subscription listens to."""
        return self._pattern

    @property
    def overflow(self) -> Overflow:
        """The overflow policy."""
        return self._overflow

    @property
    def buffer_size(self) -> int:
        """The buffer's capacity, in messages."""
        return self._size

    @property
    def run_id(self) -> str | None:
        """The run this subscription is scoped to, or ``None`` for a runtime-wide one."""
        return self._run_id

    @property
    def dropped(self) -> int:
        """How many messages this subscription lost to its overflow policy so far."""
        return self._dropped + self._head_drops if self._evicts else self._dropped

    @property
    def closed(self) -> bool:
        """Whether the subscription no longer takes messages (finished, failed or closed)."""
        return self._state != _OPEN

    def statistics(self) -> SubscriptionStatistics:
        """Return a snapshot of this subscription's counters."""
        return SubscriptionStatistics(
            pattern=self._pattern,
            overflow=self._overflow,
            buffer_size=self._size,
            buffered=len(self._buffer),
            # Only drop_oldest drops advance the head (they evict it).
            delivered=self._head,
            dropped=self.dropped,
            unreported_drops=(self._head_drops + self._tail_drops + sum(n for _, n in self._marks)),
            discarded=self._discarded,
            closed=self._state != _OPEN,
        )

    # -- consumer side -------------------------------------------------------

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
        entry = buf.popleft()
        head = self._head
        self._head = head + 1
        msg: Message | None = entry[_MSG]
        if msg is None:
            pub: Publisher = entry[_PUB]
            msg = entry[_MSG] = Message(
                pub.subject, pub.run_id, pub.step_id, entry[_SEQ], entry[_DATA], 0
            )
        if self._space is not None or self._head_drops or self._marks:
            return self._settle(msg, head)
        return msg

    def _take(self) -> Message:
        entry = self._buffer.popleft()
        head = self._head
        self._head = head + 1
        msg: Message | None = entry[_MSG]
        if msg is None:
            pub: Publisher = entry[_PUB]
            msg = entry[_MSG] = Message(
                pub.subject, pub.run_id, pub.step_id, entry[_SEQ], entry[_DATA], 0
            )
        return self._settle(msg, head)

    def _settle(self, msg: Message, head: int) -> Message:
        """After taking entry ``head``: free a waiting publisher, report drops."""
        space = self._space
        if space is not None:
            self._space = None
            space.set()
        dropped = self._head_drops
        marks = self._marks
        self._head_drops = marks.popleft()[1] if marks and marks[0][0] == head + 1 else 0
        if dropped:
            if self._evicts:
                self._dropped += dropped
            msg = Message(msg.subject, msg.run_id, msg.step_id, msg.seq, msg.data, dropped)
        return msg

    async def _wait_and_take(self) -> Message:
        spun = False
        while not self._buffer:
            state = self._state
            if state != _OPEN:
                if state == _FAILED:
                    self._state = _CLOSED
                    raise SlowConsumer(
                        f"subscription to {self._pattern!r} fell behind: its buffer of "
                        f"{self._size} message(s) was full when another arrived "
                        "(overflow='error'); subscribe with a bigger buffer=, with "
                        "overflow='drop_oldest' or 'drop_newest' to tolerate losses, or "
                        "with overflow='block' to make the publisher wait"
                    )
                raise StopAsyncIteration
            if not spun and (self._broker is None or not self._broker._coalescing):
                # Yield once before parking: a publisher that is keeping up will
                # usually have published again by then, and a plain yield costs
                # far less than an event's round trip. (While the broker batches
                # wake-ups, parking at once is what lets a batch build up.)
                spun = True
                await anyio.lowlevel.checkpoint()
                continue
            # Several tasks may wait on one subscription: they share the event.
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = anyio.Event()
            await waiter.wait()
        return self._take()

    # -- publisher side ------------------------------------------------------

    def _append(self, entry: _Entry) -> None:
        buf = self._buffer
        tail_drops = self._tail_drops
        if tail_drops:
            self._tail_drops = 0
            if buf:
                self._marks.append([self._head + len(buf), tail_drops])
            else:
                self._head_drops = tail_drops
        buf.append(entry)
        if self._waiter is not None:
            self._wake()

    def _wake(self) -> None:
        """Wake the waiting consumer, or leave it to the broker's next batched wake-up."""
        broker = self._broker
        if broker is not None and broker._batching and len(self._buffer) < self._wake_at:
            if not self._deferred:
                self._deferred = True
                broker._defer(self)
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _overflowed(self) -> bool:
        """Apply a non-evicting policy to a message arriving at a full buffer.

        ``drop_oldest`` is handled inline by :meth:`Publisher._offer`. Returns
        ``False`` if the publisher must wait for room (``block``).
        """
        overflow = self._overflow
        if overflow == "block":
            return False
        # drop_newest or error: the arriving message is lost, and reported on
        # whatever is appended next.
        self._dropped += 1
        self._tail_drops += 1
        if overflow == "error":
            self._state = _FAILED
            self._detach()
        return True

    def _lose(self) -> None:
        """Count a message a cancelled ``block`` publisher could not deliver."""
        if self._state == _OPEN:
            self._dropped += 1
            self._tail_drops += 1

    async def _wait_for_space(self) -> None:
        space = self._space
        if space is None:
            space = self._space = anyio.Event()
        await space.wait()

    # -- closing -------------------------------------------------------------

    def _detach(self) -> None:
        """Stop taking messages and wake everyone waiting on this subscription."""
        broker = self._broker
        if broker is not None:
            self._broker = None
            broker._remove(self)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()
        space, self._space = self._space, None
        if space is not None:
            space.set()

    def finish(self) -> None:
        """End the subscription gracefully: no new messages; the iterator drains, then stops.

        This is what happens to a run's subscriptions when the run ends, and to
        every subscription when the runtime closes. Idempotent; it does
        nothing to a closed subscription.
        """
        if self._state == _OPEN:
            self._state = _FINISHING
            self._detach()

    def close(self) -> None:
        """Unsubscribe now: buffered messages are discarded and the iterator stops.

        A task waiting in ``__anext__`` gets ``StopAsyncIteration``; publishers
        waiting for room (``overflow="block"``) go on. Idempotent.
        """
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._discarded += len(self._buffer)
        self._buffer.clear()
        if self._evicts:
            self._dropped += self._head_drops
        self._tail_drops += self._head_drops + sum(n for _, n in self._marks)
        self._head_drops = 0
        self._marks.clear()
        self._detach()

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


@attrs.define(eq=False)
class Publisher:
    """Publishes one step's live stream (``stream.<run_id>.<step_id>``).

    Get it from :meth:`Broker.publisher`. A publisher numbers its messages
    (``seq`` 1, 2, 3, ...) and delivers each, in order, to every matching
    subscription. Use it from one task at a time: two concurrent
    :meth:`publish` calls on one publisher do not promise an order between
    them.
    """

    subject: str
    """The subject this publisher publishes on."""
    run_id: str
    """The publishing run."""
    step_id: str
    """The publishing step."""
    _broker: Broker = attrs.field(alias="broker", repr=False)
    _index: SubjectIndex[Subscription] = attrs.field(alias="index", repr=False)
    _seq: int = attrs.field(default=0, init=False)
    _version: int = attrs.field(default=-1, init=False, repr=False)
    _targets: tuple[Subscription, ...] = attrs.field(default=(), init=False, repr=False)
    _blocking: tuple[Subscription, ...] = attrs.field(default=(), init=False, repr=False)

    @property
    def seq(self) -> int:
        """The ``seq`` of the last message published (0 before the first)."""
        return self._seq

    def _refresh(self) -> None:
        index = self._index
        targets = tuple(index.match(self.subject))
        self._targets = targets
        self._blocking = tuple(sub for sub in targets if sub._overflow == "block")
        self._version = index.version

    def _offer(self, data: object) -> tuple[_Entry, list[Subscription]] | None:
        """Give ``data`` to every matching subscription that takes it without waiting.

        Returns the entry and the ``block`` subscriptions that were full, if any.
        """
        if self._version != self._index.version:
            self._refresh()
        seq = self._seq = self._seq + 1
        targets = self._targets
        if not targets:
            return None
        entry: _Entry = [None, self, seq, data]
        blocked: list[Subscription] | None = None
        broker = self._broker
        batching = broker._batching
        if batching:
            # Only run() reads this, and only while batching: it is how it
            # sees that publishers pause.
            broker._publishes += 1
        woke = False
        for sub in targets:
            buf = sub._buffer
            if len(buf) < sub._size:
                if sub._tail_drops:
                    sub._append(entry)
                    continue
                # The common case, inlined: room and no drop to report.
                buf.append(entry)
                waiter = sub._waiter
                if waiter is not None:
                    if batching:
                        sub._wake()
                    else:
                        sub._waiter = None
                        waiter.set()
                        woke = True
            elif sub._evicts:
                # drop_oldest: the maxlen deque evicts the head; its drops plus
                # itself are reported before the next entry instead. No marks
                # exist under drop_oldest (only drop_newest and cancelled block
                # publishes make them), so every drop belongs to the head.
                # Inlined: this is what a stalled subscriber costs its
                # publisher on every publish.
                buf.append(entry)
                sub._head_drops += 1
                if sub._waiter is not None:
                    sub._wake()
            elif not sub._overflowed():
                if blocked is None:
                    blocked = [sub]
                else:
                    blocked.append(sub)
        if woke and broker._kick is not None:
            # A consumer was waiting: it gets this message at once, and the
            # ones that follow within a few loop cycles are batched.
            broker._start_batching()
        return None if blocked is None else (entry, blocked)

    async def publish(self, data: object) -> None:
        """Publish ``data`` to every matching subscription, then yield once.

        Subscriptions with room (or a drop policy) take it at once; for each
        ``overflow="block"`` subscription whose buffer is full, this waits
        until it has room or is closed. If cancelled while waiting, the
        message counts as dropped for the ``block`` subscriptions it did not
        reach yet (their next message reports it in ``dropped_before``).

        Args:
            data: any object; subscribers receive this very object.
        """
        pending = self._offer(data)
        if pending is not None:
            entry, blocked = pending
            reached = 0
            try:
                for sub in blocked:
                    while sub._state == _OPEN and len(sub._buffer) >= sub._size:
                        await sub._wait_for_space()
                    if sub._state == _OPEN:
                        sub._append(entry)
                    reached += 1
            except BaseException:
                for sub in blocked[reached:]:
                    sub._lose()
                raise
        await anyio.lowlevel.checkpoint()

    def publish_nowait(self, data: object) -> None:
        """Publish ``data`` without ever waiting or yielding.

        All or nothing: if an ``overflow="block"`` subscription is full, nothing
        is published (``seq`` is not used up) and :class:`anyio.WouldBlock` is
        raised, so the caller may retry or fall back to :meth:`publish`. Call it
        from the event loop's thread; a worker thread goes through
        ``anyio.from_thread.run_sync(publisher.publish_nowait, data)``.

        Args:
            data: any object; subscribers receive this very object.

        Raises:
            anyio.WouldBlock: a ``block`` subscription's buffer is full.
        """
        if self._version != self._index.version:
            self._refresh()
        for sub in self._blocking:
            if len(sub._buffer) >= sub._size:
                raise anyio.WouldBlock(
                    f"subscription to {sub._pattern!r} (overflow='block') is full; "
                    "await publish() to wait for room"
                )
        self._offer(data)


@attrs.define(eq=False)
class Broker:
    """Routes live-stream messages from publishers to subscriptions; one per runtime.

    It owns no task: publishers deliver, subscribers drain. Subscriptions are
    indexed by pattern in a token trie, and each publisher caches the
    subscriptions matching its subject until the set of subscriptions changes.
    """

    _index: SubjectIndex[Subscription] = attrs.field(factory=SubjectIndex, init=False)
    _runs: dict[str, dict[Subscription, None]] = attrs.field(factory=dict, init=False)
    _publishers: dict[str, dict[str, Publisher]] = attrs.field(factory=dict, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    # Batched wake-ups (see run()): publishes so far, subscriptions to wake
    # when publishers pause, and the event that starts the coalescing task.
    # _coalescing: run() is running; _batching: publishers are busy, so wake-ups
    # are being deferred; _kick: set by the first publish after a pause.
    _coalescing: bool = attrs.field(default=False, init=False)
    _batching: bool = attrs.field(default=False, init=False)
    _publishes: int = attrs.field(default=0, init=False)
    _deferred: list[Subscription] = attrs.field(factory=list, init=False)
    _kick: anyio.Event | None = attrs.field(default=None, init=False)
    # When the oldest deferred wake-up was deferred (time.perf_counter()).
    _since: float = attrs.field(default=0.0, init=False)

    def publisher(self, run_id: str, step_id: str) -> Publisher:
        """Return the publisher of step ``step_id`` in run ``run_id``.

        The same publisher is returned for the same step until :meth:`end_run`,
        so ``seq`` stays contiguous across the step's attempts.

        Args:
            run_id: the run's id (one subject token: no ``.`` or whitespace).
            step_id: the step's id within the run (``main`` for the workflow body).

        Raises:
            ValidationError: an id cannot be a subject token.
        """
        steps = self._publishers.get(run_id)
        if steps is not None:
            pub = steps.get(step_id)
            if pub is not None:
                return pub
        pub = Publisher(
            stream_subject(run_id, step_id), run_id, step_id, broker=self, index=self._index
        )
        if not self._closed:
            self._publishers.setdefault(run_id, {})[step_id] = pub
        return pub

    def subscribe(
        self,
        pattern: str,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
        run_id: str | None = None,
    ) -> Subscription:
        """Subscribe to the messages published on subjects matching ``pattern``.

        The subscription receives what is published from now on. On a closed
        broker it is returned already finished (its iterator stops at once).

        Args:
            pattern: a NATS-style pattern, e.g. ``"stream.>"`` or ``"stream.*.main"``.
            buffer: how many messages may wait for the consumer (at least 1).
            overflow: what to do when a message arrives and the buffer is full
                (see :data:`Overflow`).
            run_id: marks a run-scoped subscription, finished by :meth:`end_run`.

        Raises:
            ValidationError: ``pattern`` is invalid, ``buffer`` is not an int
                of at least 1, or ``overflow`` is not a known policy.
        """
        validate_pattern(pattern)
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValidationError(
                f"buffer={buffer!r} is not a valid buffer size; pass an int of at least 1"
            )
        if overflow not in _OVERFLOWS:
            raise ValidationError(
                f"overflow={overflow!r} is not an overflow policy; use one of "
                + ", ".join(repr(o) for o in _OVERFLOWS)
            )
        sub = Subscription(
            pattern=pattern, overflow=overflow, buffer_size=buffer, broker=self, run_id=run_id
        )
        if self._closed:
            sub.finish()
            return sub
        self._index.add(pattern, sub)
        if run_id is not None:
            self._runs.setdefault(run_id, {})[sub] = None
        return sub

    def end_run(self, run_id: str) -> None:
        """Finish the subscriptions scoped to ``run_id``; forget its publishers.

        Each such subscription's iterator delivers what is buffered, then stops.

        Args:
            run_id: the run that ended.
        """
        self._publishers.pop(run_id, None)
        for sub in list(self._runs.get(run_id, ())):
            sub.finish()

    def close(self) -> None:
        """Finish every subscription (runtime shutdown); later ones start finished."""
        self._closed = True
        self._publishers.clear()
        for sub in self._index.match_all():
            sub.finish()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Batch subscriber wake-ups while publishers are busy; run it in a task group.

        Without it every message wakes a waiting subscriber, which costs one
        task switch per message per subscriber. While it runs, a waiting
        subscriber that was just woken is woken again once it has
        ``min(128, buffer // 2)`` messages, when publishers let a few
        event-loop cycles pass without publishing, or after a linger of 200 µs
        plus 20 µs per waiting subscriber (at most 2 ms), whichever comes
        first. The first message after a pause is delivered at once. After 64
        busy cycles it looks every 200 µs instead of every cycle (a timer,
        which an idle asyncio loop may fire up to 1 ms late).
        Use ``await task_group.start(broker.run)``; cancel the task group to
        stop it (waiting subscribers are woken then).

        Args:
            task_status: set once batching is active (``task_group.start``).

        Raises:
            RuntimeError: another ``run()`` of this broker is active.
        """
        if self._coalescing:
            raise RuntimeError(f"{self!r} is already running; run() it once")
        self._coalescing = True
        try:
            task_status.started()
            while True:
                # Idle: the first publish after a pause wakes its subscribers at
                # once, and kicks this task, so the ones after it are batched.
                event = self._kick = anyio.Event()
                await event.wait()
                # Let publishers go on while they publish every loop cycle. The
                # scheduler may run us before or after a publisher within a cycle
                # (trio shuffles), so only a few quiet cycles in a row mean a pause.
                # Deferred wake-ups never wait longer than _LINGER, and once
                # publishing is sustained, look every _LINGER seconds instead of
                # every cycle: the loop is busy, so the timer is on time, and this
                # task stops costing a task switch per publish.
                quiet = busy = 0
                while True:
                    seen = self._publishes
                    if busy < _HOT_CYCLES:
                        await anyio.lowlevel.checkpoint()
                    else:
                        await anyio.sleep(_LINGER)
                    if self._publishes == seen:
                        quiet += 1
                        if quiet >= _QUIET_CYCLES or busy >= _HOT_CYCLES:
                            break
                    else:
                        quiet = 0
                        busy += 1
                    deferred = len(self._deferred)
                    if deferred and time.perf_counter() - self._since >= min(
                        _LINGER + deferred * _LINGER_PER_SUBSCRIBER, _MAX_LINGER
                    ):
                        self._flush()
                self._batching = False
                self._flush()
        finally:
            self._coalescing = self._batching = False
            self._kick = None
            self._flush()

    def _start_batching(self) -> None:
        """A publish after a pause: defer wake-ups from now on, and start watching."""
        self._batching = True
        event, self._kick = self._kick, None
        if event is not None:
            event.set()

    def _defer(self, sub: Subscription) -> None:
        if not self._deferred:
            self._since = time.perf_counter()
        self._deferred.append(sub)

    def _flush(self) -> None:
        deferred, self._deferred = self._deferred, []
        for sub in deferred:
            sub._deferred = False
            waiter = sub._waiter
            if waiter is not None:
                sub._waiter = None
                waiter.set()

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's counters."""
        return BrokerStatistics(
            subscriptions=len(self._index),
            publishers=sum(len(steps) for steps in self._publishers.values()),
        )

    def _remove(self, sub: Subscription) -> None:
        self._index.remove(sub._pattern, sub)
        run_id = sub._run_id
        if run_id is not None:
            subs = self._runs.get(run_id)
            if subs is not None:
                subs.pop(sub, None)
                if not subs:
                    del self._runs[run_id]
