"""The journal file as this process holds it: one pinned descriptor, and the writer lock.

One runtime writes a journal at a time. The lock is ``flock`` on a descriptor
of the database file itself, so it follows the file's inode: a hard link, a
rename or a second path to the same file finds it taken. (SQLite's own locks
are POSIX byte-range locks, which do not interact with ``flock`` on Linux and
macOS.)

That descriptor is opened once per file and process and closed only when no
journal of this process uses the file any more: closing *any* descriptor of a
file drops every POSIX lock the process holds on it, SQLite's included, which
would let another process checkpoint and delete a WAL still in use. For the
same reason the file's header is read through the pinned descriptor rather
than by opening the file again.
"""

from __future__ import annotations

import os
import threading

import attrs

from ..._exceptions import JournalError, JournalLocked

__all__ = ("JournalFile",)

_HEADER_BYTES = 100


@attrs.define(eq=False)
class _Pin:
    """This process's descriptors of one file (by inode), shared by its journals."""

    # Invariant: every field is read and written only under _PINS_GUARD.
    fd: int
    fds: list[int]  # every descriptor opened for the inode (fd first); closed together
    users: int = 0
    writing: bool = False


# (st_dev, st_ino) -> the pin of a file some journal of this process has open.
# Invariant: under _PINS_GUARD.
_PINS: dict[tuple[int, int], _Pin] = {}
_PINS_GUARD = threading.Lock()


@attrs.define(eq=False)
class JournalFile:
    """A journal file held open by one SQLiteJournal, from ``open`` to ``close``.

    Its methods run in worker threads (or the writer thread, for ``check``)
    while the loop thread awaits them, so the fields are never touched by two
    threads at once; the pins they share are guarded by ``_PINS_GUARD``.
    """

    path: str  # Invariant: immutable (the path as the user gave it, for messages)
    real: str  # Invariant: immutable
    key: tuple[int, int]  # Invariant: immutable
    fd: int  # Invariant: immutable; owned by the pin, never closed here
    writing: bool = False  # Invariant: set by lock, cleared by close

    @classmethod
    def open(cls, path: str, real: str, *, create: bool) -> JournalFile | None:
        """Pin the file at ``real`` (creating it if ``create``); None if it is missing."""
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        if create:
            flags |= os.O_CREAT
        try:
            fd = os.open(real, flags, 0o644)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise JournalError(
                f"cannot open {path!r} ({exc}); check the path and its permissions"
            ) from exc
        try:
            stat = os.fstat(fd)
        except OSError as exc:  # pragma: no cover - fstat of an open descriptor
            os.close(fd)
            raise JournalError(f"cannot open {path!r} ({exc})") from exc
        key = (stat.st_dev, stat.st_ino)
        with _PINS_GUARD:
            pin = _PINS.get(key)
            if pin is None:
                pin = _PINS[key] = _Pin(fd, [fd])
            else:
                # Not closed now: SQLite connections of this process may hold
                # POSIX locks on the file (see the module docs).
                pin.fds.append(fd)
            pin.users += 1
            return cls(path, real, key, pin.fd)

    def header(self) -> bytes:
        """The first 100 bytes of the file (fewer if it is shorter)."""
        try:
            pread = getattr(os, "pread", None)
            if pread is not None:
                return pread(self.fd, _HEADER_BYTES, 0)  # type: ignore[no-any-return]
            with _PINS_GUARD:  # the descriptor's offset is shared: seek and read at once
                os.lseek(self.fd, 0, os.SEEK_SET)
                return os.read(self.fd, _HEADER_BYTES)
        except OSError as exc:
            raise JournalError(
                f"cannot read {self.path!r} ({exc}); check the path and its permissions"
            ) from exc

    def lock(self) -> None:
        """Take the writer lock, or raise JournalLocked if another runtime writes the file."""
        try:
            import fcntl
        except ImportError:
            raise JournalError(
                f"cannot open {self.path!r} for writing: an SQLite journal needs POSIX "
                "file locks (fcntl), which Linux or macOS have and this platform lacks; "
                "open it with readonly=True, or use a MemoryJournal"
            ) from None
        message = (
            f"{self.path!r} is being written by another runtime (through this or "
            "another path to the same file); close it first or open with readonly=True"
        )
        with _PINS_GUARD:
            pin = _PINS[self.key]
            if pin.writing:  # a journal of this process: flock would let it in again
                raise JournalLocked(message)
            try:
                fcntl.flock(pin.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalLocked(message) from None
            except OSError as exc:
                raise JournalError(f"cannot lock {self.path!r} ({exc})") from exc
            pin.writing = self.writing = True

    def check(self) -> None:
        """Raise JournalError if the file was deleted, or another file took its path."""
        try:
            nlink = os.fstat(self.fd).st_nlink
            try:
                at_path: os.stat_result | None = os.stat(self.real)
            except FileNotFoundError:
                at_path = None
        except OSError as exc:
            raise JournalError(f"cannot check {self.path!r} ({exc})") from exc
        if nlink == 0:
            raise JournalError(
                f"{self.path!r} was deleted (or replaced by another file) while this runtime "
                "wrote it, so what it "
                "wrote since is lost; never delete a journal in use (restore it from a "
                "backup if you need it)"
            )
        if at_path is None or (at_path.st_dev, at_path.st_ino) != self.key:
            raise JournalError(
                f"{self.path!r} was moved or replaced while this runtime wrote it, so "
                "readers and other runtimes no longer find what it writes; put the "
                "journal back at its path and open it again"
            )

    def close(self) -> None:
        """Release the writer lock if held, and the pin once no journal uses the file."""
        with _PINS_GUARD:
            pin = _PINS[self.key]
            if self.writing:
                self.writing = pin.writing = False
                import fcntl

                fcntl.flock(pin.fd, fcntl.LOCK_UN)
            pin.users -= 1
            if pin.users:
                return
            del _PINS[self.key]
        # No SQLite connection of this process to the file is left (every
        # journal closes its connections before its file): closing is safe.
        for fd in pin.fds:
            os.close(fd)
