"""Knowing at once that another process wrote a file: inotify on Linux, polling elsewhere.

A reader of a journal another process writes learns of its commits from
SQLite's ``data_version``, which it must ask for. Asking often costs CPU
while nothing happens; asking rarely costs latency. :class:`FileWatch`
removes the trade: a thread blocks on Linux's inotify for writes to the
journal's files (the WAL, the database) and wakes the event loop, which then
asks ``data_version``. SQLite publishes a commit in its shared-memory index
right *after* writing the WAL (and writes to shared memory raise no event),
so after each wake-up a waiter asks again a few times over a few
milliseconds before it waits for the next write (see ``_AFTER_WAKE``).

Without inotify (macOS, Windows, or a file system that does not report
writes), waiters fall back to polling, as they always may.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ("FileWatch",)

_log = logging.getLogger("actorflow.journal")
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


_LIBC: Any = None
_LIBC_LOADED = False


def _libc() -> Any:
    """The C library's inotify calls, or None; loaded on first use, not at import."""
    global _LIBC, _LIBC_LOADED
    if not _LIBC_LOADED:
        _LIBC_LOADED = True
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols
            except OSError:
                libc = None
            _LIBC = libc if libc is not None and hasattr(libc, "inotify_init1") else None
    return _LIBC


@attrs.define(eq=False)
class FileWatch:
    """Calls ``notify()``, from its own thread, when one of ``names`` in ``directory`` is written.

    With no ``names``, ``directory`` is the path of one file, watched itself
    (:meth:`file`): other files' writes do not even wake the thread.

    ``start()`` returns False where inotify is not available; the caller then polls.
    """

    directory: str
    names: frozenset[str]
    notify: Callable[[], object]
    # Invariant: set by start() before the thread runs; read by the thread.
    _fd: int = -1
    _wake_r: int = -1
    _wake_w: int = -1
    _thread: threading.Thread | None = None

    @classmethod
    def file(cls, path: str, notify: Callable[[], object]) -> FileWatch:
        """A watch of the file at ``path`` itself (it must exist): its writes only."""
        return cls(os.path.realpath(path), frozenset(), notify)

    @classmethod
    def of(cls, paths: Iterable[str], notify: Callable[[], object]) -> FileWatch:
        """A watch of ``paths`` (files of one directory)."""
        paths = [os.path.realpath(p) for p in paths]
        return cls(os.path.dirname(paths[0]), frozenset(os.path.basename(p) for p in paths), notify)

    def start(self) -> bool:
        """Start watching; False if this platform cannot (then nothing runs)."""
        libc = _libc()
        if libc is None:
            return False
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return False
        if libc.inotify_add_watch(fd, os.fsencode(self.directory), _MASK) < 0:
            os.close(fd)
            return False
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._run, name=f"actorflow watch {self.directory}", daemon=True
        )
        self._thread.start()
        return True

    def _run(self) -> None:
        names, fd = self.names, self._fd
        try:
            while True:
                ready, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not names or any(name in names for name in _names(data)):
                    self.notify()
        except Exception:  # the watched directory went away, the loop closed, ...
            _log.debug("file watch of %r stopped", self.directory, exc_info=True)

    def stop(self) -> None:
        """Stop the thread and close the descriptors (blocks until the thread ends)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        os.write(self._wake_w, b"x")
        thread.join()
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)


def _names(data: bytes) -> list[str]:
    names, offset = [], 0
    while offset + _EVENT.size <= len(data):
        _, _, _, length = _EVENT.unpack_from(data, offset)
        start = offset + _EVENT.size
        names.append(os.fsdecode(data[start : start + length].rstrip(b"\0")))
        offset = start + length
    return names
