"""Batched wake-ups: waking waiting subscribers in batches while publishers are busy.

Waking a waiting subscriber costs a task switch, so with many subscribers
and a busy publisher, per-message wake-ups would cost more than the
deliveries. :class:`Wakeups` batches them while :meth:`Wakeups.run` runs (the
broker's task, which the runtime starts): the first message after a pause
wakes its subscribers at once; while publishers keep publishing, wake-ups
wait a bounded linger (or until half a buffer is filled), then subscribers
drain what accumulated in one go. Without the task, every message wakes a
waiting subscriber, and a consumer yields once before parking.

Who touches what: publishers count their publishes here and call
:meth:`Wakeups.start` after a pause; a subscription state calls
:meth:`Wakeups.defer` instead of waking its consumer while :attr:`Wakeups.batching`
is set; only :meth:`Wakeups.run` clears it and flushes. All of it happens on
the event loop's thread, so none of it needs a lock.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

__all__ = ("Sleeper", "Wakeups", "wake_threshold")

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


def wake_threshold(buffer_size: int) -> int:
    """How many buffered messages wake a waiting consumer at once while batching."""
    return max(1, min(_BATCH, buffer_size // 2))


class Sleeper(Protocol):
    """A subscription's state, as far as a batched wake-up sees it."""

    # The event its consumer waits on, if it waits.
    waiter: anyio.Event | None
    # Whether it is already held for the next batched wake-up.
    deferred: bool


@attrs.define(eq=False)
class Wakeups:
    """The wake-ups a broker holds back while publishers are busy; one per broker."""

    # run() is running: a consumer parks at once instead of yielding first,
    # which is what lets a batch build up.
    coalescing: bool = False
    # Publishers are busy, so wake-ups are being deferred.
    batching: bool = False
    # Publishes so far; only run() reads it, and only while batching: it is
    # how it sees that publishers pause.
    publishes: int = 0
    # The states to wake when publishers pause or the linger runs out.
    deferred: list[Sleeper] = attrs.field(factory=list)
    # Set by the first publish after a pause, to start run()'s watch.
    kick: anyio.Event | None = None
    # When the oldest deferred wake-up was deferred (time.perf_counter()).
    since: float = 0.0

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Batch wake-ups until cancelled; see :meth:`actorflow._live.Broker.run`."""
        self.coalescing = True
        try:
            task_status.started()
            while True:
                # Idle: the first publish after a pause wakes its subscribers at
                # once, and kicks this task, so the ones after it are batched.
                event = self.kick = anyio.Event()
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
                    seen = self.publishes
                    if busy < _HOT_CYCLES:
                        await anyio.lowlevel.checkpoint()
                    else:
                        await anyio.sleep(_LINGER)
                    if self.publishes == seen:
                        quiet += 1
                        if quiet >= _QUIET_CYCLES or busy >= _HOT_CYCLES:
                            break
                    else:
                        quiet = 0
                        busy += 1
                    deferred = len(self.deferred)
                    if deferred and time.perf_counter() - self.since >= min(
                        _LINGER + deferred * _LINGER_PER_SUBSCRIBER, _MAX_LINGER
                    ):
                        self.flush()
                self.batching = False
                self.flush()
        finally:
            self.coalescing = self.batching = False
            self.kick = None
            self.flush()

    def start(self) -> None:
        """A publish after a pause: defer wake-ups from now on, and start watching."""
        self.batching = True
        event, self.kick = self.kick, None
        if event is not None:
            event.set()

    def defer(self, sleeper: Sleeper) -> None:
        """Hold ``sleeper``'s wake-up for the next flush."""
        if not self.deferred:
            self.since = time.perf_counter()
        sleeper.deferred = True
        self.deferred.append(sleeper)

    def flush(self) -> None:
        """Wake every deferred consumer now."""
        deferred, self.deferred = self.deferred, []
        for sleeper in deferred:
            sleeper.deferred = False
            waiter = sleeper.waiter
            if waiter is not None:
                sleeper.waiter = None
                waiter.set()
