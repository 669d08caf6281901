"""Committed tails of the streams being followed, kept in memory by the loop's thread."""

from __future__ import annotations

from typing import cast

import attrs

from ..._codec import decode_value
from ...abc import StreamEntry, StreamPage
from ...records import RunFinished, RunStarted, StreamClose, StreamWrite
from ._batch import Batch

__all__ = ("Tails",)

# How many streams have a tail, and how many entries each keeps.
_MAX_TAILS = 1024
_TAIL_ENTRIES = 1024


@attrs.define(eq=False)
class Tail:
    """The entries of one stream committed since a reader first asked for it."""

    # Invariant: loop thread only, like the Tails that holds it.
    run_id: str
    key: str
    start: int = -1  # the offset of entries[0]; -1 while there is none
    entries: list[StreamWrite] = attrs.field(factory=list)
    closed: bool = False


@attrs.define(eq=False)
class Tails:
    """Committed tails of the streams being read, kept by the loop's thread.

    A reader following a stream of a run in progress asks for the next page
    after every commit; through SQLite that is a worker-thread hop (~150 us
    on a 2-core VM) for a few entries the journal just had in hand. The first
    read of a stream starts its tail (and goes to SQLite); every commit then
    adds that stream's entries, its close, or its run's end, in the loop's
    thread, before waiters wake. A read from an offset the tail covers is
    answered from it, values decoded afresh for each read, as SQLite would.
    Tails are bounded: ``_TAIL_ENTRIES`` entries each (older ones go to
    SQLite), ``_MAX_TAILS`` streams (the oldest tail is dropped).
    """

    # Invariant: loop thread only: reads come from the loop (read_stream_nowait,
    # and read_stream after its query returns) and commits are reported to it
    # through call_soon (or made inline in it).
    streams: dict[tuple[str, str], Tail] = attrs.field(factory=dict)
    by_run: dict[str, list[Tail]] = attrs.field(factory=dict)

    def get(self, run_id: str, key: str) -> Tail | None:
        """The tail of one stream, if it has one."""
        return self.streams.get((run_id, key))

    def read(self, run_id: str, key: str, offset: int, limit: int) -> StreamPage | None:
        """The page from ``offset``, or None if the tail does not cover it."""
        tail = self.streams.get((run_id, key))
        if tail is None:
            self._start(run_id, key)
            return None
        start, n, closed = tail.start, len(tail.entries), tail.closed
        i = offset - start
        if start < 0 or i < 0 or i > n or limit < 1:
            return None
        chunk = tail.entries[i : i + limit]
        entries = [
            StreamEntry(w.offset, decode_value(w.value), w.step_id, w.attempt) for w in chunk
        ]
        return StreamPage(entries, closed and i + len(chunk) == n)

    def _start(self, run_id: str, key: str) -> None:
        if len(self.streams) >= _MAX_TAILS:
            (old_run, old_key), old = next(iter(self.streams.items()))
            del self.streams[old_run, old_key]
            self.by_run[old_run].remove(old)
            if not self.by_run[old_run]:
                del self.by_run[old_run]
        tail = self.streams[run_id, key] = Tail(run_id, key)
        self.by_run.setdefault(run_id, []).append(tail)

    def committed(self, batch: Batch) -> None:
        """Add what ``batch`` (just committed) did to the streams being read."""
        if not self.streams:
            return
        streams, by_run = self.streams, self.by_run
        for _, record in batch:
            kind = type(record)
            if kind is StreamWrite:
                record = cast(StreamWrite, record)
                tail = streams.get((record.run_id, record.key))
                if tail is not None:
                    if tail.start < 0:
                        tail.start = record.offset
                    elif len(tail.entries) >= _TAIL_ENTRIES:
                        del tail.entries[: _TAIL_ENTRIES // 2]
                        tail.start = tail.entries[0].offset
                    tail.entries.append(record)
            elif record.run_id not in by_run:
                continue
            elif kind is StreamClose:
                record = cast(StreamClose, record)
                tail = streams.get((record.run_id, record.key))
                if tail is not None:
                    tail.closed = True
            elif kind is RunFinished:
                for tail in by_run[record.run_id]:
                    tail.closed = True
            elif kind is RunStarted:  # a run started again from scratch: forget it
                for tail in by_run.pop(record.run_id):
                    del streams[tail.run_id, tail.key]
