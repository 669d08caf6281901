"""Where a retried step's output starts over in a durable stream: :class:`StreamRestart`.

A step attempt's committed stream writes are kept; a retried attempt appends
after them (with ``attempt + 1``), usually writing its output again from the
start. A reader that shows what it reads would show the first attempt's part
twice. With ``restarts=True``, a reader yields a :class:`StreamRestart` just
before the first entry of a step's new attempt, naming the entries it
supersedes, so the reader can drop (or mark) them; the web app sends the same
as a ``restart`` event, and :func:`latest_attempts` applies the rule to
entries already read.

The rule, in one place: an entry is superseded once an entry of the same step
with a higher attempt exists.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing

import attrs

from .abc import StreamEntry

__all__ = ("StreamRestart", "latest_attempts", "with_restarts")


@attrs.frozen
class StreamRestart:
    """A step's new attempt starts writing to a durable stream; its earlier attempt's entries are
    superseded.

    Attributes:
        step_id: the step that was retried.
        attempt: the new attempt.
        offset: the offset of the new attempt's first entry (it follows this value).
        from_offset: the offset of the first entry of the attempt it supersedes.
            The step's entries from there up to ``offset`` are superseded (when
            only this step writes the stream, all of them: drop them, or mark
            them as the interrupted attempt).
    """

    step_id: str
    attempt: int
    offset: int
    from_offset: int


@attrs.define
class _Attempts:
    """The latest attempt seen of each step, with the offset of its first entry."""

    latest: dict[str, tuple[int, int]] = attrs.field(factory=dict)

    def see(self, entry: StreamEntry) -> StreamRestart | None:
        seen = self.latest.get(entry.step_id)
        if seen is not None and entry.attempt <= seen[0]:
            return None
        self.latest[entry.step_id] = (entry.attempt, entry.offset)
        if seen is None:
            return None
        return StreamRestart(entry.step_id, entry.attempt, entry.offset, seen[1])


async def with_restarts(
    entries: AsyncGenerator[StreamEntry, None],
    from_offset: int,
    prefix: Callable[[], AsyncGenerator[StreamEntry, None]],
) -> AsyncGenerator[StreamEntry | StreamRestart, None]:
    """``entries`` (read from ``from_offset``), each new attempt of a step preceded by its restart.

    Args:
        entries: the stream's entries from ``from_offset``.
        from_offset: where ``entries`` start.
        prefix: the stream's entries from offset 0; read (up to ``from_offset``,
            once) only when a step is first seen at an attempt above 1, or
            restarts after being first seen here, to find where its earlier
            attempt began: so a reader resuming mid-stream (a reconnecting
            browser) learns of a restart after its resume point, exactly.
    """
    attempts = _Attempts()
    before: dict[str, tuple[int, int]] | None = None
    # Steps first seen in this read at attempt 1: that attempt may have begun
    # before from_offset, which matters only if the step restarts.
    unverified: set[str] = set()
    async with aclosing(entries):
        async for entry in entries:
            step_id = entry.step_id
            seen = attempts.latest.get(step_id)
            if from_offset > 0 and (
                (seen is None and entry.attempt > 1)
                or (seen is not None and step_id in unverified and entry.attempt > seen[0])
            ):
                if before is None:
                    before = await _scan(prefix(), from_offset)
                earlier = before.get(step_id)
                if earlier is not None and (seen is None or earlier[0] == seen[0]):
                    attempts.latest[step_id] = earlier
                unverified.discard(step_id)
            elif seen is None and from_offset > 0:
                unverified.add(step_id)
            restart = attempts.see(entry)
            if restart is not None:
                yield restart
            yield entry


async def _scan(entries: AsyncGenerator[StreamEntry, None], end: int) -> dict[str, tuple[int, int]]:
    attempts = _Attempts()
    async with aclosing(entries):
        async for entry in entries:
            if entry.offset >= end:
                break
            attempts.see(entry)
    return attempts.latest


def latest_attempts(entries: Iterable[StreamEntry | StreamRestart]) -> list[StreamEntry]:
    """The entries not superseded by a later attempt of their step, in offset order.

    Use it on entries already read (``[e async for e in
    handle.read_stream_entries(key)]``) to show a retried step's output once,
    as the web page does; :class:`StreamRestart` items among them are skipped.
    """
    kept = [e for e in entries if isinstance(e, StreamEntry)]
    latest: dict[str, int] = {}
    for e in kept:
        latest[e.step_id] = max(latest.get(e.step_id, 0), e.attempt)
    return [e for e in kept if e.attempt == latest[e.step_id]]
