"""The ``actorflow`` command line (also ``python -m actorflow``).

``demo``, ``cancel`` and ``send`` write a journal through a
:class:`~actorflow.Runtime` (so need one that no other runtime writes); ``runs``,
``show`` and ``logs`` only read one, through ``SQLiteJournal(path,
readonly=True)``: they never take the writer lock and never create a file, so
they can watch a journal that a runtime in another process is writing.

Exit status: 0 done, 1 an actorflow error (no journal, unknown run, ...), 2 a
usage error, 130 interrupted (Ctrl-C). Errors are one line on stderr.

Modules: ``_parser`` (arguments), ``_reading`` (read-only journal access),
``_commands`` (``runs``, ``show``, ``serve``), ``_logs``, ``_manage``
(``cancel``, ``send``), ``_demo_command``
(``demo``) and ``_demo`` (its workflow and worker processes), and
``_terminal`` (how text looks); this one dispatches and maps errors to exit
statuses.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TextIO

import anyio

from .._exceptions import ActorflowError
from ._commands import runs, serve, show
from ._logs import logs
from ._manage import cancel, send
from ._parser import build_parser
from ._terminal import Style

__all__ = ("main",)


async def _demo(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    # Imported on demand, for the demo only. A worker imports the demo workflow
    # (registering it); the demo itself must not (see _demo_command).
    if args.worker is not None:
        from ._demo import work

        await work(args)
    else:
        from ._demo_command import demo

        await demo(args, out, style)


# A command returns its exit status (None: 0) or raises.
_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, Style], Awaitable[int | None]]] = {
    "demo": _demo,
    "runs": runs,
    "show": show,
    "logs": logs,
    "serve": serve,
    "cancel": cancel,
    "send": send,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    0: done. 1: an actorflow error, printed as one line on stderr (no journal
    at the path, not a journal, unknown run, ...). 2: bad arguments. 130:
    interrupted with Ctrl-C, quietly.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    backend = getattr(args, "backend", "asyncio")
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        print(
            "actorflow: error: the trio backend needs trio: pip install '.[trio]' in an actorflow "
            "checkout, or pip install 'actorflow[trio] @ git+<clone URL>'",
            file=sys.stderr,
        )
        return 1
    out = sys.stdout
    try:
        status = anyio.run(_COMMANDS[args.command], args, out, Style.detect(out), backend=backend)
        out.flush()
    except BaseException as exc:  # sorted into exit statuses below; the rest is re-raised
        return _exit_status(exc, args.db)
    return status or 0


def _exit_status(exc: BaseException, db: str) -> int:
    """The exit status for ``exc`` escaping a command (re-raised if it is a bug of ours).

    An error is one line on stderr; a task group may have wrapped it, with a
    Ctrl-C beside it (trio delivers Ctrl-C inside the task groups).
    """
    leaves = list(_leaves(exc))
    failures = [e for e in leaves if isinstance(e, ActorflowError | sqlite3.Error)]
    if all(isinstance(e, KeyboardInterrupt | ActorflowError | sqlite3.Error) for e in leaves):
        if not failures:
            return 130
        first = failures[0]
        if isinstance(first, sqlite3.Error):  # from below the journal's own translation
            message = f"cannot use the journal {db!r} ({first}); check the file"
        else:
            message = str(first)
        print(f"actorflow: error: {message}", file=sys.stderr)
        return 1
    if all(isinstance(e, BrokenPipeError) for e in leaves):
        # The reader went away (`actorflow logs RUN | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    raise exc


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
