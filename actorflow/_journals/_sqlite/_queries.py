"""The queries of the journal's readers, each run on a connection inside one read transaction.

Rows are checked as they are read: a row no actorflow writes (a damaged file,
a hand edit) raises :class:`Damaged` naming the run and the row, which the
readers turn into a JournalError, rather than a TypeError or a KeyError deep
in a caller.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..._codec import decode_value
from ...abc import RunHistory, RunInfo, RunStatus, StreamEntry, StreamInfo, StreamPage
from ...records import ErrorInfo, Record, record_decoder
from ._errors import Damaged
from ._schema import CHAIN, LAST_RECORD, RUN_COLUMNS

__all__ = ("get_run", "list_runs", "list_streams", "load_history", "read_stream")

_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)
_STATUSES = {s.value: s for s in RunStatus}
_NUMBER = (int, float)
# UNIX times within this of 1970 (about 30,000 years): a bigger one, NaN or an
# infinity is damage, and would break whoever formats it.
_MAX_TIME = 1e12


def _is_time(value: object) -> bool:
    return isinstance(value, _NUMBER) and -_MAX_TIME < value < _MAX_TIME


def get_run(conn: sqlite3.Connection, run_id: str) -> RunInfo | None:
    """The committed state of one run, or None."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run_info(row)


def list_runs(conn: sqlite3.Connection, status: RunStatus | None) -> list[RunInfo]:
    """Committed runs in start order, optionally only those with ``status``."""
    if status is None:
        rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY seq")
    else:
        rows = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE status = ? ORDER BY seq",
            (RunStatus(status).value,),
        )
    return [_run_info(row) for row in rows]


def page_runs(
    conn: sqlite3.Connection,
    status: RunStatus | None,
    workflow: str | None,
    before: str | None,
    limit: int,
) -> list[RunInfo]:
    """Committed runs newest first, at most ``limit``, started before run ``before``."""
    below = None
    if before is not None:
        row = conn.execute("SELECT seq FROM runs WHERE run_id = ?", (before,)).fetchone()
        if row is None:
            return []
        below = row[0]
    where, args = [], []
    if below is not None:
        where.append("seq < ?")
        args.append(below)
    if status is not None:
        where.append("status = ?")
        args.append(RunStatus(status).value)
    if workflow is not None:
        where.append("workflow = ?")
        args.append(workflow)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs {clause}ORDER BY seq DESC LIMIT ?", (*args, limit)
    )
    return [_run_info(row) for row in rows]


def load_history(conn: sqlite3.Connection, run_id: str, schema_version: int) -> RunHistory | None:
    """The committed history of one run, or None."""
    info = get_run(conn, run_id)
    if info is None:
        return None
    if schema_version == 1:  # a readonly journal of a file not yet upgraded
        rows = conn.execute(
            "SELECT seq, NULL, body FROM records WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"{CHAIN} SELECT seq, prev, body FROM chain ORDER BY seq",
            (conn.execute(LAST_RECORD, (run_id,)).fetchone()[0],),
        ).fetchall()
        # The walk back ends at the first record (no prev), unless the chain is broken.
        if rows and rows[0][1] is not None:
            raise Damaged(f"the record chain of run {run_id!r} is broken at record {rows[0][0]}")
    records = [_record(run_id, seq, body) for seq, _, body in rows]
    lengths = conn.execute("SELECT key, length FROM streams WHERE run_id = ?", (run_id,))
    stream_lengths: dict[str, int] = {}
    for key, length in lengths:
        if type(key) is not str or type(length) is not int or length < 0:
            raise Damaged(f"run {run_id!r} has a stream row with key {key!r}, length {length!r}")
        if length:
            stream_lengths[key] = length
    return RunHistory(info=info, records=records, stream_lengths=stream_lengths)


