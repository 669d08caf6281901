"""Committed tails of the streams being followed, kept in memory by the loop's thread."""

from __future__ import annotations

from typing import cast

import attrs

from ..._codec import decode_value
from ...abc import StreamEntry, StreamPage
from ...records import RunEnded, RunStarted, StreamEnded, StreamWrite
from ._batch import Batch

__all__ = ("Tail", "Tails")

# How many streams have a tail; how many entries and bytes (of values) each
# keeps; and how many bytes all tails keep together.
_MAX_TAILS = 1024
_TAIL_ENTRIES = 1024
_TAIL_BYTES = 8 << 20
_TAILS_BYTES = 64 << 20


@attrs.define(eq=False)
class Tail:
    """The entries of one stream committed since a reader first asked for it."""

    # Invariant: loop thread only, like the Tails that holds it.
    run_id: str
    key: str
    start: int = -1  # the offset of entries[0] (or of the next entry); -1 before any
    entries: list[StreamWrite] = attrs.field(factory=list)
    nbytes: int = 0  # the bytes of the values in entries
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

    Tails are bounded in entries and bytes: each keeps at most
    ``_TAIL_ENTRIES`` entries and ``_TAIL_BYTES`` bytes of values (the older
    half goes, to SQLite); together they keep at most ``_TAILS_BYTES`` (the
    tails of closed streams go first, then the oldest); ``_MAX_TAILS`` streams
    have one (the oldest goes). A tail is released as soon as a reader has
    read it to its end once the stream is closed, so the tails of finished
    runs do not outlive their readers. A reader whose tail went reads SQLite,
    which has every entry: memory only ever saves a hop.
    """

    # Invariant: loop thread only: reads come from the loop (read_stream_nowait,
    # and read_stream after its query returns) and commits are reported to it
    # through call_soon (or made inline in it).
    streams: dict[tuple[str, str], Tail] = attrs.field(factory=dict)
    by_run: dict[str, list[Tail]] = attrs.field(factory=dict)
    nbytes: int = 0  # the bytes of the values in every tail

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
        end = closed and i + len(chunk) == n
        if end:
            self._drop(tail)  # read to its end: nothing more will come
        return StreamPage(entries, end)

    def _start(self, run_id: str, key: str) -> None:
        if len(self.streams) >= _MAX_TAILS:
            self._drop(next(iter(self.streams.values())))
        tail = self.streams[run_id, key] = Tail(run_id, key)
        self.by_run.setdefault(run_id, []).append(tail)

    def _drop(self, tail: Tail) -> None:
        if self.streams.get((tail.run_id, tail.key)) is not tail:
            return
        del self.streams[tail.run_id, tail.key]
        tails = self.by_run[tail.run_id]
        tails.remove(tail)
        if not tails:
            del self.by_run[tail.run_id]
        self.nbytes -= tail.nbytes
        tail.entries, tail.nbytes = [], 0

    def _trim(self, tail: Tail) -> None:
        """Drop the older entries of ``tail`` until it holds half its bounds."""
        entries = tail.entries
        next_offset = entries[-1].offset + 1
        keep_bytes, keep_entries = _TAIL_BYTES // 2, _TAIL_ENTRIES // 2
        drop = freed = 0
        while drop < len(entries) and (
            tail.nbytes - freed > keep_bytes or len(entries) - drop > keep_entries
        ):
            freed += len(entries[drop].value)
            drop += 1
        del entries[:drop]
        tail.nbytes -= freed
        self.nbytes -= freed
        tail.start = entries[0].offset if entries else next_offset

    def _evict(self) -> None:
        """Drop whole tails, those of closed streams first, until half the budget is left."""
        for tail in sorted(self.streams.values(), key=lambda t: not t.closed):
            if self.nbytes <= _TAILS_BYTES // 2:
                return
            if tail.nbytes:
                self._drop(tail)

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
                    tail.entries.append(record)
                    size = len(record.value)
                    tail.nbytes += size
                    self.nbytes += size
                    if tail.nbytes > _TAIL_BYTES or len(tail.entries) > _TAIL_ENTRIES:
                        self._trim(tail)
            elif record.run_id not in by_run:
                continue
            elif kind is StreamEnded:
                record = cast(StreamEnded, record)
                tail = streams.get((record.run_id, record.key))
                if tail is not None:
                    tail.closed = True
            elif kind is RunEnded:
                for tail in by_run[record.run_id]:
                    tail.closed = True
            elif kind is RunStarted:  # a run started again from scratch: forget it
                for tail in list(by_run[record.run_id]):
                    self._drop(tail)
        if self.nbytes > _TAILS_BYTES:
            self._evict()
