"""The writer lock: one runtime writes a journal file at a time."""

from __future__ import annotations

import fcntl
import os
import threading

import attrs

from ..._exceptions import JournalError, JournalLocked

__all__ = ("WriterLock",)

# Real paths this process writes: a second SQLiteJournal on one of them in this
# process is refused before flock, whose locks belong to open file descriptions.
# Invariant: read and written only under _LOCKED_PATHS_GUARD.
_LOCKED_PATHS: set[str] = set()
_LOCKED_PATHS_GUARD = threading.Lock()


@attrs.define(eq=False)
class WriterLock:
    """The lock a writing journal holds on its file, from ``acquire`` to ``release``.

    Both are called in a worker thread while the loop thread awaits them, so
    the fields are never touched by two threads at once.
    """

    path: str  # the path as the user gave it, for messages
    real: str  # Invariant: immutable
    fd: int | None = None  # Invariant: set by acquire, cleared by release (never concurrent)

    def acquire(self) -> None:
        """Lock the file, or raise JournalLocked if another runtime writes it."""
        message = (
            f"{self.path!r} is being written by another runtime; "
            "close it first or open with readonly=True"
        )
        real = self.real
        lock_path = real + "-lock"
        with _LOCKED_PATHS_GUARD:
            if real in _LOCKED_PATHS:
                raise JournalLocked(message)
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the lock file {lock_path!r} ({exc}); "
                    "check that its directory is writable"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise JournalLocked(message) from None
            except OSError as exc:
                os.close(fd)
                raise JournalError(f"cannot lock {lock_path!r} ({exc})") from exc
            _LOCKED_PATHS.add(real)
        self.fd = fd

    def release(self) -> None:
        """Unlock the file (a no-op if it is not locked)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # releases the flock
            with _LOCKED_PATHS_GUARD:
                _LOCKED_PATHS.discard(self.real)
