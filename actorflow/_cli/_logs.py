"""``actorflow logs``: a run's durable stream entries, printed or followed."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TextIO

import msgspec

from .._exceptions import ActorflowError
from ..abc import StreamEntry
from ._reading import reading, resolve_run, stream_entries
from ._terminal import Style, json_value, render_value

__all__ = ("logs",)

_json_line = msgspec.json.Encoder()


async def logs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with reading(args.db) as journal:
        info = await resolve_run(journal, args.run)
        run_id = info.run_id
        if args.key is not None and (not args.tail or info.status.is_terminal):
            keys = [s.key for s in await journal.list_streams(run_id)]
            if args.key not in keys:
                have = ", ".join(repr(k) for k in keys) if keys else "none"
                raise ActorflowError(
                    f"run {run_id!r} has no stream {args.key!r} (its streams: {have}); "
                    "leave out --key to print them all"
                )
        line = _log_line(args, style, run_id)
        entries = stream_entries(
            journal, run_id, key=args.key, from_offset=args.from_offset, tail=args.tail
        )
        async with contextlib.aclosing(entries):
            async for key, page in entries:
                text = "".join(line(key, e) for e in page if args.step in (None, e.step_id))
                if text:
                    out.write(text)
                    if args.tail:
                        out.flush()


def _log_line(
    args: argparse.Namespace, style: Style, run_id: str
) -> Callable[[str, StreamEntry], str]:
    if args.json:

        def as_json(key: str, e: StreamEntry) -> str:
            data = {
                "run_id": run_id,
                "key": key,
                "offset": e.offset,
                "step_id": e.step_id,
                "attempt": e.attempt,
                "value": json_value(e.value),
            }
            return _json_line.encode(data).decode() + "\n"

        return as_json
    if not style.tty:

        def as_fields(key: str, e: StreamEntry) -> str:
            return f"{key}\t{e.offset}\t{e.step_id}\t{e.attempt}\t{render_value(e.value)}\n"

        return as_fields
    widths = [0, 0]  # grow as entries come, so a live tail stays aligned

    def as_text(key: str, e: StreamEntry) -> str:
        where = f"{key}:{e.offset}"
        who = e.step_id if e.attempt == 1 else f"{e.step_id}#{e.attempt}"
        widths[0], widths[1] = max(widths[0], len(where)), max(widths[1], len(who))
        return (
            f"{style.paint(where.ljust(widths[0]), 'dim')}  "
            f"{style.paint(who.ljust(widths[1]), 'cyan' if e.attempt == 1 else 'yellow')}  "
            f"{render_value(e.value)}\n"
        )

    return as_text
