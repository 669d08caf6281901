"""The queries of the journal's readers, each run on a connection inside one read transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..._codec import decode_value
from ...abc import RunHistory, RunInfo, RunStatus, StreamEntry, StreamInfo, StreamPage
from ...records import ErrorInfo, record_decoder
from ._schema import CHAIN, LAST_RECORD, RUN_COLUMNS

__all__ = ("get_run", "list_runs", "list_streams", "load_history", "read_stream")

_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)


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


def load_history(conn: sqlite3.Connection, run_id: str, schema_version: int) -> RunHistory | None:
    """The committed history of one run, or None."""
    info = get_run(conn, run_id)
    if info is None:
        return None
    if schema_version == 1:  # a readonly journal of a file not yet upgraded
        rows = conn.execute("SELECT body FROM records WHERE run_id = ? ORDER BY seq", (run_id,))
    else:
        rows = conn.execute(
            f"{CHAIN} SELECT body FROM chain ORDER BY seq",
            (conn.execute(LAST_RECORD, (run_id,)).fetchone()[0],),
        )
    records = [record_decoder.decode(body) for (body,) in rows]
    lengths = conn.execute(
        "SELECT key, length FROM streams WHERE run_id = ? AND length > 0", (run_id,)
    )
    return RunHistory(info=info, records=records, stream_lengths=dict(lengths.fetchall()))


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
    rows = conn.execute(
        'SELECT "offset", value, step_id, attempt FROM stream_entries '
        'WHERE stream = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
        (sid, from_offset, max(limit, 0)),
    )
    entries = [StreamEntry(o, decode_value(v), s, a) for o, v, s, a in rows]
    closed = bool(closed) or _is_terminal(conn, run_id)
    return StreamPage(entries, closed and from_offset + len(entries) >= length), closed


def list_streams(conn: sqlite3.Connection, run_id: str) -> list[StreamInfo]:
    """The committed streams of one run, by key."""
    rows = conn.execute("SELECT key, length, closed FROM streams WHERE run_id = ?", (run_id,))
    return sorted(
        (StreamInfo(key, length, bool(closed)) for key, length, closed in rows),
        key=lambda s: s.key,
    )


def _is_terminal(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and RunStatus(row[0]).is_terminal


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, workflow, status, started_at, finished_at, input_, output, error = row
    return RunInfo(
        run_id=run_id,
        workflow=workflow,
        status=RunStatus(status),
        started_at=started_at,
        finished_at=finished_at,
        input=input_,
        output=output,
        error=None if error is None else _error_decoder.decode(error),
    )
