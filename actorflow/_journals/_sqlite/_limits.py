"""The size of the values a journal takes: SQLite's limit, checked when a record is appended.

SQLite refuses a string or blob over ``SQLITE_LIMIT_LENGTH`` (1e9 bytes by
default). Found by the writer, that failure would fail the whole journal
after ``append`` had returned, and recovery would write the value again at
every reopen; checked at ``append``, it fails only the call that wrote it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ..._exceptions import EncodeError
from ...records import (
    ErrorInfo,
    EventSet,
    MessageSent,
    Record,
    RunEnded,
    RunStarted,
    StepAttemptFailed,
    StepCheckpoint,
    StepCompleted,
    StepGaveUp,
    StreamWrite,
)

__all__ = ("HEADROOM", "SIZES", "check_size", "value_limit")

HEADROOM = 1 << 20
"""Room left under SQLite's limit for the rest of a record stored with a value."""


def value_limit(conn: sqlite3.Connection, wanted: int | None) -> int:
    """The largest value (in bytes) the journal on ``conn`` takes: ``wanted`` at most."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) - HEADROOM
    return limit if wanted is None else min(limit, wanted)


def _error(error: ErrorInfo | None) -> int:
    if error is None:
        return 0
    return len(error.type) + len(error.message) + len(error.traceback)


def _value(record: Any) -> int:
    return len(record.value)


def _output(record: Any) -> int:
    return len(record.output or b"") + _error(getattr(record, "error", None))


def _input(record: Any) -> int:
    return len(record.input)


def _error_of(record: Any) -> int:
    return _error(record.error)


# The kinds of record that carry something that can be big, and its size:
# one dict lookup per append, as the records without are the most frequent.
SIZES: dict[type, Callable[[Any], int]] = {
    StreamWrite: _value,
    StepCheckpoint: _value,
    MessageSent: _value,
    EventSet: _value,
    StepCompleted: _output,
    RunEnded: _output,
    RunStarted: _input,
    StepAttemptFailed: _error_of,
    StepGaveUp: _error_of,
}


def _name(record: Record) -> str:
    match record:
        case StreamWrite():
            return f"the value written to stream {record.key!r}"
        case StepCompleted() | StepCheckpoint():
            what = "output" if isinstance(record, StepCompleted) else "checkpoint"
            return f"the {what} of the step at position {record.position}"
        case MessageSent():
            return f"the message sent on topic {record.topic!r}"
        case EventSet():
            return f"the value of event {record.key!r}"
        case RunStarted():
            return "the input"
        case RunEnded():
            return "the output"
        case _:
            return "the error"


def check_size(record: Record, limit: int, journal: str) -> None:
    """Raise EncodeError if what ``record`` carries is over ``limit`` bytes."""
    size = SIZES.get(type(record))
    n = 0 if size is None else size(record)
    if n > limit:
        raise _too_big(f"{_name(record)} of run {record.run_id!r}", n, limit, journal)


def _too_big(what: str, n: int, limit: int, journal: str) -> EncodeError:
    """The error for a value of ``n`` bytes over ``limit``."""
    return EncodeError(
        f"{what} is {n:,} bytes encoded, over the {limit:,} bytes a value may have in "
        f"the journal {journal!r}; write smaller values (split them, or keep big data "
        "elsewhere and journal a reference to it)"
    )
