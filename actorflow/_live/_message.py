"""What a live stream carries: messages, overflow policies, subscription counters.

A published message is buffered as an :data:`Entry` that every subscription
the publish reached shares; the :class:`Message` a subscriber receives is
built from it by the first subscriber that takes it.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, get_args

import attrs
import msgspec

__all__ = (
    "DATA",
    "MSG",
    "OVERFLOWS",
    "SEQ",
    "SOURCE",
    "Entry",
    "Message",
    "Overflow",
    "Source",
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

OVERFLOWS: tuple[str, ...] = get_args(Overflow)


class Message(msgspec.Struct, frozen=True):
    """One live-stream message, as a subscriber receives it.

    A frozen msgspec Struct, like every mailbox message: it is much cheaper to
    build than a frozen attrs class, and one is built per message delivered.

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


class Source(Protocol):
    """Where a buffered entry was published: what its :class:`Message` names."""

    @property
    def subject(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def step_id(self) -> str: ...


# A buffered entry is shared by every subscription the publish reached:
# [message or None, source, seq, data]. The Message is built by the first
# subscriber that takes the entry, so a message nobody reads (a stalled
# subscriber's evictions) costs one small list, not an object per field.
# A list indexed by constants, not a class: it is allocated on every publish
# that reaches a subscriber, and filled in place by the first reader.
MSG, SOURCE, SEQ, DATA = range(4)
Entry = list[Any]


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
