"""``actorflow logs RUN --live``: a run's live messages, followed through NATS from any process."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

import msgspec

from .._exceptions import ActorflowError
from .._live import Message, NATSBroker
from .._runtime import Runtime
from ._reading import JournalReader, readonly_journal, resolve_run
from ._terminal import Style, json_value, render_value

__all__ = ("NATS_ENV", "live_logs")

NATS_ENV = "ACTORFLOW_NATS"
"""The environment variable ``--live`` takes the NATS server's URL from, without ``--nats``."""

_json_line = msgspec.json.Encoder()


async def live_logs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    """Print run ``args.run``'s live messages (``put_stream``) as they come, until it ends."""
    url = args.nats or os.environ.get(NATS_ENV)
    if not url:
        raise ActorflowError(
            "--live follows a run's live messages through NATS: pass --nats nats://HOST:4222 "
            f"(or set {NATS_ENV}) naming the server the run's runtime publishes to"
        )
    for flag, given in (("--key", args.key is not None), ("--from", args.from_offset)):
        if given:
            raise ActorflowError(
                f"{flag} reads durable streams; --live prints live messages: leave out one of them"
            )
    journal = await readonly_journal(args.db, "or run `actorflow demo` to create one")
    async with Runtime(journal, broker=NATSBroker(url, name="actorflow logs --live")) as rt:
        info = await resolve_run(JournalReader(journal), args.run)
        # It ends with the run: through NATS, or (if the run's runtime does not
        # publish there) when the journal says so.
        async with rt.subscribe_run(info.run_id, args.step) as sub:
            async for msg in sub:
                out.write(_line(args, style, msg))
                out.flush()


def _line(args: argparse.Namespace, style: Style, msg: Message) -> str:
    if args.json:
        record = {
            "run_id": msg.run_id,
            "step_id": msg.step_id,
            "seq": msg.seq,
            "dropped_before": msg.dropped_before,
            "data": json_value(msg.data),
        }
        return _json_line.encode(record).decode() + "\n"
    lost = ""
    if msg.dropped_before:
        lost = style.paint(f"({msg.dropped_before} dropped) ", "yellow")
    if not style.tty:
        return f"{msg.step_id}\t{msg.seq}\t{msg.dropped_before}\t{render_value(msg.data)}\n"
    where = style.paint(f"{msg.step_id}:{msg.seq}", "dim")
    return f"{where}  {lost}{render_value(msg.data)}\n"
