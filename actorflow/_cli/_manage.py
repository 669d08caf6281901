"""The commands that change runs: ``cancel`` and ``send``.

They go through a :class:`~actorflow.Runtime` of their own. On a journal that
another process writes, it asks that process, which executes the run, to
apply them (and waits until it did); on a journal no one writes, it writes
them itself. A runtime of the command line's resumes no run, since it
registers no workflow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, TextIO

from .._journals._sqlite import SQLiteJournal
from .._runtime import Runtime
from ._reading import JournalReader, readonly_journal, resolve_run
from ._terminal import Style, escape

__all__ = ("cancel", "parse_value", "send")


def parse_value(text: str) -> Any:
    """A message given on the command line: JSON if it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@contextlib.asynccontextmanager
async def _writing(db: str, what: str) -> AsyncIterator[tuple[Runtime, JournalReader]]:
    await readonly_journal(db, "or run `actorflow demo` to create one")
    async with Runtime(SQLiteJournal(db)) as rt:
        journal = rt.journal  # the file itself, or a reader of it if another process writes
        assert isinstance(journal, SQLiteJournal)
        yield rt, JournalReader(journal)


async def cancel(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with _writing(args.db, f"cancel run {args.run!r}") as (rt, reader):
        info = await resolve_run(reader, args.run)
        if info.status.is_terminal:
            out.write(f"run {escape(info.run_id)} had already ended {info.status.value}\n")
            return
        await rt.cancel(info.run_id)
        status = (await rt.get_run(info.run_id)).status
    out.write(f"run {escape(info.run_id)} {style.status(status.value)}\n")


async def send(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    value = parse_value(args.value)
    async with _writing(args.db, f"send to run {args.run!r}") as (rt, reader):
        info = await resolve_run(reader, args.run)
        await rt.send(info.run_id, value, topic=args.topic)
    shown = json.dumps(value, ensure_ascii=False)
    out.write(f"sent {escape(shown)} to run {escape(info.run_id)} (topic {args.topic})\n")
