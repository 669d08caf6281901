"""The in-memory journal: everything is committed as soon as it is appended."""

from __future__ import annotations

import attrs

from .._codec import decode_value
from .._exceptions import JournalError
from ..abc import (
    CommitWatch,
    RunHistory,
    RunInfo,
    RunStatus,
    StreamEntry,
    StreamInfo,
    StreamPage,
)
from ..records import (
    Record,
    RunEnded,
    RunResumed,
    RunStarted,
    StreamEnded,
    StreamWrite,
)

__all__ = ("MemoryJournal",)


@attrs.define(eq=False)
class MemoryJournal:
    """A journal kept in memory, for tests and for runs that need not survive the process.

    It implements :class:`~actorflow.Journal`; an append is committed at once.
    ``Runtime()`` with no journal uses one.
    """

    _watch: CommitWatch = attrs.field(factory=CommitWatch, init=False)
    _runs: dict[str, RunInfo] = attrs.field(factory=dict, init=False)
    _records: dict[str, list[Record]] = attrs.field(factory=dict, init=False)
    _streams: dict[tuple[str, str], list[StreamWrite]] = attrs.field(factory=dict, init=False)
    _closed: set[tuple[str, str]] = attrs.field(factory=set, init=False)
    _ticket: int = attrs.field(default=0, init=False)
    _open: bool = attrs.field(default=False, init=False)

    @property
    def readonly(self) -> bool:
        """Always False: a MemoryJournal is written by the runtime that holds it."""
        return False

    @property
    def requests(self) -> None:
        """None: only the runtime that holds a MemoryJournal can reach it."""
        return None

    def reader(self) -> None:
        """None: a MemoryJournal's data is private to it."""
        return None

    @property
    def committed(self) -> int:
        """The ticket of the last committed record."""
        return self._watch.committed

    async def open(self) -> None:
        """Open the journal (a MemoryJournal may be opened again after a close)."""
        self._open = True
        self._watch.reopen()

    async def close(self) -> None:
        """Close the journal; its contents stay readable and it may be opened again.

        Whoever waits for a commit meanwhile gets a JournalError: none will come.
        """
        self._open = False
        self._watch.close()

    def append(self, record: Record) -> int:
        """Apply ``record`` and return its ticket."""
        if not self._open:
            raise JournalError("the MemoryJournal is not open; use it through `async with Runtime`")
        self._apply(record)
        self._ticket += 1
        self._watch.advance(self._ticket)
        return self._ticket

    def _apply(self, record: Record) -> None:
        run_id = record.run_id
        if isinstance(record, RunStarted):
            self._runs[run_id] = RunInfo(
                run_id=run_id,
                workflow=record.workflow,
                status=RunStatus.PENDING,
                started_at=record.at,
                input=record.input,
            )
            self._records[run_id] = []
        elif isinstance(record, RunResumed):
            info = self._runs[run_id]
            if not info.status.is_terminal:
                self._runs[run_id] = attrs.evolve(info, status=RunStatus.RUNNING)
        elif isinstance(record, RunEnded):
            self._runs[run_id] = attrs.evolve(
                self._runs[run_id],
                status=RunStatus(record.status),
                finished_at=record.at,
                output=record.output,
                error=record.error,
            )
        elif isinstance(record, StreamWrite):
            self._streams.setdefault((run_id, record.key), []).append(record)
            if record.position is None:
                return
        elif isinstance(record, StreamEnded):
            self._closed.add((run_id, record.key))
        self._records.setdefault(run_id, []).append(record)

    async def wait_committed(self, ticket: int) -> None:
        """Return at once: everything appended is committed."""
        await self._watch.wait_for(ticket)

    async def wait_for_commit(self, after: int) -> int:
        """Wait until a record past ``after`` is appended."""
        return await self._watch.wait_after(after)

    async def get_run(self, run_id: str) -> RunInfo | None:
        """The run, or ``None``."""
        return self._runs.get(run_id)

    async def list_runs(self, status: RunStatus | None = None) -> list[RunInfo]:
        """Runs oldest first (in start order), optionally filtered by status."""
        return [r for r in self._runs.values() if status is None or r.status == status]

    async def page_runs(
        self,
        status: RunStatus | None = None,
        *,
        workflow: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Runs newest first, at most ``limit``, started before run ``before``."""
        runs = list(self._runs.values())
        if before is not None:
            ids = list(self._runs)
            if before not in self._runs:
                return []
            runs = runs[: ids.index(before)]
        page: list[RunInfo] = []
        for info in reversed(runs):
            if len(page) >= limit:
                break
            if (status is None or info.status == status) and (
                workflow is None or info.workflow == workflow
            ):
                page.append(info)
        return page

    async def load_history(self, run_id: str) -> RunHistory | None:
        """The run's records and stream lengths."""
        info = self._runs.get(run_id)
        if info is None:
            return None
        lengths = {key: len(w) for (rid, key), w in self._streams.items() if rid == run_id}
        return RunHistory(info=info, records=list(self._records[run_id]), stream_lengths=lengths)

    async def read_stream(
        self, run_id: str, key: str, from_offset: int = 0, limit: int = 1000
    ) -> StreamPage:
        """Entries of one stream from ``from_offset``."""
        writes = self._streams.get((run_id, key), [])
        chunk = writes[from_offset : from_offset + limit]
        entries = [
            StreamEntry(w.offset, decode_value(w.value), w.step_id, w.attempt) for w in chunk
        ]
        info = self._runs.get(run_id)
        ended = (run_id, key) in self._closed or (info is not None and info.status.is_terminal)
        return StreamPage(entries, ended and from_offset + len(entries) >= len(writes))

    def read_stream_nowait(
        self, run_id: str, key: str, from_offset: int, limit: int
    ) -> StreamPage | None:
        """Always None: :meth:`read_stream` answers from memory without waiting anyway."""
        return None

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        """The run's streams by key."""
        keys = sorted(
            {k for (rid, k) in self._streams if rid == run_id}
            | {k for (rid, k) in self._closed if rid == run_id}
        )
        return [
            StreamInfo(k, len(self._streams.get((run_id, k), [])), (run_id, k) in self._closed)
            for k in keys
        ]
