"""Reading a journal for the command line: read-only, without the writer lock.

A read-only :class:`~actorflow.SQLiteJournal` never takes the lock and never
creates a file, so these helpers can watch a journal that a runtime in another
process is writing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import anyio

from .._exceptions import ActorflowError, JournalError, RunNotFound
from .._journals._sqlite import SQLiteJournal
from ..abc import Journal, RunInfo, StreamEntry

__all__ = ("reading", "readonly_journal", "resolve_run", "stream_entries")


async def readonly_journal(db: str, hint: str) -> SQLiteJournal:
    """A read-only journal over ``db`` (not opened yet); ``hint`` says how to get one."""
    if not await anyio.Path(db).exists():
        raise JournalError(f"no journal at {db!r} (no such file); pass --db PATH, {hint}")
    return SQLiteJournal(db, readonly=True)


@contextlib.asynccontextmanager
async def reading(db: str) -> AsyncIterator[SQLiteJournal]:
    """Open ``db`` read-only: no lock, no file created; a missing file is an error."""
    journal = await readonly_journal(db, "or run `actorflow demo` to create one")
    await journal.open()
    try:
        yield journal
    finally:
        await journal.close()


async def resolve_run(journal: Journal, text: str) -> RunInfo:
    """The run with id ``text``, or the only run whose id starts with it."""
    info = await journal.get_run(text)
    if info is not None:
        return info
    matches = [run for run in await journal.list_runs() if run.run_id.startswith(text)]
    if not matches:
        raise RunNotFound(text)
    if len(matches) > 1:
        shown = ", ".join(run.run_id for run in matches[:3])
        more = ", ..." if len(matches) > 3 else ""
        raise ActorflowError(
            f"{text!r} matches {len(matches)} runs ({shown}{more}); give more of the run id"
        )
    return matches[0]


async def stream_entries(
    journal: Journal,
    run_id: str,
    *,
    key: str | None = None,
    from_offset: int = 0,
    tail: bool = False,
) -> AsyncGenerator[tuple[str, list[StreamEntry]], None]:
    """Yield ``(key, entries)`` pages of one run's durable streams.

    Each stream's entries come in offset order, exactly once. Without ``key``,
    every stream of the run is read, stream by stream (by key) in each pass;
    when tailing, a pass follows each commit, so entries of different streams
    interleave in about the order they were committed. Without ``tail``, what
    is committed now is read and the iterator ends; with ``tail``, it then
    waits for commits (``Journal.wait_for_commit``: a readonly SQLiteJournal
    sees those of another process) and ends once the stream is closed
    (``key``) or the run has ended (every stream).
    """
    offsets: dict[str, int] = {}
    finished: set[str] = set()
    while True:
        seen = journal.committed
        ended = False
        if key is None:
            # The status is read before the streams: if the run had ended by then,
            # the reads below see every entry it will ever have.
            info = await journal.get_run(run_id)
            ended = info is None or info.status.is_terminal
            keys = [stream.key for stream in await journal.list_streams(run_id)]
        else:
            keys = [key]
        for k in keys:
            if k in finished:
                continue
            offset = offsets.get(k, from_offset)
            while True:
                page = await journal.read_stream(run_id, k, offset)
                if page.entries:
                    offset += len(page.entries)
                    yield k, page.entries
                if page.closed:
                    finished.add(k)
                    break
                if not page.entries:
                    break
            offsets[k] = offset
        if not tail or ended or (key is not None and key in finished):
            return
        await journal.wait_for_commit(seen)