def read_stream(
    conn: sqlite3.Connection, run_id: str, key: str, from_offset: int, limit: int
) -> tuple[StreamPage, bool]:
    """A page of a stream, and whether the stream is closed (or its run ended)."""
    stream = conn.execute(
        "SELECT id, length, closed FROM streams WHERE run_id = ? AND key = ?",
        (run_id, key),
    ).fetchone()
    if stream is None:
        ended = _is_terminal(conn, run_id)
        return StreamPage([], ended and from_offset >= 0), ended
    sid, length, closed = stream
    limit = max(limit, 0)
    rows = conn.execute(
        'SELECT "offset", value, step_id, attempt FROM stream_entries '
        'WHERE stream = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
        (sid, from_offset, limit),
    ).fetchall()
    try:
        entries = [StreamEntry(o, decode_value(v), s, a) for o, v, s, a in rows]
    except (TypeError, msgspec.DecodeError) as exc:
        raise Damaged(f"stream {key!r} of run {run_id!r} has an entry that is not msgpack") from exc
    n = len(entries)
    # Offsets are unique integers in order: the first and the last tell whether
    # the page is contiguous from from_offset.
    if (n and (rows[0][0] != from_offset or rows[-1][0] != from_offset + n - 1)) or any(
        type(s) is not str or type(a) is not int for _, _, s, a in rows
    ):
        raise Damaged(f"stream {key!r} of run {run_id!r} has a damaged entry from {from_offset}")
    closed = bool(closed) or _is_terminal(conn, run_id)
    # Once it can grow no more, a stream ends after its last stored entry, even
    # if its stored length says more: a reader must not wait for an entry that
    # cannot come.
    # (With intact rows, and from_offset >= 0, the two tests agree.)
    final = from_offset + n >= length or (n < limit and from_offset >= 0)
    return StreamPage(entries, closed and final), closed


def list_streams(conn: sqlite3.Connection, run_id: str) -> list[StreamInfo]:
    """The committed streams of one run, by key."""
    rows = conn.execute("SELECT key, length, closed FROM streams WHERE run_id = ?", (run_id,))
    streams = []
    for key, length, closed in rows:
        if type(key) is not str or type(length) is not int or length < 0:
            raise Damaged(f"run {run_id!r} has a stream row with key {key!r}, length {length!r}")
        streams.append(StreamInfo(key, length, bool(closed)))
    return sorted(streams, key=lambda s: s.key)


def _is_terminal(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and _status(run_id, row[0]).is_terminal


def _status(run_id: object, status: object) -> RunStatus:
    try:
        return _STATUSES[status]  # type: ignore[index]
    except (KeyError, TypeError):
        raise Damaged(f"run {run_id!r} has an unknown status {status!r}") from None


def _record(run_id: str, seq: int, body: object) -> Record:
    if type(body) is not bytes:
        raise Damaged(f"record {seq} of run {run_id!r} is a {type(body).__name__}, not msgpack")
    try:
        record = record_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise Damaged(f"record {seq} of run {run_id!r} does not decode ({exc})") from None
    if record.run_id != run_id:
        raise Damaged(f"record {seq} in the history of run {run_id!r} is of run {record.run_id!r}")
    return record


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, workflow, status, started_at, finished_at, input_, output, error = row
    if type(run_id) is not str or type(workflow) is not str:
        raise Damaged(f"run {run_id!r} has a damaged id or workflow ({workflow!r})")
    for name, value, optional in (
        ("started_at", started_at, False),
        ("finished_at", finished_at, True),
    ):
        if not (_is_time(value) or (optional and value is None)):
            raise Damaged(f"run {run_id!r} has {name} {value!r}, not a time")
    for name, value, optional in (("input", input_, False), ("output", output, True)):
        if not (type(value) is bytes or (optional and value is None)):
            raise Damaged(f"run {run_id!r} has an {name} that is a {type(value).__name__}")
    try:
        error_info = None if error is None else _error_decoder.decode(error)
    except (TypeError, msgspec.DecodeError) as exc:
        raise Damaged(f"run {run_id!r} has an error that does not decode ({exc})") from None
    return RunInfo(
        run_id=run_id,
        workflow=workflow,
        status=_status(run_id, status),
        started_at=started_at,
        finished_at=finished_at,
        input=input_,
        output=output,
        error=error_info,
    )
