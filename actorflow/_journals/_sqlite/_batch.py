"""Writing one batch of records in one transaction: the SQL of the writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, cast

import attrs
import msgspec

from ...records import (
    Record,
    RunEnded,
    RunResumed,
    RunStarted,
    StreamEnded,
    StreamWrite,
    record_encoder,
)
from ._schema import CHAIN, LAST_RECORD, TERMINAL_SQL

__all__ = ("Batch", "BatchWriter")

Batch = list[tuple[int, Record]]
"""Records with their tickets, in append order."""

_MAX_CACHED_STREAMS = 10_000
_INSERT_RECORDS = "INSERT INTO records (seq, run_id, body, prev) VALUES {rows}"
_RECORD_COLUMNS = 4
_SET_LAST_COLUMNS = 2
_SET_LAST_RECORDS = (
    "UPDATE runs SET last_record = v.last FROM (SELECT column1 AS run_id, column2 AS last "
    "FROM (VALUES {rows})) AS v WHERE runs.run_id = v.run_id"
)
_INSERT_ENTRIES = "INSERT INTO stream_entries VALUES {rows}"
_ENTRY_COLUMNS = 6  # of stream_entries, inserted in schema order
_MAX_ROWS_PER_INSERT = 1024
_EXACT_ROWS = 8
_GROW_STREAM = "UPDATE streams SET length = ? WHERE id = ?"
_START_RUN = (
    "INSERT INTO runs (run_id, workflow, status, started_at, input) VALUES (?, ?, 'PENDING', ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET workflow = excluded.workflow, status = 'PENDING', "
    "started_at = excluded.started_at, finished_at = NULL, input = excluded.input, "
    "output = NULL, error = NULL, last_record = NULL"
)
_RESUME_RUN = (
    f"UPDATE runs SET status = 'RUNNING' WHERE run_id = ? AND status NOT IN ({TERMINAL_SQL})"
)
_FINISH_RUN = "UPDATE runs SET status = ?, finished_at = ?, output = ?, error = ? WHERE run_id = ?"

_error_encoder = msgspec.msgpack.Encoder()


@attrs.define(eq=False)
class _RowInserter:
    """Runs a statement over many rows at once: ``INSERT ... VALUES (...), (...), ...``.

    Statements hold up to ``_MAX_ROWS_PER_INSERT`` rows, then halving sizes
    for the rest, so every statement text is cached; up to ``_EXACT_ROWS`` rows
    (a step's or a superstep's few records) take one statement of their exact
    size, since each statement costs ~10 us even for one row. ``executemany`` would
    release and re-acquire the GIL around every row's ``sqlite3_step``, and
    while the event loop's thread is busy each re-acquisition can wait for a
    whole switch interval; one statement per batch waits once.
    """

    # Invariant: immutable; used by the thread holding the writer's lock.
    execute: Callable[..., Any]
    columns: int
    max_rows: int
    sql: dict[int, str]

    @classmethod
    def create(cls, conn: sqlite3.Connection, template: str, columns: int) -> _RowInserter:
        """``template`` has ``{rows}`` where the ``(?, ?, ...), ...`` rows go."""
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // columns
        rows = 1
        while rows * 2 <= min(limit, _MAX_ROWS_PER_INSERT):
            rows *= 2
        row = "(" + ", ".join("?" * columns) + ")"
        sizes = set(range(1, min(rows, _EXACT_ROWS) + 1))
        size = rows
        while size:
            sizes.add(size)
            size //= 2
        sql = {size: template.format(rows=", ".join([row] * size)) for size in sizes}
        return cls(conn.execute, columns, rows, sql)

    def insert(self, values: list[Any]) -> None:
        """Insert rows given as one flat list of column values, in order."""
        execute, sql, columns = self.execute, self.sql, self.columns
        rows, start, size = len(values) // columns, 0, self.max_rows
        if rows <= _EXACT_ROWS:
            execute(sql[rows], values)
            return
        while rows:
            while size > rows:
                size //= 2
            stop = start + size * columns
            execute(sql[size], values[start:stop])
            start, rows = stop, rows - size


@attrs.define(eq=False)
class BatchWriter:
    """The writer thread's side: writes a batch in one transaction.

    Records and stream entries are inserted by :class:`_RowInserter`, a few
    statements per batch rather than one per row. The writer numbers records
    itself (``seq``), so it can link each to the previous record of its run
    (``prev``) before inserting it; the last ``seq`` of recently written runs
    is cached, and ``runs.last_record`` is updated once per run per batch.

    Stream entries are keyed by a small integer stream id rather than by
    ``(run_id, key)``: binding and comparing two texts per entry would halve
    the rate of the hot path. The ids of recently written streams are cached.
    """

    # Invariant: every field is used only by the thread holding the writer's
    # lock (the loop thread's inline commit, the writer thread, or the
    # checkpoint thread's last copy); path and synchronous are immutable.
    conn: sqlite3.Connection
    path: str
    synchronous: str
    stream_ids: dict[tuple[str, str], int] = attrs.field(factory=dict)
    last_records: dict[str, int | None] = attrs.field(factory=dict)
    records: _RowInserter = attrs.field(init=False)
    entries: _RowInserter = attrs.field(init=False)
    set_last: _RowInserter = attrs.field(init=False)
    next_seq: int = attrs.field(init=False)
    unchecked_pages: int = 0  # an estimate of the WAL pages since the last checkpoint
    checkpoint_asked: bool = False

    def __attrs_post_init__(self) -> None:
        conn = self.conn
        self.records = _RowInserter.create(conn, _INSERT_RECORDS, _RECORD_COLUMNS)
        self.entries = _RowInserter.create(conn, _INSERT_ENTRIES, _ENTRY_COLUMNS)
        self.set_last = _RowInserter.create(conn, _SET_LAST_RECORDS, _SET_LAST_COLUMNS)
        self.next_seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM records").fetchone()[0]

    def last_record(self, run_id: str) -> int | None:
        """The ``seq`` of the last record of ``run_id`` written so far (None: none)."""
        row = self.conn.execute(LAST_RECORD, (run_id,)).fetchone()
        last = self.last_records[run_id] = None if row is None else row[0]
        return last

    def stream_id(self, run_id: str, key: str) -> int:
        if len(self.stream_ids) >= _MAX_CACHED_STREAMS:
            self.stream_ids.clear()
        row = self.conn.execute(
            "SELECT id FROM streams WHERE run_id = ? AND key = ?", (run_id, key)
        ).fetchone()
        if row is None:
            cursor = self.conn.execute(
                "INSERT INTO streams (run_id, key) VALUES (?, ?)", (run_id, key)
            )
            row = (cursor.lastrowid,)
        self.stream_ids[run_id, key] = row[0]
        return int(row[0])

    def write(self, batch: Batch) -> None:
        conn, ids, last_records = self.conn, self.stream_ids, self.last_records
        if len(last_records) >= _MAX_CACHED_STREAMS:
            last_records.clear()
        records: list[Any] = []  # seq, run_id, body, prev, seq, run_id, ...
        add_record = records.extend
        seq = self.next_seq
        touched: dict[str, int] = {}  # run id -> the seq of its last record in this batch
        entries: list[Any] = []
        add_entry = entries.extend
        lengths: dict[int, int] = {}  # stream id -> its new length (offsets are contiguous)
        closes: list[tuple[int]] = []
        encode = record_encoder.encode
        # IMMEDIATE: the write lock first, so that a snapshot taken by a read
        # below can never be outdated by another connection's commit (a runtime
        # of another process committing a request) before this one writes.
        conn.execute("BEGIN IMMEDIATE")
        last_run, last_key, sid = "", "", 0
        for _, record in batch:
            if type(record) is StreamWrite:
                # Consecutive entries mostly go to one stream: skip the dict then.
                if record.key != last_key or record.run_id != last_run:
                    last_run, last_key = record.run_id, record.key
                    sid = ids.get((last_run, last_key)) or self.stream_id(last_run, last_key)
                add_entry(
                    (
                        sid,
                        record.offset,
                        record.value,
                        record.step_id,
                        record.attempt,
                        record.position,
                    )
                )
                lengths[sid] = record.offset + 1
                if record.position is None:
                    continue
                kind: type[Record] = StreamWrite
            else:
                kind = type(record)
            if kind is RunStarted:
                record = cast(RunStarted, record)
                # A start resets the run's records (as MemoryJournal does): write the
                # ones queued before it first, so the DELETE sees them.
                if records:
                    self.records.insert(records)
                    records.clear()
                run_id = record.run_id
                last = last_records[run_id] if run_id in last_records else self.last_record(run_id)
                conn.execute(_START_RUN, (run_id, record.workflow, record.at, record.input))
                if last is not None:
                    conn.execute(
                        f"DELETE FROM records WHERE seq IN ({CHAIN} SELECT seq FROM chain)",
                        (last,),
                    )
                last_records[run_id] = None
            elif kind is RunResumed:
                conn.execute(_RESUME_RUN, (record.run_id,))
            elif kind is RunEnded:
                record = cast(RunEnded, record)
                error = None if record.error is None else _error_encoder.encode(record.error)
                conn.execute(
                    _FINISH_RUN, (record.status, record.at, record.output, error, record.run_id)
                )
            elif kind is StreamEnded:
                record = cast(StreamEnded, record)
                run_id, key = record.run_id, record.key
                closes.append((ids.get((run_id, key)) or self.stream_id(run_id, key),))
            run_id = record.run_id
            prev = last_records[run_id] if run_id in last_records else self.last_record(run_id)
            add_record((seq, run_id, encode(record), prev))
            last_records[run_id] = touched[run_id] = seq
            seq += 1
        if records:
            self.records.insert(records)
        if len(touched) == 1:  # the common case of a lone run: skip the VALUES table
            ((run_id, last),) = touched.items()
            conn.execute("UPDATE runs SET last_record = ? WHERE run_id = ?", (last, run_id))
        elif touched:
            self.set_last.insert([v for item in touched.items() for v in item])
        if entries:
            self.entries.insert(entries)
        if lengths:
            conn.executemany(_GROW_STREAM, [(n, sid) for sid, n in lengths.items()])
        if closes:
            conn.executemany("UPDATE streams SET closed = 1 WHERE id = ?", closes)
        conn.execute("COMMIT")
        self.next_seq = seq
        # Every page a commit touches is a WAL frame: the runs rows, the tail of
        # the records, and about one page per 30 records or entries.
        self.unchecked_pages += 2 + len(touched) + len(batch) // 30

    def connect_checkpointer(self) -> sqlite3.Connection:
        """A second connection to the file, for the checkpoint thread."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        except BaseException:
            conn.close()
            raise
        return conn
