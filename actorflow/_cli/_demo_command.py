"""``actorflow demo``: a worker killed mid-answer, and the run that survives it.

This process only reads the run; child processes write it:

1. It cancels the unfinished runs that earlier demos left (one interrupted by
   Ctrl-C, or killed): a worker's runtime would otherwise resume them, as
   opening a journal resumes every unfinished run of a registered workflow.
   This process registers no workflow (it never imports :mod:`._demo`), so
   its own runtime resumes nothing.
2. Worker 1 (``python -m actorflow demo --worker RUN``, :func:`._demo.work`)
   starts a fresh run, whose step streams the answer token by token with
   ``ctx.write_stream``. This process follows the stream in the journal file
   through ``SQLiteJournal(path, readonly=True)``, which never takes the
   writer lock, and prints each token once it is committed.
3. Midway it kills worker 1 with SIGKILL and starts worker 2 on the same
   journal: its runtime resumes the run, and the interrupted step runs again,
   as attempt 2, while this process goes on reading.
4. At the end: the answer (the run's output), the stream replayed from the
   file by attempt, the run as ``actorflow show`` tells it, and what to run next.

A worker never outlives this process: it is killed on every way out, and it
exits by itself if this process dies (its standard input closes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from typing import Any, TextIO

import anyio
import anyio.abc
import attrs

from .._codec import decode_value
from .._exceptions import ActorflowError, JournalLocked
from .._runtime import Runtime
from ..abc import RunStatus, StreamEntry
from ._commands import show
from ._parser import default_db
from ._reading import JournalReader, reading, stream_entries
from ._terminal import Style, escape

__all__ = ("command_prefix", "demo")

WORKFLOW = "demo_chat"  # the name ._demo registers, which this module must not import
KEY = "tokens"  # the stream the demo's step writes
KILL_AFTER = 11  # tokens of attempt 1 read before worker 1 is killed
_POLL = 0.2  # seconds between checks that a worker is still alive, while waiting


async def demo(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    """Run the demo on the journal ``args.db``."""
    run_id = f"demo-{uuid.uuid4().hex[:12]}"
    cancelled = await _cancel_unfinished_demos(args.db)
    show_demo = _Demo(args, out, style, run_id)
    show_demo.intro(cancelled)
    async with contextlib.AsyncExitStack() as workers:
        worker = await workers.enter_async_context(_worker(args, run_id))
        async with reading(args.db) as reader:
            await show_demo.stream(reader, worker, workers)
            await show_demo.outro(reader)


async def _cancel_unfinished_demos(db: str) -> list[str]:
    """Cancel the demo runs that earlier demos left unfinished; their ids."""
    cancelled = []
    try:
        async with Runtime(db) as rt:
            if rt.journal.readonly:  # another runtime writes it (this one would wait)
                raise JournalLocked(db)
            for status in (RunStatus.PENDING, RunStatus.RUNNING):
                for info in await rt.list_runs(status):
                    if info.workflow == WORKFLOW:
                        await rt.handle(info.run_id).cancel()
                        cancelled.append(info.run_id)
    except JournalLocked:
        raise JournalLocked(
            f"cannot run the demo on {db!r}: another runtime is writing it; stop that one, "
            "or give the demo another file with --db"
        ) from None
    return cancelled


@contextlib.asynccontextmanager
async def _worker(args: argparse.Namespace, run_id: str) -> AsyncIterator[anyio.abc.Process]:
    """A worker process that runs (or resumes) ``run_id``; killed on the way out."""
    argv = [sys.executable, "-m", "actorflow", "--db", args.db, "demo", "--worker", run_id]
    argv += ["--prompt", args.prompt, "--pace", str(args.pace), "--backend", args.backend]
    # In a session of its own, so that Ctrl-C in the terminal reaches this process
    # only: it is the one that kills the worker, and says why it stopped.
    proc = await anyio.open_process(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.aclose()


async def _failure(proc: anyio.abc.Process) -> str:
    """The last line a worker that failed wrote on stderr."""
    assert proc.stderr is not None
    data = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            data += await proc.stderr.receive()
    lines = data.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    return last.removeprefix("actorflow: error: ")


@attrs.define
class _Demo:
    """What the demo has shown, and how it shows the rest."""

    args: argparse.Namespace
    out: TextIO
    style: Style
    run_id: str
    prefix: str = attrs.field(init=False)
    column: int = 0  # of the live text's cursor, to wrap it
    shown: dict[int, int] = attrs.field(factory=dict)  # tokens shown, by attempt
    killed: bool = False
    workers: int = 1

    def __attrs_post_init__(self) -> None:
        db = "" if self.args.db == default_db() else f" --db {shlex.quote(self.args.db)}"
        self.prefix = command_prefix() + db

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _symbol(self, fancy: str, plain: str) -> str:
        encoding = getattr(self.out, "encoding", None) or "ascii"
        try:
            fancy.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return plain
        return fancy

    def _label(self, name: str, value: str) -> str:
        return f"{self.style.paint(name.ljust(10), 'dim')}{value}\n"

    def intro(self, cancelled: list[str]) -> None:
        bold = self.style.paint
        self._write(
            bold("actorflow demo", "bold") + ": a worker process streams a simulated LLM's "
            "answer into the journal;\nmidway it is killed, and a new worker resumes the run.\n\n"
            + self._label("run", bold(self.run_id, "bold"))
            + self._label("journal", self.args.db)
            + self._label("follow", f"{self.prefix} logs {self.run_id} --tail")
        )
        if cancelled:
            shown = ", ".join(cancelled[:3]) + (", ..." if len(cancelled) > 3 else "")
            what = f"{len(cancelled)} unfinished run(s) of earlier demos: {shown}"
            self._write(self._label("cancelled", what))
        self._write("\n")

    async def stream(
        self,
        reader: JournalReader,
        worker: anyio.abc.Process,
        workers: contextlib.AsyncExitStack,
    ) -> None:
        """Follow the run's token stream until it closes, killing worker 1 midway."""
        while await reader.get_run(self.run_id) is None:
            await self._wait(reader, reader.committed, worker)
        self._write(
            f"worker 1 (pid {worker.pid}) started the run; its tokens, as this process "
            "reads them from the journal file:\n"
        )
        offset = 0
        while True:
            seen = reader.committed
            page = await reader.read_stream(self.run_id, KEY, offset)
            offset += len(page.entries)
            for entry in page.entries:
                self._token(entry)
                if not self.killed and self.shown.get(1, 0) >= KILL_AFTER:
                    worker.kill()
                    await worker.wait()
                    self.killed = True
            if page.closed:
                break
            if page.entries:
                continue
            if self.killed and self.workers == 1:
                # Every token worker 1 committed before it died is shown: now the crash.
                worker = await self._resume(workers)
            await self._wait(reader, seen, worker)
        if not self.killed:
            self._write(
                "\n"
                + self.style.paint(
                    "(the answer was complete before the kill; a larger "
                    "--pace leaves time for one)",
                    "dim",
                )
            )
        elif self.workers == 1:
            # Worker 1 had closed the stream when it was killed: the run still needs
            # a worker to finish it.
            worker = await self._resume(workers)
        self._write("\n")
        info = await reader.get_run(self.run_id)
        while info is None or not info.status.is_terminal:
            await self._wait(reader, reader.committed, worker)
            info = await reader.get_run(self.run_id)
        if info.status is not RunStatus.COMPLETED or info.output is None:
            raise ActorflowError(
                f"the demo run {self.run_id!r} ended {info.status.value}; "
                f"see `{self.prefix} show {self.run_id}`"
            )
        await worker.wait()
        result: dict[str, Any] = decode_value(info.output)
        self._write("\n" + self._label("answer", escape(str(result["answer"]))))

    def _token(self, entry: StreamEntry) -> None:
        if entry.attempt not in self.shown:
            self.shown[entry.attempt] = 0
            if entry.attempt > 1:
                mark = self._symbol("↻", "->")
                self._write(
                    ("\n" if self.column else "")
                    + self.style.paint(
                        f"{mark} attempt {entry.attempt} resumes: step {entry.step_id!r} runs "
                        "again, from its start",
                        "bold",
                        "yellow",
                    )
                    + "\n"
                )
                self.column = 0
        self.shown[entry.attempt] += 1
        token = escape(str(entry.value))
        if self.column == 0:
            self._write("  ")
            self.column = 2
        elif self.column + len(token.rstrip()) > self.style.width - 1:
            self._write("\n  ")
            self.column = 2
        self._write(token)
        self.column += len(token)

    async def _resume(self, workers: contextlib.AsyncExitStack) -> anyio.abc.Process:
        mark = self._symbol("💥", "**")
        self._write(
            "\n"
            + self.style.paint(
                f"{mark} worker killed (SIGKILL) mid-answer, after {self.shown.get(1, 0)} "
                "tokens: the run stays RUNNING in the journal",
                "bold",
                "red",
            )
            + "\n"
        )
        self.column = 0
        self.workers += 1
        worker = await workers.enter_async_context(_worker(self.args, self.run_id))
        self._write(
            f"worker 2 (pid {worker.pid}) opens the same journal: its runtime resumes the run\n"
        )
        return worker

    async def _wait(self, reader: JournalReader, seen: int, worker: anyio.abc.Process) -> None:
        """Wait for a commit after ``seen``, or for ``worker`` to exit; raise if it failed."""
        with anyio.move_on_after(_POLL):
            await reader.wait_for_commit(seen)
            return
        if worker.returncode is not None and not (self.killed and self.workers == 1):
            if worker.returncode == 0:
                return  # it ran the run to its end: the next read sees that
            raise ActorflowError(f"the demo's worker failed: {await _failure(worker)}")

    async def outro(self, reader: JournalReader) -> None:
        """The stream replayed from the file, the run as `show` tells it, what next."""
        paint = self.style.paint
        by_attempt: dict[int, list[str]] = {}
        async for _, page in stream_entries(reader, self.run_id, key=KEY):
            for e in page:
                by_attempt.setdefault(e.attempt, []).append(escape(str(e.value)))
        self._write(
            "\n" + paint(f"replayed from the journal file (stream {KEY!r}):", "bold") + "\n"
        )
        last = max(by_attempt, default=0)
        for attempt, tokens in sorted(by_attempt.items()):
            label = f"attempt {attempt}" + ("" if attempt == last else " (cut off)")
            text = textwrap.fill(
                "".join(tokens).strip(),
                width=max(self.style.width - 1, 40),
                initial_indent="  " + label.ljust(21),
                subsequent_indent=" " * 23,
            )
            self._write(text + "\n")
        self._write("\n" + paint("the run, as `actorflow show` tells it:", "bold") + "\n")
        await show(argparse.Namespace(db=self.args.db, run=self.run_id), self.out, self.style)
        cli = self.prefix
        self._write(
            f"\n{paint('next', 'bold')}\n"
            f"  {cli} show {self.run_id}\n"
            f"  {cli} logs {self.run_id}\n"
            f"  {cli} runs\n"
            f"  {paint('a slower demo, to tail from another shell:', 'dim')} "
            f"{cli} demo --pace 0.5\n"
        )


def command_prefix(environ: dict[str, str] | None = None, executable: str | None = None) -> str:
    """How to run ``actorflow`` in the user's shell: ``actorflow``, ``uv run actorflow``, ...

    ``uv run`` puts the project's environment on this process's PATH only, so
    there ``actorflow`` is looked up without it.
    """
    env = os.environ if environ is None else environ
    python = sys.executable if executable is None else executable
    path = env.get("PATH", os.defpath)
    if env.get("UV"):
        bindir = os.path.normcase(os.path.dirname(os.path.abspath(python)))
        outside = [
            p for p in path.split(os.pathsep) if os.path.normcase(os.path.abspath(p)) != bindir
        ]
        if shutil.which("actorflow", path=os.pathsep.join(outside)):
            return "actorflow"
        return "uv run actorflow"
    if shutil.which("actorflow", path=path):
        return "actorflow"
    for name in ("python3", "python"):
        found = shutil.which(name, path=path)
        if found and os.path.realpath(found) == os.path.realpath(python):
            return f"{name} -m actorflow"
    return f"{shlex.quote(python)} -m actorflow"
