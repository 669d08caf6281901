"""The NATS client thread: one nats-py connection on its own thread and asyncio loop.

nats-py is asyncio-only, and actorflow runs on asyncio and trio, so the
client gets a thread and an event loop of its own (the *link* thread). The
runtime's loop and the link talk through two bounded queues, each handed
over in batches:

- outbound: the runtime appends ``(subject, seq, encoding, payload)`` to a
  deque and wakes the link only when the link is not already awake, so one
  wake-up (a ``call_soon_threadsafe``) carries every message appended until
  the link drains the deque. When the deque is full, the message is dropped
  and counted: publishing never waits on NATS.
- inbound: the link's subscription callbacks decode messages into another
  deque and wake the runtime's loop (``current_call_soon``) only when the
  owner has taken the previous batch. When it is full the message is
  dropped and counted; its receiver sees a gap in ``seq``, which it reports
  as a drop. Run-end messages are never dropped: a subscription waits for
  them.

Invariant: ``_out_awake`` is set by the runtime's thread and cleared by the
link; ``inbound_pending`` is set by the link and cleared by the owner before
it drains ``inbound``. Both deques are appended by one thread and popped by
the other, which ``collections.deque`` allows without a lock; a flag read
stale costs at most one extra wake-up, never a lost one, because each side
clears its flag before draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from .._eventloop import CallSoon
from ._wire import ATTEMPT, ENCODING, ORIGIN, RUN_ENDED_PATTERN, SEQ, decode_payload

__all__ = ("Inbound", "NATSLink")

logger = logging.getLogger("actorflow.nats")

_ATTEMPT = ATTEMPT.encode()

# How long the link waits for more to publish before it goes to sleep (seconds).
_LINGER = 0.0005
# A batch at least this big means publishers are busy (see _pump).
_BUSY = 32

# nats-py's buffer for what is published while disconnected (its default).
_PENDING_SIZE = 2 * 1024 * 1024

Inbound = tuple[str, str | None, int, str, object]
"""``(run_id, step_id, seq, origin, data)``; ``step_id`` is None for a run end."""


@attrs.define(eq=False)
class NATSLink:
    """A nats-py connection running on its own thread (see the module docstring)."""

    url: str
    name: str
    origin: str
    max_outbound: int
    max_inbound: int
    reconnect_wait: float
    connect_timeout: float
    # Called in the runtime's loop (through call_soon) when inbound has messages.
    on_inbound: Callable[[], object]

    inbound: deque[Inbound] = attrs.field(factory=deque, init=False)
    inbound_pending: bool = attrs.field(default=False, init=False)
    connected: bool = attrs.field(default=False, init=False)  # written by the link thread
    # Counters: each written by one thread only.
    published: int = attrs.field(default=0, init=False)
    outbound_dropped: int = attrs.field(default=0, init=False)  # runtime thread
    refused: int = attrs.field(default=0, init=False)  # link thread
    received: int = attrs.field(default=0, init=False)
    inbound_dropped: int = attrs.field(default=0, init=False)
    undecodable: int = attrs.field(default=0, init=False)
    reconnects: int = attrs.field(default=0, init=False)

    # Invariant: _loop, _out_event and _commands are set once by the link thread
    # before ready() is called, and only read by the runtime's thread after;
    # _nc, _subs, _warned, _fast and _prefixes belong to the link thread.
    _call_soon: CallSoon | None = attrs.field(default=None, init=False)
    _outbound: deque[tuple[str, int, str, bytes, int]] = attrs.field(factory=deque, init=False)
    _out_awake: bool = attrs.field(default=False, init=False)
    _thread: threading.Thread | None = attrs.field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)
    _out_event: asyncio.Event | None = attrs.field(default=None, init=False)
    _commands: asyncio.Queue[Callable[[], Coroutine[Any, Any, None]] | None] | None = attrs.field(
        default=None, init=False
    )
    _nc: Any = attrs.field(default=None, init=False)
    _subs: dict[str, Any] = attrs.field(factory=dict, init=False)
    _warned: set[str] = attrs.field(factory=set, init=False)
    # nats-py's command queue and flush, when it has them (see _send_queued_fast).
    _fast: tuple[Any, Any] | None = attrs.field(default=None, init=False)
    _prefixes: dict[str, bytes] = attrs.field(factory=dict, init=False)

    # -- the runtime's thread -------------------------------------------------

    def start(self, call_soon: CallSoon, ready: Callable[[BaseException | None], object]) -> None:
        """Start the link thread; ``ready(error)`` runs in the runtime's loop once connected."""
        self._call_soon = call_soon
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"actorflow NATS {self.url}", daemon=True
        )
        self._thread.start()

    def publish(
        self,
        subject: str,
        seq: int,
        encoding: str,
        payload: bytes,
        attempt: int = 0,
        *,
        force: bool = False,
    ) -> None:
        """Queue a message for NATS, or count it dropped when the queue is full. Never waits.

        ``force`` queues it even then (a run end, which subscribers wait for).
        """
        out = self._outbound
        if len(out) >= self.max_outbound and not force:
            self.outbound_dropped += 1
            return
        out.append((subject, seq, encoding, payload, attempt))
        if not self._out_awake:
            self._out_awake = True
            self._wake_link()

    @property
    def outbound_buffered(self) -> int:
        """Messages queued for NATS and not sent yet."""
        return len(self._outbound)

    def command(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``fn()`` on the link, after the commands given before it; False if it stopped."""
        loop, commands = self._loop, self._commands
        if loop is None or commands is None:
            return False
        try:
            loop.call_soon_threadsafe(commands.put_nowait, fn)
        except RuntimeError:  # the link's loop has stopped
            return False
        return True

    def subscribe(self, pattern: str) -> None:
        """Subscribe the connection to ``pattern`` (the caller counts its users)."""

        async def run() -> None:
            if pattern not in self._subs:
                self._subs[pattern] = await self._nc.subscribe(pattern, cb=self._on_stream)

        self.command(run)

    def unsubscribe(self, pattern: str) -> None:
        """Drop the connection's subscription to ``pattern``."""

        async def run() -> None:
            sub = self._subs.pop(pattern, None)
            if sub is not None:
                await sub.unsubscribe()

        self.command(run)

    def sync(self, done: Callable[[], object], timeout: float) -> None:
        """Call ``done()`` in the runtime's loop once the server has every earlier subscription."""

        async def run() -> None:
            try:
                await self._nc.flush(timeout=timeout)
            except Exception as exc:
                self._warn("flush", "could not confirm subscriptions with NATS at %s: %s", exc)
            self._notify(done)

        if not self.command(run):
            done()

    def stop(self, timeout: float) -> None:
        """Send what is queued, disconnect and end the thread (waits up to ``timeout``)."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        loop, commands = self._loop, self._commands
        if loop is not None and commands is not None:
            with contextlib.suppress(RuntimeError):  # the link's loop has stopped
                loop.call_soon_threadsafe(commands.put_nowait, None)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("the NATS thread for %s did not stop within %ss", self.url, timeout)

    def _wake_link(self) -> None:
        loop, event = self._loop, self._out_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the link's loop has stopped
                loop.call_soon_threadsafe(event.set)

    # -- the link thread ------------------------------------------------------

    def _notify(self, fn: Callable[[], object]) -> None:
        call_soon = self._call_soon
        if call_soon is not None:
            with contextlib.suppress(RuntimeError):  # the runtime's loop has stopped
                call_soon(fn)

    def _warn(self, key: str, message: str, *args: object) -> None:
        # One warning per kind of trouble and connection, then debug: a lost
        # server would otherwise log once per message.
        if key in self._warned:
            logger.debug(message, self.url, *args)
        else:
            self._warned.add(key)
            logger.warning(message, self.url, *args)

    def _main(self, ready: Callable[[BaseException | None], object]) -> None:
        try:
            asyncio.run(self._amain(ready))
        except Exception as exc:
            logger.error("the NATS client thread for %s failed: %r", self.url, exc)

    async def _amain(self, ready: Callable[[BaseException | None], object]) -> None:
        import nats

        self._loop = asyncio.get_running_loop()
        self._out_event = asyncio.Event()
        self._commands = asyncio.Queue()
        try:
            # Two attempts at first, so a wrong URL fails the runtime's start
            # instead of retrying forever; once connected, reconnect forever.
            nc = await nats.connect(
                self.url,
                name=self.name,
                no_echo=True,
                allow_reconnect=True,
                max_reconnect_attempts=1,
                reconnect_time_wait=self.reconnect_wait,
                connect_timeout=self.connect_timeout,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                skip_subject_validation=True,
                pending_size=_PENDING_SIZE,
            )
        except Exception as exc:
            self._loop = None
            self._notify(functools.partial(ready, exc))
            return
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        send_command = getattr(nc, "_send_command", None)
        flush_pending = getattr(nc, "_flush_pending", None)
        if callable(send_command) and callable(flush_pending):
            self._fast = (send_command, flush_pending)
        self.connected = True
        try:
            await nc.subscribe(RUN_ENDED_PATTERN, cb=self._on_run_ended)
            self._notify(functools.partial(ready, None))
            pump = asyncio.create_task(self._pump())
            while (fn := await self._commands.get()) is not None:
                try:
                    await fn()
                except Exception as exc:
                    self._warn("command", "NATS at %s refused a request: %s", exc)
            pump.cancel()
            await self._send_queued()
            await nc.flush(timeout=max(round(self.connect_timeout), 1))
        except Exception as exc:
            logger.warning("NATS at %s: could not send all before closing: %s", self.url, exc)
        finally:
            self.connected = False
            try:
                await nc.close()
            except Exception as exc:
                logger.debug("closing the NATS connection to %s: %r", self.url, exc)

    async def _pump(self) -> None:
        event = self._out_event
        assert event is not None
        out = self._outbound
        while True:
            await event.wait()
            event.clear()
            while True:
                batch = len(out)
                await self._send_queued()
                if batch >= _BUSY:
                    # Publishers are busy: stay awake a moment, so that they
                    # find the link awake and hand over whole batches (waking it
                    # costs the publishing thread a system call). A quiet
                    # publisher wakes it per message instead: no added latency.
                    await asyncio.sleep(_LINGER)
                if out:
                    continue
                self._out_awake = False
                if not out:
                    break
                # Appended just before the flag went down: its publisher did not wake us.
                self._out_awake = True

    async def _send_queued(self) -> None:
        if self._fast is not None:
            await self._send_queued_fast(*self._fast)
            return
        from nats.errors import OutboundBufferLimitError

        out = self._outbound
        publish = self._nc.publish
        origin = self.origin
        sent = 0
        while out:
            subject, seq, encoding, payload, attempt = out.popleft()
            headers = {SEQ: str(seq), ENCODING: encoding, ORIGIN: origin}
            if attempt:
                headers[ATTEMPT] = str(attempt)
            try:
                await publish(subject, payload, headers=headers)
                sent += 1
            except OutboundBufferLimitError:
                # Disconnected and nats-py's reconnect buffer is full.
                self.refused += 1
                self._warn("full", "NATS at %s is unreachable and its send buffer is full")
            except Exception as exc:
                self.refused += 1
                self._warn("publish", "NATS at %s refused a message: %s", exc)
        self.published += sent

    async def _send_queued_fast(self, send_command: Any, flush_pending: Any) -> None:
        # nats-py's publish() validates and encodes every header again on every
        # call, which costs several times the rest of a publish. Our header
        # block is the same for every message but for its seq, so it is built
        # here, as the NATS protocol's HPUB command, and queued with the
        # client's own command buffer; the checks publish() makes are repeated.
        nc = self._nc
        out = self._outbound
        prefixes = self._prefixes
        sent = 0
        while out:
            subject, seq, encoding, payload, attempt = out.popleft()
            prefix = prefixes.get(encoding)
            if prefix is None:
                prefix = prefixes[encoding] = (
                    f"NATS/1.0\r\n{ENCODING}: {encoding}\r\n{ORIGIN}: {self.origin}\r\n{SEQ}: "
                ).encode()
            if attempt:
                header = prefix + b"%d\r\n%s: %d\r\n\r\n" % (seq, _ATTEMPT, attempt)
            else:
                header = prefix + b"%d\r\n\r\n" % seq
            size = len(header) + len(payload)
            command = b"HPUB %s %d %d\r\n%s%s\r\n" % (
                subject.encode(),
                len(header),
                size,
                header,
                payload,
            )
            if nc.is_closed or size > nc.max_payload:
                self.refused += 1
                self._warn("publish", "NATS at %s refused a message (closed, or too big)")
            elif not nc.is_connected and nc.pending_data_size + len(command) > _PENDING_SIZE:
                self.refused += 1
                self._warn("full", "NATS at %s is unreachable and its send buffer is full")
            else:
                await send_command(command)
                sent += 1
        if sent:
            self.published += sent
            await flush_pending()

    async def _on_stream(self, msg: Any) -> None:
        self.received += 1
        inbound = self.inbound
        if len(inbound) >= self.max_inbound:
            self.inbound_dropped += 1
            return
        tokens = msg.subject.split(".")
        if len(tokens) != 3 or tokens[0] != "stream":
            return  # a wide pattern ("stream.>" is not, ">" is) also matches other subjects
        _, run_id, step_id = tokens
        headers = msg.headers
        try:
            seq = int(headers[SEQ])
            data = decode_payload(msg.data, headers.get(ENCODING))
        except (TypeError, KeyError, ValueError) as exc:
            self.undecodable += 1
            self._warn("decode", "NATS at %s: skipped a message actorflow cannot read: %r", exc)
            return
        inbound.append((run_id, step_id, seq, headers.get(ORIGIN, ""), data))
        self._kick()

    async def _on_run_ended(self, msg: Any) -> None:
        try:
            run_id = msg.subject.rsplit(".", 1)[1]
            headers = msg.headers or {}
            body = decode_payload(msg.data, headers.get(ENCODING))
            seqs = body.get("seqs", {}) if isinstance(body, dict) else {}
        except (IndexError, ValueError) as exc:
            self._warn("decode", "NATS at %s: skipped a run end actorflow cannot read: %r", exc)
            return
        self.inbound.append((run_id, None, 0, headers.get(ORIGIN, ""), seqs))
        self._kick()

    def _kick(self) -> None:
        if not self.inbound_pending:
            self.inbound_pending = True
            self._notify(self.on_inbound)

    async def _on_error(self, exc: Exception) -> None:
        from nats.errors import SlowConsumerError

        if isinstance(exc, SlowConsumerError):
            self.inbound_dropped += 1
            self._warn("slow", "NATS at %s: messages dropped, the client fell behind: %s", exc)
        else:
            self._warn(type(exc).__name__, "NATS at %s: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self.connected:
            self.connected = False
            logger.warning("disconnected from NATS at %s; reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        self.connected = True
        self.reconnects += 1
        self._warned.clear()
        logger.warning("reconnected to NATS at %s", self.url)
