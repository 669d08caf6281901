"""The live-stream broker: NATS-style publish/subscribe inside one runtime.

A step publishes with ``await ctx.put_stream(data)`` on the subject
``stream.<run_id>.<step_id>`` (see :mod:`actorflow._live._subjects`); every
subscription whose pattern matches gets the message in its own bounded
buffer (:mod:`actorflow._live._subscription`). Nothing is stored: a message
no subscription matches is gone.

How it stays fast and fair
--------------------------
The cost of in-process fan-out is the *await*, not the copy: an awaited send
per message per subscriber caps delivery far below what plain buffer
operations allow. So :meth:`Publisher.publish` hands the message to every
matching subscription with plain, non-blocking buffer operations (each
subscription applies its own overflow policy on the spot), wakes only the
subscribers that are actually waiting, and then yields to the event loop
exactly once. The only exception is a ``"block"`` subscription whose buffer
is full: that is the one case where a publisher waits, because the
subscriber asked for it. While publishers are busy, waking the subscribers
is batched (:mod:`actorflow._live._wakeups`).

The matching subscriptions of a publisher are cached together with the
:class:`~actorflow._live._subjects.SubjectIndex` version, so publishing with
no subscriber costs a version check and the yield, and allocates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from .._exceptions import ValidationError
from ._message import OVERFLOWS, Entry, Message, Overflow, SubscriptionStatistics
from ._subjects import SubjectIndex, stream_subject, validate_pattern
from ._subscription import OPEN, Subscription, SubscriptionState
from ._wakeups import Wakeups

__all__ = (
    "Broker",
    "BrokerStatistics",
    "Message",
    "Overflow",
    "Publisher",
    "Subscription",
    "SubscriptionStatistics",
)


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
    _index: SubjectIndex[SubscriptionState] = attrs.field(alias="index", repr=False)
    _wakeups: Wakeups = attrs.field(alias="wakeups", repr=False)
    _seq: int = attrs.field(default=0, init=False)
    _version: int = attrs.field(default=-1, init=False, repr=False)
    _targets: tuple[SubscriptionState, ...] = attrs.field(default=(), init=False, repr=False)
    _blocking: tuple[SubscriptionState, ...] = attrs.field(default=(), init=False, repr=False)

    @property
    def seq(self) -> int:
        """The ``seq`` of the last message published (0 before the first)."""
        return self._seq

    def _refresh(self) -> None:
        index = self._index
        targets = tuple(index.match(self.subject))
        self._targets = targets
        self._blocking = tuple(sub for sub in targets if sub.overflow == "block")
        self._version = index.version

    def _offer(self, data: object) -> tuple[Entry, list[SubscriptionState]] | None:
        """Give ``data`` to every matching subscription that takes it without waiting.

        Returns the entry and the ``block`` subscriptions that were full, if any.
        """
        if self._version != self._index.version:
            self._refresh()
        seq = self._seq = self._seq + 1
        targets = self._targets
        if not targets:
            return None
        entry: Entry = [None, self, seq, data]
        blocked: list[SubscriptionState] | None = None
        wakeups = self._wakeups
        batching = wakeups.batching
        if batching:
            wakeups.publishes += 1
        woke = False
        for sub in targets:
            buf = sub.buffer
            if len(buf) < sub.size:
                if sub.tail_drops:
                    sub.append(entry)
                    continue
                # The common case, inlined: room and no drop to report.
                buf.append(entry)
                waiter = sub.waiter
                if waiter is not None:
                    if batching:
                        sub.wake()
                    else:
                        sub.waiter = None
                        waiter.set()
                        woke = True
            elif sub.evicts:
                # drop_oldest: the maxlen deque evicts the head; its drops plus
                # itself are reported before the next entry instead. No marks
                # exist under drop_oldest (only drop_newest and cancelled block
                # publishes make them), so every drop belongs to the head.
                # Inlined: this is what a stalled subscriber costs its
                # publisher on every publish.
                buf.append(entry)
                sub.head_drops += 1
                if sub.waiter is not None:
                    sub.wake()
            elif not sub.overflowed():
                if blocked is None:
                    blocked = [sub]
                else:
                    blocked.append(sub)
        if woke and wakeups.kick is not None:
            # A consumer was waiting: it gets this message at once, and the
            # ones that follow within a few loop cycles are batched.
            wakeups.start()
        return None if blocked is None else (entry, blocked)

    async def publish(self, data: object, *, attempt: int = 0) -> None:
        """Publish ``data`` to every matching subscription, then yield once.

        Subscriptions with room (or a drop policy) take it at once; for each
        ``overflow="block"`` subscription whose buffer is full, this waits
        until it has room or is closed. If cancelled while waiting, the
        message counts as dropped for the ``block`` subscriptions it did not
        reach yet (their next message reports it in ``dropped_before``).

        Args:
            data: any object; subscribers receive this very object.
            attempt: the publishing step's attempt (0 for the workflow body);
                unused in-process (a message does not carry it).
        """
        pending = self._offer(data)
        if pending is not None:
            entry, blocked = pending
            reached = 0
            try:
                for sub in blocked:
                    while sub.status == OPEN and len(sub.buffer) >= sub.size:
                        await sub.wait_for_space()
                    if sub.status == OPEN:
                        sub.append(entry)
                    reached += 1
            except BaseException:
                for sub in blocked[reached:]:
                    sub.lose()
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
            if len(sub.buffer) >= sub.size:
                raise anyio.WouldBlock(
                    f"subscription to {sub.pattern!r} (overflow='block') is full; "
                    "await publish() to wait for room"
                )
        self._offer(data)

    def skip(self, lost: int) -> None:
        """Count ``lost`` messages of this step that never reached this process.

        For a broker that crosses processes: each matching subscription
        reports them in the ``dropped_before`` of its next message.
        """
        if self._version != self._index.version:
            self._refresh()
        for sub in self._targets:
            sub.skip(lost)

    def forward_nowait(self, seq: int, data: object) -> None:
        """Deliver a message another process published as ``seq``, without waiting.

        Like :meth:`publish_nowait`, but the message keeps the ``seq`` its
        publisher gave it.

        Raises:
            anyio.WouldBlock: a ``block`` subscription's buffer is full.
        """
        last = self._seq
        self._seq = seq - 1
        try:
            self.publish_nowait(data)
        except anyio.WouldBlock:
            self._seq = last
            raise

    async def forward(self, seq: int, data: object) -> None:
        """Deliver a message another process published as ``seq``; wait for ``block`` room."""
        self._seq = seq - 1
        await self.publish(data)


@attrs.define(eq=False)
class Broker:
    """Routes live-stream messages from publishers to subscriptions; one per runtime.

    Publishers deliver and subscribers drain; its only task (:meth:`run`)
    batches wake-ups. Subscriptions are indexed by pattern in a token trie,
    and each publisher caches the subscriptions matching its subject until
    the set of subscriptions changes.
    """

    _index: SubjectIndex[SubscriptionState] = attrs.field(factory=SubjectIndex, init=False)
    _runs: dict[str, dict[SubscriptionState, None]] = attrs.field(factory=dict, init=False)
    _publishers: dict[str, dict[str, Publisher]] = attrs.field(factory=dict, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _wakeups: Wakeups = attrs.field(factory=Wakeups, init=False, repr=False)
    on_remove: Callable[[str], object] | None = attrs.field(default=None, kw_only=True, repr=False)
    """Called with a subscription's pattern once it stops taking messages."""

    crosses_processes: ClassVar[bool] = False
    """Subscribers receive only what this process publishes."""

    async def synchronize(self) -> None:
        """Nothing to wait for: a subscription receives every later publish at once."""
        await anyio.lowlevel.checkpoint()

    def forwarder(self, run_id: str, step_id: str) -> Publisher:
        """A publisher that delivers, to this broker's subscribers, what another process published.

        Unlike :meth:`publisher` it is not kept: its owner (a broker that
        crosses processes) keeps it as long as it needs it.
        """
        return Publisher(
            stream_subject(run_id, step_id),
            run_id,
            step_id,
            index=self._index,
            wakeups=self._wakeups,
        )

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
            stream_subject(run_id, step_id),
            run_id,
            step_id,
            index=self._index,
            wakeups=self._wakeups,
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
        if overflow not in OVERFLOWS:
            raise ValidationError(
                f"overflow={overflow!r} is not an overflow policy; use one of "
                + ", ".join(repr(o) for o in OVERFLOWS)
            )
        if self._closed:
            state = SubscriptionState(pattern, overflow, buffer, run_id)
            state.finish()
            return Subscription(state=state)
        state = SubscriptionState(
            pattern,
            overflow,
            buffer,
            run_id,
            wakeups=self._wakeups,
            on_detach=self._remove,
        )
        self._index.add(pattern, state)
        if run_id is not None:
            self._runs.setdefault(run_id, {})[state] = None
        return Subscription(state=state)

    def end_run(self, run_id: str) -> None:
        """Finish the subscriptions scoped to ``run_id``; forget its publishers.

        Each such subscription's iterator delivers what is buffered, then stops.

        Args:
            run_id: the run that ended.
        """
        self._publishers.pop(run_id, None)
        for state in list(self._runs.get(run_id, ())):
            state.finish()

    def close(self) -> None:
        """Finish every subscription (runtime shutdown); later ones start finished."""
        self._closed = True
        self._publishers.clear()
        for state in self._index.match_all():
            state.finish()

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
        if self._wakeups.coalescing:
            raise RuntimeError(f"{self!r} is already running; run() it once")
        await self._wakeups.run(task_status=task_status)

    def statistics(self) -> BrokerStatistics:
        """Return a snapshot of the broker's counters."""
        return BrokerStatistics(
            subscriptions=len(self._index),
            publishers=sum(len(steps) for steps in self._publishers.values()),
        )

    def _remove(self, state: SubscriptionState) -> None:
        self._index.remove(state.pattern, state)
        if self.on_remove is not None:
            self.on_remove(state.pattern)
        run_id = state.run_id
        if run_id is not None:
            subs = self._runs.get(run_id)
            if subs is not None:
                subs.pop(state, None)
                if not subs:
                    del self._runs[run_id]
