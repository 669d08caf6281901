"""Live streams: messages, subjects, and the brokers that deliver them.

The subject layout lives in one function (:func:`stream_subject`); the
in-process broker (:class:`Broker`) implements :class:`actorflow.abc.LiveBroker`.
"""

from ._broker import Broker, Message, Overflow, Subscription, SubscriptionStatistics
from ._subjects import stream_subject, validate_pattern

__all__ = (
    "Broker",
    "Message",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
    "stream_subject",
    "validate_pattern",
)
