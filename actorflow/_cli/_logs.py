"""``actorflow logs``: a run's durable stream entries, printed or followed."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TextIO

import msgspec

from .._exceptions import ActorflowError
from .._history import fold
from ..abc import StreamEntry
from ._live import live_logs
from ._reading import JournalReader, reading, resolve_run, stream_entries
from ._terminal import Style, json_value, render_value

__all__ = ("logs",)

_json_line = msgspec.json.Encoder()


# On a terminal an entry's place is ``key:offset``, padded to at least this many
# digits of offset: a live tail's columns stay where they are as offsets grow.
_OFFSET_DIGITS = 6


async def logs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    if args.live:
        await live_logs(args, out, style)
        return
    async with reading(args.db) as journal:
        info = await resolve_run(journal, args.run)
        run_id = info.run_id
        keys = [s.key for s in await journal.list_streams(run_id)]
        ended = not args.tail or info.status.is_terminal  # no stream will appear
        if args.key is not None and ended and args.key not in keys:
            have = ", ".join(repr(k) for k in keys) if keys else "none"
            raise ActorflowError(
                f"run {run_id!r} has no stream {args.key!r} (its streams: {have}); "
                "leave out --key to print them all"
            )
        line = _log_line(args, style, run_id, keys if args.key is None else [args.key])
        entries = stream_entries(
            journal, run_id, key=args.key, from_offset=args.from_offset, tail=args.tail
        )
        shown = False
        writers: set[str] = set()  # the step ids of the entries read, --step or not
        async with contextlib.aclosing(entries):
            async for key, page in entries:
                if args.step is not None:
                    writers.update(e.step_id for e in page)
                    page = [e for e in page if e.step_id == args.step]
                if page:
                    shown = True
                    out.write("".join(line(key, e) for e in page))
                    if args.tail:
                        out.flush()
        if args.step is not None and not shown:
            # Checked once the entries are read: a tail of a running run waits for
            # the step, which may not have started yet.
            await _check_step(journal, run_id, args.step, writers)


async def _check_step(journal: JournalReader, run_id: str, step_id: str, writers: set[str]) -> None:
    """Raise if ``step_id`` is none of the run's steps (it may be one that wrote nothing)."""
    history = await journal.load_history(run_id)
    steps = [s.step_id for s in sorted(fold(history).steps.values(), key=lambda s: s.position)]
    steps += sorted(writers.difference(steps))
    if step_id in steps or step_id == "main":  # "main": the workflow body
        return
    have = ", ".join(repr(s) for s in steps) if steps else "none"
    raise ActorflowError(
        f"run {run_id!r} has no step {step_id!r} (its steps: {have}); "
        "leave out --step to print every step's entries"
    )


def _log_line(
    args: argparse.Namespace, style: Style, run_id: str, keys: list[str]
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
    # Wide enough for the streams known now; they grow only for a stream or step
    # that appears later in a tail, or for an offset past _OFFSET_DIGITS digits.
    widths = [max((len(k) for k in keys), default=0) + 1 + _OFFSET_DIGITS, 0]

    def as_text(key: str, e: StreamEntry) -> str:
        where = f"{key}:{e.offset}"
        who = e.step_id if e.attempt == 1 else f"{e.step_id}#{e.attempt}"
        place = len(key) + 1 + max(len(str(e.offset)), _OFFSET_DIGITS)
        widths[0], widths[1] = max(widths[0], place), max(widths[1], len(who))
        return (
            f"{style.paint(where.ljust(widths[0]), 'dim')}  "
            f"{style.paint(who.ljust(widths[1]), 'cyan' if e.attempt == 1 else 'yellow')}  "
            f"{render_value(e.value)}\n"
        )

    return as_text
