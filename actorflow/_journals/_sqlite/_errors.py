"""Translating SQLite's errors into actorflow's, at the boundary of the journal."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import msgspec

from ..._exceptions import JournalError

__all__ = ("DAMAGED", "PERMISSIONS", "Damaged", "map_sqlite_errors")

PERMISSIONS = "check the file and its permissions"
DAMAGED = (
    "the file is damaged or from an incompatible actorflow: check it, or restore it from a backup"
)


class Damaged(Exception):
    """A row that no actorflow writes (its message names the run and the row)."""


@contextlib.contextmanager
def map_sqlite_errors(what: str, hint: str = PERMISSIONS) -> Iterator[None]:
    """Turn an ``sqlite3.Error`` (or a damaged row) into a JournalError.

    The message says ``what`` failed, SQLite's reason, then ``hint`` (what to do).
    Every place the journal talks to SQLite goes through here, so no driver
    error reaches a caller.
    """
    try:
        yield
    except (sqlite3.Error, msgspec.DecodeError, UnicodeDecodeError, Damaged) as exc:
        # One line: SQLite quotes a damaged schema's SQL, newlines and all.
        reason = " ".join(str(exc).split())
        raise JournalError(f"{what} ({reason}); {hint}") from exc
