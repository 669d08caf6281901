"""``NATSBroker``: live streams that cross processes (and languages) over NATS.

It wraps the in-process :class:`~actorflow._live._broker.Broker`: subscribers
in the publishing process get the very object a step published, exactly as
without NATS. Every publish is also queued for NATS, on the subject
``stream.<run_id>.<step_id>`` with the headers and payload encoding of
:mod:`actorflow._live._wire`; the nats-py client runs on a thread of its
own (:mod:`actorflow._live._nats_link`), so the step never waits on the
network.

A subscription also subscribes the NATS connection to its pattern
(one NATS subscription per distinct pattern), and what other processes
publish is delivered into the same bounded buffers, under the same overflow
policies, keeping the publisher's ``seq``. The connection does not receive
its own messages (``no_echo``), so nothing arrives twice. Per step, the
broker remembers the last ``seq`` it delivered: a message whose ``seq``
jumps is delivered after counting the missed ones as dropped (they show in
``dropped_before``), and one that is not newer is discarded, so a reconnect
shows as drops, never as reordering or duplicates. Run ends are published
on ``actorflow.run_ended.<run_id>``, which ends run-scoped subscriptions in
every process.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from .._eventloop import current_call_soon
from .._exceptions import BrokerError, ValidationError
from ._broker import Broker, Publisher
from ._message import Overflow
from ._subjects import subject_matches
from ._subscription import Subscription
from ._wire import encode_payload, run_ended_subject

if TYPE_CHECKING:
    from ._nats_link import NATSLink

__all__ = ("NATSBroker", "NATSBrokerStatistics", "NATSPublisher")

logger = logging.getLogger("actorflow.nats")

# Messages delivered from NATS between two yields to the event loop.
_BATCH = 256


@attrs.frozen
class NATSBrokerStatistics:
    """A snapshot of a :class:`NATSBroker` (see :meth:`NATSBroker.statistics`).

    Attributes:
        connected: the connection to NATS is up.
        subscriptions: open subscriptions in this process.
        publishers: publishers kept for runs not yet ended.
        nats_subscriptions: distinct patterns the connection subscribes to.
        published: messages handed to the NATS client.
        outbound_buffered: messages waiting for the NATS client thread.
        outbound_dropped: messages not sent to NATS: the hand-off buffer was
            full, the client refused them (disconnected with its own buffer
            full), or msgspec could not encode them.
        received: messages that arrived from NATS.
        inbound_dropped: arrived messages dropped because the hand-off to the
            runtime's loop was full.
        lost: messages of other processes this process never got, seen as
            gaps in ``seq`` (reported to subscribers as drops).
        stale: arrived messages discarded because they were not newer than
            the last one delivered for their step.
        reconnects: reconnections to NATS.
    """

    connected: bool
    subscriptions: int
    publishers: int
    nats_subscriptions: int
    published: int
    outbound_buffered: int
    outbound_dropped: int
    received: int
    inbound_dropped: int
    lost: int
    stale: int
    reconnects: int


@attrs.define(eq=False)
class NATSPublisher:
    """Publishes one step's live stream in this process and on NATS.

    Get it from :meth:`NATSBroker.publisher`. The in-process delivery is
    :class:`~actorflow._live._broker.Publisher`'s; the NATS copy is encoded
    at publish time and queued without waiting.
    """

    subject: str
    """The subject this publisher publishes on."""
    run_id: str
    """The publishing run."""
    step_id: str
    """The publishing step."""
    _local: Publisher = attrs.field(alias="local", repr=False)
    _broker: NATSBroker = attrs.field(alias="broker", repr=False)

    @property
    def seq(self) -> int:
        """The ``seq`` of the last message published (0 before the first)."""
        return self._local.seq

    async def publish(self, data: object, *, attempt: int = 0) -> None:
        """Publish ``data``: deliver it to this process's subscribers, queue a copy for NATS.

        Waits only for local subscribers with ``overflow="block"``; the NATS
        copy never waits (a full hand-off buffer drops it, and counts it).

        Args:
            data: any object; local subscribers receive this very object,
                remote ones a copy decoded from the documented encoding.
            attempt: the publishing step's attempt, sent as a header (0, the
                workflow body's, is not sent).
        """
        local = self._local
        self._broker._send(self.subject, local.seq + 1, data, attempt)
        await local.publish(data)


@attrs.define(eq=False)
class _Remote:
    """What the broker knows of one step published by another process."""

    forwarder: Publisher
    origin: str = ""
    last: int = 0


@attrs.define(eq=False)
class NATSBroker:
    """A live broker whose streams cross processes: ``Runtime(broker=af.NATSBroker(url))``.

    Needs the ``nats`` extra (``pip install 'actorflow[nats]'``). Local
    subscribers get the published objects themselves; every publish also goes
    to NATS on ``stream.<run_id>.<step_id>`` (see the README's "Live streams
    across processes (NATS)" for the headers and payload encoding), and
    subscriptions receive what other processes publish, as copies.
    ``handle.subscribe()`` on a run executing in another process follows it
    until its end. A lost connection reconnects and resubscribes on its own;
    messages lost meanwhile are reported as drops. Problems are logged to the
    ``actorflow.nats`` logger.

    Args:
        url: the NATS server (``nats://host:port``; several separated by commas).
        name: the connection's name, shown by the server's monitoring.
        outbound_buffer: messages that may wait for the NATS client thread;
            more are dropped (counted in :meth:`statistics`).
        inbound_buffer: messages from NATS that may wait for the runtime's loop.
        reconnect_wait: seconds between two reconnection attempts.
        connect_timeout: seconds to wait for the server when connecting.
        close_timeout: seconds :meth:`close` waits for queued messages to be sent.
    """

    url: str = "nats://127.0.0.1:4222"
    name: str | None = attrs.field(default=None, kw_only=True)
    outbound_buffer: int = attrs.field(default=65536, kw_only=True)
    inbound_buffer: int = attrs.field(default=65536, kw_only=True)
    reconnect_wait: float = attrs.field(default=0.5, kw_only=True)
    connect_timeout: float = attrs.field(default=2.0, kw_only=True)
    close_timeout: float = attrs.field(default=5.0, kw_only=True)

    crosses_processes: ClassVar[bool] = True
    """Subscribers also receive what other processes publish."""

    _local: Broker = attrs.field(init=False, repr=False)
    _origin: str = attrs.field(factory=lambda: uuid.uuid4().hex, init=False, repr=False)
    _link: NATSLink | None = attrs.field(default=None, init=False, repr=False)
    _publishers: dict[str, dict[str, NATSPublisher]] = attrs.field(
        factory=dict, init=False, repr=False
    )
    _remotes: dict[str, dict[str, _Remote]] = attrs.field(factory=dict, init=False, repr=False)
    _patterns: dict[str, int] = attrs.field(factory=dict, init=False, repr=False)
    _arrived: anyio.Event | None = attrs.field(default=None, init=False, repr=False)
    _unencodable: int = attrs.field(default=0, init=False, repr=False)
    _lost: int = attrs.field(default=0, init=False, repr=False)
    _stale: int = attrs.field(default=0, init=False, repr=False)
    _closed: bool = attrs.field(default=False, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ModuleNotFoundError(
                "NATSBroker needs nats-py; install it with: pip install 'actorflow[nats]'"
            ) from None
        for name in ("outbound_buffer", "inbound_buffer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(
                    f"{name}={value!r} is not a valid buffer size; pass an int of at least 1"
                )
        self._local = Broker(on_remove=self._pattern_removed)

    # -- publishing ------------------------------------------------------------------

    def publisher(self, run_id: str, step_id: str) -> NATSPublisher:
        """Return the publisher of step ``step_id`` in run ``run_id`` (the same one until its end).

        Raises:
            ValidationError: an id cannot be a subject token.
        """
        steps = self._publishers.get(run_id)
        if steps is not None:
            pub = steps.get(step_id)
            if pub is not None:
                return pub
        local = self._local.publisher(run_id, step_id)
        pub = NATSPublisher(local.subject, run_id, step_id, local=local, broker=self)
        if not self._closed:
            self._publishers.setdefault(run_id, {})[step_id] = pub
        return pub

    def _send(self, subject: str, seq: int, data: object, attempt: int = 0) -> None:
        """Queue ``data`` for NATS as message ``seq`` of ``subject``; never waits."""
        link = self._link
        if link is None or self._closed:
            return
        try:
            payload, encoding = encode_payload(data)
        except Exception as exc:
            self._unencodable += 1
            if self._unencodable == 1:
                logger.warning(
                    "a live message on %s cannot be encoded for NATS (%s); remote subscribers "
                    "see it as dropped: publish bytes, str or msgspec-encodable values",
                    subject,
                    exc,
                )
            return
        link.publish(subject, seq, encoding, payload, attempt)

    def end_run(self, run_id: str) -> None:
        """The run ended here: finish its subscriptions, tell other processes on NATS."""
        steps = self._publishers.pop(run_id, {})
        self._local.end_run(run_id)
        self._remotes.pop(run_id, None)
        link = self._link
        if link is not None and not self._closed:
            seqs = {step_id: pub.seq for step_id, pub in steps.items()}
            payload, encoding = encode_payload({"seqs": seqs})
            link.publish(run_ended_subject(run_id), 0, encoding, payload, force=True)

    # -- subscribing -----------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        *,
        buffer: int = 1024,
        overflow: Overflow = "drop_oldest",
        run_id: str | None = None,
    ) -> Subscription:
        """Subscribe to what this process and every other one publishes on ``pattern``.

        Args:
            pattern: a NATS-style pattern, e.g. ``"stream.>"`` or ``"stream.*.main"``.
            buffer: how many messages may wait for the consumer (at least 1).
            overflow: what to do when a message arrives and the buffer is full.
            run_id: marks a run-scoped subscription, finished when the run ends.

        Raises:
            ValidationError: bad pattern, buffer or overflow policy.
        """
        sub = self._local.subscribe(pattern, buffer=buffer, overflow=overflow, run_id=run_id)
        if not sub.closed:
            users = self._patterns.get(pattern, 0)
            self._patterns[pattern] = users + 1
            if users == 0 and self._link is not None:
                self._link.subscribe(pattern)
        return sub

    async def synchronize(self) -> None:
        """Return once the server has every subscription made so far (a round trip)."""
        link = self._link
        if link is None:
            await anyio.lowlevel.checkpoint()
            return
        done = anyio.Event()
        link.sync(done.set, timeout=self.connect_timeout)
        with anyio.move_on_after(self.connect_timeout + 1.0):
            await done.wait()

    def _pattern_removed(self, pattern: str) -> None:
        users = self._patterns.get(pattern, 0) - 1
        if users > 0:
            self._patterns[pattern] = users
            return
        self._patterns.pop(pattern, None)
        if self._link is not None:
            self._link.unsubscribe(pattern)
        # Steps no pattern covers any more: a later subscription starts afresh
        # instead of counting everything published meanwhile as lost.
        patterns = list(self._patterns)
        for run_id, steps in list(self._remotes.items()):
            for step_id, remote in list(steps.items()):
                subject = remote.forwarder.subject
                if not any(subject_matches(p, subject) for p in patterns):
                    del steps[step_id]
            if not steps:
                del self._remotes[run_id]

    # -- lifecycle -------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to NATS and deliver what arrives; run it in a task group.

        Use ``await task_group.start(broker.run)`` (the runtime does): it
        returns once connected. Cancel the task group to stop delivering;
        :meth:`close` then sends what is queued and disconnects.

        Raises:
            BrokerError: the server cannot be reached.
            RuntimeError: another ``run()`` of this broker is active.
        """
        if self._link is not None or self._closed:
            raise RuntimeError(f"{self!r} has already run; run() it once, before close()")
        self._arrived = anyio.Event()
        outcome: list[BaseException | None] = []
        ready = anyio.Event()

        def connected(error: BaseException | None) -> None:
            outcome.append(error)
            ready.set()

        # Imported here: the link needs asyncio, which `import actorflow` does not load.
        from ._nats_link import NATSLink

        link = NATSLink(
            self.url,
            self.name or "actorflow",
            self._origin,
            self.outbound_buffer,
            self.inbound_buffer,
            self.reconnect_wait,
            self.connect_timeout,
            self._inbound_arrived,
        )
        link.start(current_call_soon(), connected)
        with anyio.move_on_after(3 * self.connect_timeout + 2 * self.reconnect_wait + 1.0):
            await ready.wait()
        error = outcome[0] if outcome else TimeoutError("no answer")
        if error is not None:
            link.stop(self.close_timeout)
            raise BrokerError(
                f"cannot connect to the NATS server at {self.url!r} ({error!s}); start it "
                "(nats-server -js) or pass NATSBroker(url=...) of a running one"
            )
        self._link = link
        for pattern in self._patterns:
            link.subscribe(pattern)
        async with anyio.create_task_group() as tg:
            await tg.start(self._local.run)
            task_status.started()
            await self._deliver(link)

    def close(self) -> None:
        """Finish every subscription; send what is queued, disconnect (waits ``close_timeout``)."""
        self._closed = True
        self._publishers.clear()
        self._local.close()
        # The link stays, stopped, for statistics().
        link = self._link
        if link is not None:
            link.stop(self.close_timeout)

    def statistics(self) -> NATSBrokerStatistics:
        """Return a snapshot of the broker's counters."""
        local = self._local.statistics()
        link = self._link
        return NATSBrokerStatistics(
            connected=link is not None and link.connected and not self._closed,
            subscriptions=local.subscriptions,
            publishers=local.publishers,
            nats_subscriptions=len(self._patterns),
            published=0 if link is None else link.published,
            outbound_buffered=0 if link is None else link.outbound_buffered,
            outbound_dropped=self._unencodable
            + (0 if link is None else link.outbound_dropped + link.refused),
            received=0 if link is None else link.received,
            inbound_dropped=0 if link is None else link.inbound_dropped,
            lost=self._lost,
            stale=self._stale,
            reconnects=0 if link is None else link.reconnects,
        )

    # -- what arrives from NATS --------------------------------------------------------

    def _inbound_arrived(self) -> None:
        if self._arrived is not None:
            self._arrived.set()

    async def _deliver(self, link: NATSLink) -> None:
        inbound = link.inbound
        while True:
            arrived = self._arrived
            assert arrived is not None
            await arrived.wait()
            self._arrived = anyio.Event()
            link.inbound_pending = False
            delivered = 0
            while inbound:
                run_id, step_id, seq, origin, data = inbound.popleft()
                if step_id is None:
                    self._remote_run_ended(run_id, origin, data)
                    continue
                forwarder = self._accept(run_id, step_id, seq, origin)
                if forwarder is None:
                    continue
                try:
                    forwarder.forward_nowait(seq, data)
                except anyio.WouldBlock:
                    await forwarder.forward(seq, data)
                delivered += 1
                if delivered % _BATCH == 0:
                    await anyio.lowlevel.checkpoint()

    def _accept(self, run_id: str, step_id: str, seq: int, origin: str) -> Publisher | None:
        """The forwarder to deliver message ``seq`` with, after counting a gap; None if stale."""
        steps = self._remotes.get(run_id)
        if steps is None:
            steps = self._remotes[run_id] = {}
        remote = steps.get(step_id)
        if remote is None:
            forwarder = self._local.forwarder(run_id, step_id)
            remote = steps[step_id] = _Remote(forwarder, origin, seq - 1)
        elif remote.origin != origin:
            # Another process publishes this step now (the run resumed there):
            # its seq starts again.
            remote.origin = origin
            remote.last = seq - 1
        if seq <= remote.last:
            self._stale += 1
            return None
        gap = seq - remote.last - 1
        remote.last = seq
        if gap:
            self._lost += gap
            remote.forwarder.skip(gap)
        return remote.forwarder

    def _remote_run_ended(self, run_id: str, origin: str, seqs: object) -> None:
        steps = self._remotes.pop(run_id, {})
        if isinstance(seqs, dict):
            for step_id, last in seqs.items():
                remote = steps.get(step_id)
                if remote is not None and remote.origin == origin and isinstance(last, int):
                    gap = last - remote.last
                    if gap > 0:
                        self._lost += gap
                        remote.forwarder.skip(gap)
        self._local.end_run(run_id)
