"""Reading durable streams: replay from the journal, then follow its commits.

A reader reads a page of committed entries, yields them, and when it has
caught up waits for the journal's next commit (woken by the writer's batch, or
with a ``readonly`` SQLiteJournal by watching the file), then reads again:
the loop of :func:`actorflow._follow.follow`, so no entry is missed at the
replay-to-live boundary, and none is read twice because the offset only moves
by what was yielded.

Live readers of one stream wake on the same commit and would each run the same
query (a thread hop for SQLite: 20 readers, 20 hops per commit). They share it
instead: the first reads, the others wait for its page. A page is shared only
if all its values are immutable (str, int, float, bool, bytes, None), so no
reader can see another's changes to a value it was given; otherwise each
reader reads its own.

A journal that keeps committed tails in memory (``read_stream_nowait``, as
SQLiteJournal does) answers a lone reader of a stream from there, with no thread
hop (benchmarks/bench_streams.py measures it). Many readers of one stream keep
sharing one read in a worker thread: served from memory, each would wake and
run at once after every commit, which slows a paced writer in proportion to
the number of readers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anyio
import attrs
import msgspec

from ._exceptions import RunNotFound, ValidationError
from ._follow import follow
from ._restarts import StreamRestart, with_restarts
from ._validate import validate_key
from .abc import Journal, StreamEntry, StreamPage

__all__ = ("StreamReaders",)

_IMMUTABLE = frozenset({str, int, float, bool, bytes, type(None)})


@attrs.define(eq=False)
class _Read:
    """A page read in flight, that readers at the same position may share."""

    done: anyio.Event = attrs.field(factory=anyio.Event)
    page: StreamPage | None = None


@attrs.define(eq=False)
class StreamReaders:
    """The durable-stream readers of one runtime, over its journal."""

    journal: Journal
    _reads: dict[tuple[str, str, int, int], _Read] = attrs.field(factory=dict, init=False)
    _followers: dict[tuple[str, str], int] = attrs.field(factory=dict, init=False)

    async def entries(
        self, run_id: str, key: str, from_offset: int
    ) -> AsyncGenerator[StreamEntry, None]:
        """Yield the committed entries of ``(run_id, key)`` from ``from_offset``: replay, then live.

        Stops after the last entry once the stream is closed (or its run ended).

        Raises:
            RunNotFound: no such run.
            ValidationError: bad offset.
        """
        if type(from_offset) is not int or from_offset < 0:
            raise ValidationError(f"from_offset must be an int >= 0, not {from_offset!r}")
        if await self.journal.get_run(run_id) is None:
            raise RunNotFound(run_id)
        offset = from_offset
        journal = self.journal
        stream = (run_id, key)
        self._followers[stream] = self._followers.get(stream, 0) + 1

        async def look() -> StreamPage | None:
            seen = journal.committed
            page = None
            if self._followers[stream] == 1:
                page = journal.read_stream_nowait(run_id, key, offset, 1000)
            if page is None:
                page = await self._read(run_id, key, offset, seen)
            return page if page.entries or page.closed else None

        try:
            while True:
                page = await follow(journal, look)
                for entry in page.entries:
                    yield entry
                offset += len(page.entries)
                if page.closed:
                    return
        finally:
            if self._followers[stream] == 1:
                del self._followers[stream]
            else:
                self._followers[stream] -= 1

    async def read(
        self, run_id: str, key: str, from_offset: int, *, restarts: bool
    ) -> AsyncGenerator[StreamEntry | StreamRestart, None]:
        """What ``Runtime.read_stream_entries`` yields (see :func:`~._restarts.with_restarts`)."""
        validate_key(key)
        entries: AsyncGenerator[StreamEntry | StreamRestart, None]
        if restarts:
            entries = with_restarts(
                self.entries(run_id, key, from_offset),
                from_offset,
                lambda: self.entries(run_id, key, 0),
            )
        else:
            entries = self.entries(run_id, key, from_offset)
        # aclosing: a reader that stops early closes the inner generator too (trio
        # warns about async generators left to the garbage collector).
        async with aclosing(entries) as items:
            async for item in items:
                yield item

    async def values(
        self, run_id: str, key: str, from_offset: int, *, type: Any, restarts: bool
    ) -> AsyncGenerator[object, None]:
        """What ``Runtime.read_stream`` yields: values (converted to ``type`` if given)."""
        async with aclosing(self.read(run_id, key, from_offset, restarts=restarts)) as items:
            async for item in items:
                if isinstance(item, StreamRestart):
                    yield item
                elif type is None:
                    yield item.value
                else:
                    try:
                        yield msgspec.convert(item.value, type)
                    except msgspec.ValidationError as exc:
                        raise ValidationError(
                            f"entry {item.offset} of stream {key!r} of run {run_id!r} is not "
                            f"a {type!r} ({exc}); read it with another type=, or none"
                        ) from None

    async def _read(self, run_id: str, key: str, offset: int, seen: int) -> StreamPage:
        # Sharing is sound: a commit the shared page misses was made after the
        # query's snapshot, so it moves ``committed`` past ``seen`` only after
        # that; a reader that still found ``committed == seen`` when it joined
        # therefore wakes for it.
        token = (run_id, key, offset, seen)
        shared = self._reads.get(token)
        if shared is not None:
            await shared.done.wait()
            if shared.page is not None:
                return shared.page
            return await self.journal.read_stream(run_id, key, offset)
        read = self._reads[token] = _Read()
        try:
            page = await self.journal.read_stream(run_id, key, offset)
            if all(type(entry.value) in _IMMUTABLE for entry in page.entries):
                read.page = page
            return page
        finally:
            del self._reads[token]
            read.done.set()
