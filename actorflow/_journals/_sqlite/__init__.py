"""The SQLite journal: one file in WAL mode, one writer thread, group commit.

Modules, from the bottom up: ``_errors`` (sqlite3 errors to JournalError),
``_schema`` (the file's layout and the checks that a file is a journal),
``_lock`` (the file held open, one writer per file), ``_limits`` (the size
of a value), ``_batch`` (the SQL of one committed batch),
``_writer`` (the writer and checkpoint threads, inline commits), ``_queries``
and ``_readers`` (read connections, queries, the readonly follower),
``_tails`` (committed tails of followed streams, in memory) and ``_journal``
(:class:`SQLiteJournal`, which ties them together).
"""

from ._journal import SQLiteJournal
from ._schema import APPLICATION_ID, SCHEMA_VERSION
from ._writer import SQLiteJournalStatistics

__all__ = ("APPLICATION_ID", "SCHEMA_VERSION", "SQLiteJournal", "SQLiteJournalStatistics")
