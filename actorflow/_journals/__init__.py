"""Journal backends, side by side behind :class:`actorflow.abc.Journal`.

:func:`open_journal` turns what a user passes to ``Runtime(journal)`` into a
journal, importing a backend only when it is asked for (as anyio loads its
event-loop backends by name), so a backend whose extra is not installed costs
nothing until it is used, and then fails with one clear error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._exceptions import ValidationError

if TYPE_CHECKING:
    from ..abc import Journal

__all__ = ("open_journal",)

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_journal(journal: Journal | str | os.PathLike[str] | None) -> Journal:
    """The journal ``Runtime(journal)`` means.

    Args:
        journal: ``None`` (a new in-memory journal), a path or ``sqlite:///path``
            (a SQLite file), ``postgresql://...`` (Postgres, extra ``postgres``),
            or a journal object, returned as it is.

    Raises:
        ValidationError: anything else, or a URL scheme no backend serves.
    """
    from ..abc import Journal

    if journal is None:
        from ._memory import MemoryJournal

        return MemoryJournal()
    if isinstance(journal, Journal):
        return journal
    if isinstance(journal, os.PathLike):
        journal = os.fspath(journal)
    if isinstance(journal, str):
        if journal.startswith(_POSTGRES_SCHEMES):
            raise ValidationError(
                f"journal {_redact(journal)!r} is a Postgres URL, and this actorflow has no "
                "Postgres journal yet; use a SQLite path (or sqlite:///path) for now"
            )
        if journal.startswith("sqlite://"):
            path = journal.removeprefix("sqlite://")
            if not path.startswith("/"):
                raise ValidationError(
                    f"journal URL {journal!r} has no path; write sqlite:///relative.db or "
                    "sqlite:////absolute/path.db"
                )
            journal = path[1:]
        elif "://" in journal:
            scheme = journal.split("://", 1)[0]
            raise ValidationError(
                f"no journal backend for the URL scheme {scheme!r}; use a path, "
                "sqlite:///path, or an af.abc.Journal instance"
            )
        from ._sqlite import SQLiteJournal

        return SQLiteJournal(journal)
    raise ValidationError(
        f"Runtime(journal=...) takes None, a path, a journal URL, or an af.abc.Journal, "
        f"not {journal!r}"
    )


def _redact(url: str) -> str:
    """``url`` without a password, fit for an error message."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
