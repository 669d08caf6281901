"""The layout of a journal file: its DDL, versions, upgrade, and the checks that a file is one.

Layout (schema version 2, ``PRAGMA user_version``; the file is marked as an
actorflow journal by ``PRAGMA application_id``):

- ``runs``: one row per run, in start order; RunResumed and RunEnded update
  it, and ``last_record`` is the ``seq`` of its last record.
- ``records``: every record ``load_history`` returns, msgpack encoded, in log
  order (``seq``). ``prev`` links each to the previous record of its run, so a
  run's history is a walk back from ``runs.last_record``. There is no index by
  run: with many runs interleaving, such an index takes an insert in a
  different page per run per commit, and those page writes made up most of a
  commit's cost; the chain costs one updated ``runs`` row per run.
- ``streams``: per ``(run_id, key)`` an integer id, its length and whether it
  was closed; the length is updated once per stream per batch, not per entry.
- ``stream_entries``: one row per durable stream entry, clustered by
  ``(stream id, offset)`` so a page of a stream is one range scan.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from ..._exceptions import JournalError
from ...abc import RunStatus

__all__ = (
    "APPLICATION_ID",
    "CHAIN",
    "LAST_RECORD",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TERMINAL_SQL",
    "check_header",
    "check_pragmas",
    "prepare",
)

APPLICATION_ID = 0x41466C77
"""``PRAGMA application_id`` of every actorflow journal (``"AFlw"``)."""

SCHEMA_VERSION = 2
"""The schema version this actorflow writes, kept in ``PRAGMA user_version``.

Version 1 files (records indexed by run, no chain) are read as they are and
upgraded in place when a runtime opens them for writing.
"""

_SQLITE_MAGIC = b"SQLite format 3\x00"
TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in RunStatus if s.is_terminal)
RUN_COLUMNS = "run_id, workflow, status, started_at, finished_at, input, output, error"
LAST_RECORD = "SELECT last_record FROM runs WHERE run_id = ?"
# A run's records (seq, prev, body), walking its chain back from the record ``?``.
# Every ``prev`` is smaller than its ``seq``; the walk relies on it to end even
# in a damaged file whose chain loops.
CHAIN = (
    "WITH RECURSIVE chain(seq, prev, body) AS ("
    "SELECT seq, prev, body FROM records WHERE seq = ? "
    "UNION ALL SELECT r.seq, r.prev, r.body FROM records AS r "
    "JOIN chain ON r.seq = chain.prev AND r.seq < chain.seq)"
)

_SCHEMA = f"""
BEGIN IMMEDIATE;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    input BLOB NOT NULL,
    output BLOB,
    error BLOB,
    last_record INTEGER
);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    body BLOB NOT NULL,
    prev INTEGER
);
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    length INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, key)
);
CREATE TABLE stream_entries (
    stream INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    value BLOB NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    position INTEGER,
    PRIMARY KEY (stream, "offset")
) WITHOUT ROWID;
COMMIT;
"""

_UPGRADE_FROM_1 = f"""
BEGIN IMMEDIATE;
ALTER TABLE runs ADD COLUMN last_record INTEGER;
ALTER TABLE records ADD COLUMN prev INTEGER;
UPDATE records SET prev = (
    SELECT max(r.seq) FROM records AS r WHERE r.run_id = records.run_id AND r.seq < records.seq
);
UPDATE runs SET last_record = (SELECT max(seq) FROM records WHERE run_id = runs.run_id);
DROP INDEX records_by_run;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


def check_header(path: str, header: bytes) -> bool:
    """Check the first 100 bytes of a file; False if it is empty (a journal to create)."""
    if not header:
        return False
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise JournalError(
            f"{path!r} is not an actorflow journal (not an SQLite database); "
            "pass the path of a journal, or of a new file to create one"
        )
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    _check_identity(path, app_id, int.from_bytes(header[60:64], "big", signed=True))
    return True


def check_pragmas(conn: sqlite3.Connection, path: str) -> int:
    """Check the identity again through SQLite (the header in the file may lag the WAL).

    Returns the schema version.
    """
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    _check_identity(path, app_id, version)
    return version


def _check_identity(path: str, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise JournalError(
            f"{path!r} is an SQLite database of another application "
            f"(application_id {app_id:#x}), not an actorflow journal; pass another path"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path!r} was written by a newer actorflow (journal schema version {version}; "
            f"this one reads up to {SCHEMA_VERSION}); upgrade actorflow to open it"
        )
    if version < 1:
        raise JournalError(
            f"{path!r} is a damaged actorflow journal (no schema version); "
            "restore it from a backup or start a new journal"
        )


def prepare(
    conn: sqlite3.Connection, path: str, exists: bool, synchronous: Literal["normal", "full"]
) -> None:
    """Make the writing connection ready: create or check (and upgrade) the schema, WAL mode."""
    version = SCHEMA_VERSION
    if exists:
        version = check_pragmas(conn, path)
    else:
        # Created in rollback-journal mode, so the header that marks the file
        # as a journal is in the main file before any WAL exists.
        _script(conn, _SCHEMA)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise JournalError(
            f"{path!r} cannot use SQLite's WAL mode (got {mode!r}); "
            "put the journal on a local file system"
        )
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread checkpoints
    if version == 1:
        _script(conn, _UPGRADE_FROM_1)


def _script(conn: sqlite3.Connection, script: str) -> None:
    try:
        conn.executescript(script)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
