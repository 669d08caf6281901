"""Live streams: messages, subjects, and the brokers that deliver them.

Dependencies point down: ``_message`` (what a stream carries) and
``_subjects`` (the subject layout: :func:`stream_subject` names a step's
subject, :func:`run_pattern` a run's pattern) ->
``_wakeups`` (batched wake-ups) -> ``_subscription`` (the state a
subscription's two sides share, and the consumer's iterator) -> ``_broker``
(:class:`Broker`, which implements :class:`actorflow.abc.LiveBroker`, and its
publishers) -> ``_wire`` (the NATS subjects, headers and payload encoding) ->
``_nats_link`` (the nats-py client on its own thread) -> ``_nats``
(:class:`NATSBroker`: the in-process broker plus NATS).
"""

from ._broker import Broker
from ._message import Message, Overflow, SubscriptionStatistics
from ._nats import NATSBroker, NATSBrokerStatistics
from ._subjects import run_pattern, stream_subject, validate_pattern
from ._subscription import Subscription

__all__ = (
    "Broker",
    "Message",
    "NATSBroker",
    "NATSBrokerStatistics",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
    "run_pattern",
    "stream_subject",
    "validate_pattern",
)
