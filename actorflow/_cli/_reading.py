"""Reading a journal for the command line: read-only, without the writer lock.

A read-only :class:`~actorflow.SQLiteJournal` never takes the lock and never
creates a file, so these helpers can watch a journal that a runtime in another
process is writing.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio
import attrs
import msgspec

from .._exceptions import ActorflowError, JournalError, RunNotFound
from .._follow import follow
from .._journals._sqlite import SQLiteJournal
from ..abc import RunHistory, RunInfo, RunStatus, StreamEntry, StreamInfo, StreamPage

__all__ = ("JournalReader", "reading", "readonly_journal", "resolve_run", "stream_entries")

_P = ParamSpec("_P")
_T = TypeVar("_T")

# What a read of a damaged file, or of one written by a newer actorflow, can raise
# from below the journal's own translation: a row that does not decode, a status
# this version does not know.
_DAMAGE = (sqlite3.Error, msgspec.MsgspecError, ValueError, KeyError, TypeError)


async def readonly_journal(db: str, hint: str) -> SQLiteJournal:
    """A read-only journal over ``db`` (not opened yet); ``hint`` says how to get one."""
    if not await anyio.Path(db).exists():
        raise JournalError(f"no journal at {db!r} (no such file); pass --db PATH, {hint}")
    return SQLiteJournal(db, readonly=True)


@attrs.define
class JournalReader:
    """The reads the command line makes of a journal, a damaged file's errors as JournalError.

    The journal translates the errors it expects; this catches the rest at the
    command line's boundary, so that a command on a damaged or foreign file
    prints one line instead of a traceback.
    """

    journal: SQLiteJournal

    @property
    def committed(self) -> int:
        """The journal's committed ticket."""
        return self.journal.committed

    async def _read(
        self, read: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        try:
            return await read(*args, **kwargs)
        except ActorflowError:
            raise
        except _DAMAGE as exc:
            raise JournalError(
                f"cannot read {self.journal.path!r} ({type(exc).__name__}: {exc}); the file "
                "is damaged or from a newer actorflow: check it, or restore a copy"
            ) from None

    async def get_run(self, run_id: str) -> RunInfo | None:
        """See :meth:`actorflow.abc.Journal.get_run`."""
        return await self._read(self.journal.get_run, run_id)

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """See :meth:`actorflow.abc.Journal.list_runs`."""
        return await self._read(self.journal.list_runs, status)

    async def page_runs(
        self, status: RunStatus | None, workflow: str | None, limit: int
    ) -> list[RunInfo]:
        """The newest ``limit`` runs (see :meth:`actorflow.abc.Journal.page_runs`)."""
        return await self._read(
            functools.partial(self.journal.page_runs, status, workflow=workflow, limit=limit)
        )

    async def load_history(self, run_id: str) -> RunHistory | None:
        """See :meth:`actorflow.abc.Journal.load_history`."""
        return await self._read(self.journal.load_history, run_id)

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """See :meth:`actorflow.abc.Journal.list_streams`."""
        return await self._read(self.journal.list_streams, run_id)

    async def read_stream(self, run_id: str, key: str, from_offset: int = 0) -> StreamPage:
        """See :meth:`actorflow.abc.Journal.read_stream`."""
        return await self._read(self.journal.read_stream, run_id, key, from_offset)

    async def wait_for_commit(self, after: int) -> int:
        """See :meth:`actorflow.abc.Journal.wait_for_commit`."""
        return await self._read(self.journal.wait_for_commit, after)


@contextlib.asynccontextmanager
async def reading(db: str) -> AsyncIterator[JournalReader]:
    """Open ``db`` read-only: no lock, no file created; a missing file is an error."""
    journal = await readonly_journal(db, "or run `actorflow demo` to create one")
    await JournalReader(journal)._read(journal.open)
    try:
        yield JournalReader(journal)
    finally:
        await journal.close()


async def resolve_run(journal: JournalReader, text: str) -> RunInfo:
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
    journal: JournalReader,
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

    async def look() -> tuple[str | None, list[StreamEntry]] | None:
        """The next page of new entries; (None, []) once there will be none; else None."""
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
            page = await journal.read_stream(run_id, k, offset)
            offsets[k] = offset + len(page.entries)
            if page.closed:
                finished.add(k)
            if page.entries:
                return k, page.entries
        if not tail or ended or (key is not None and key in finished):
            return None, []
        return None

    while True:
        k, entries = await follow(journal, look)
        if k is None:
            return
        yield k, entries
