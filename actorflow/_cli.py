"""The ``actorflow`` command line (also ``python -m actorflow``).

``demo`` writes a journal through a :class:`~actorflow.Runtime`; ``runs``,
``show`` and ``logs`` only read one, through ``SQLiteJournal(path,
readonly=True)``: they never take the writer lock and never create a file, so
they can watch a journal that a runtime in another process is writing.

Exit status: 0 done, 1 an actorflow error (no journal, unknown run, ...), 2 a
usage error, 130 interrupted (Ctrl-C). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import shlex
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, NoReturn, TextIO

import anyio
import msgspec

from ._codec import decode_value
from ._exceptions import ActorflowError, JournalError, RunNotFound, ValidationError
from ._history import StepRecord, fold
from ._journals._sqlite import SQLiteJournal
from ._registry import Workflow
from ._terminal import Style, escape, format_duration, format_time, json_value, render_value
from ._validate import validate_key
from .abc import Journal, RunInfo, RunStatus, StreamEntry

__all__ = ("main",)

DEFAULT_DB = "./actorflow.db"
_json_line = msgspec.json.Encoder()


# -- arguments -------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _stream_key(text: str) -> str:
    try:
        return validate_key(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an offset (an integer >= 0), not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, not {text!r}")
    return value


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 10, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0 to 65535): {text!r}")
    return port


def _parser() -> _Parser:
    parser = _Parser(
        prog="actorflow",
        description="Durable workflows whose steps stream output: run the demo, inspect a journal.",
    )
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the SQLite journal (default: {DEFAULT_DB})",
    )
    # Subcommands accept --db too; SUPPRESS keeps the value given before the subcommand.
    db_after = _Parser(add_help=False)
    db_after.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help="the journal")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[db_after],
        help="run a simulated LLM workflow that streams tokens live and durably",
        description="Run a simulated LLM workflow (no network): stream its tokens live, "
        "write them to the journal, then replay them from the file.",
    )
    demo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    demo.add_argument("--prompt", default="Why are durable workflows useful?")
    demo.add_argument(
        "--pace",
        type=_pace,
        default=0.03,
        metavar="SECONDS",
        help="wait between tokens (default: 0.03); slow it down to follow it from another shell",
    )

    runs = commands.add_parser(
        "runs",
        parents=[db_after],
        help="list runs: id, workflow, status, started, duration",
        description="List the journal's runs, oldest first, one per line.",
    )
    runs.add_argument(
        "--status",
        type=str.upper,
        choices=[s.value for s in RunStatus],
        help="only runs with this status",
    )
    runs.add_argument("--limit", type=_count, metavar="N", help="only the N most recent runs")

    show = commands.add_parser(
        "show",
        parents=[db_after],
        help="show a run: its steps, attempts, durations, streams and error",
        description="Show one run: steps with attempts, status and durations; durable "
        "streams with their lengths; the error of a failed run.",
    )
    show.add_argument("run", metavar="RUN", help="a run id, or an unambiguous prefix of one")

    logs = commands.add_parser(
        "logs",
        parents=[db_after],
        help="print a run's durable stream entries; --tail follows them live",
        description="Print a run's durable stream entries (all its streams, stream by stream, "
        "unless --key). With --tail, keep following new commits, including those of a "
        "runtime in another process, until the run ends.",
    )
    logs.add_argument("run", metavar="RUN", help="a run id, or an unambiguous prefix of one")
    logs.add_argument("--key", type=_stream_key, metavar="K", help="only the stream K")
    logs.add_argument("--step", metavar="S", help="only entries written by step id S")
    logs.add_argument(
        "--tail", action="store_true", help="follow new entries until the run ends (Ctrl-C stops)"
    )
    logs.add_argument(
        "--from",
        dest="from_offset",
        type=_offset,
        default=0,
        metavar="OFFSET",
        help="start at this offset of each stream (default: 0)",
    )
    logs.add_argument("--json", action="store_true", help="one JSON object per entry")
    serve = commands.add_parser(
        "serve",
        parents=[db_after],
        help="serve a journal's runs over HTTP: the chat page, SSE streams, run status",
        description="Serve actorflow.web's app for the journal, on 127.0.0.1 by default: "
        "GET /runs/ID, GET /runs/ID/streams/KEY (Server-Sent Events, resumable), "
        "GET /runs/ID/live and the page at /. Without --workflow it only reads the journal "
        "(no lock), so it can serve one that another process writes. Each --workflow "
        "MODULE:NAME imports a workflow that POST /workflows/NAME may start; the journal is "
        "then opened for writing, and that workflow's unfinished runs resume. "
        "Needs the web extra: pip install 'actorflow[web]'.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, metavar="N", help="TCP port (default: 8000; 0: any)"
    )
    serve.add_argument(
        "--workflow",
        dest="workflows",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="a workflow the page and POST /workflows/NAME may start, e.g. "
        "examples/web_chat.py:chat or myapp.flows:chat (repeatable)",
    )
    serve.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    serve.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on every request (default: "
        "$ACTORFLOW_AUTH_TOKEN); needed to bind to an address other than loopback",
    )
    return parser


# -- reading a journal -------------------------------------------------------------


async def _readonly(db: str, hint: str) -> SQLiteJournal:
    """A read-only journal over ``db`` (not opened yet); ``hint`` says how to get one."""
    if not await anyio.Path(db).exists():
        raise JournalError(f"no journal at {db!r} (no such file); pass --db PATH, {hint}")
    return SQLiteJournal(db, readonly=True)


@contextlib.asynccontextmanager
async def _reading(db: str) -> AsyncIterator[SQLiteJournal]:
    """Open ``db`` read-only: no lock, no file created; a missing file is an error."""
    journal = await _readonly(db, "or run `actorflow demo` to create one")
    await journal.open()
    try:
        yield journal
    finally:
        await journal.close()


async def _resolve(journal: Journal, text: str) -> RunInfo:
    """The run with id ``text``, or the only run whose id starts with it."""
    info = await journal.get_run(text)
    if info is not None:
        return info
    matches = [run for run in await journal.list_runs() if run.run_id.startswith(text)]
    if not matches:
        raise RunNotFound(text)
    if len(matches) > 1:
        shown = ", ".join(run.run_id for run in matches[:3])
        more = ", ..." if len(matches) > 3 else ""
        raise ActorflowError(
            f"{text!r} matches {len(matches)} runs ({shown}{more}); give more of the run id"
        )
    return matches[0]


async def stream_entries(
    journal: Journal,
    run_id: str,
    *,
    key: str | None = None,
    from_offset: int = 0,
    tail: bool = False,
) -> AsyncGenerator[tuple[str, list[StreamEntry]], None]:
    """Yield ``(key, entries)`` pages of one run's durable streams.

    Each stream's entries come in offset order, exactly once. Without ``key``,
    every stream of the run is read, stream by stream (by key) in each pass;
    when tailing, a pass follows each commit, so entries of different streams
    interleave in about the order they were committed. Without ``tail``, what
    is committed now is read and the iterator ends; with ``tail``, it then
    waits for commits (``Journal.wait_for_commit``: a readonly SQLiteJournal
    sees those of another process) and ends once the stream is closed
    (``key``) or the run has ended (every stream).
    """
    offsets: dict[str, int] = {}
    finished: set[str] = set()
    while True:
        seen = journal.committed
        ended = False
        if key is None:
            # The status is read before the streams: if the run had ended by then,
            # the reads below see every entry it will ever have.
            info = await journal.get_run(run_id)
            ended = info is None or info.status.is_terminal
            keys = [stream.key for stream in await journal.list_streams(run_id)]
        else:
            keys = [key]
        for k in keys:
            if k in finished:
                continue
            offset = offsets.get(k, from_offset)
            while True:
                page = await journal.read_stream(run_id, k, offset)
                if page.entries:
                    offset += len(page.entries)
                    yield k, page.entries
                if page.closed:
                    finished.add(k)
                    break
                if not page.entries:
                    break
            offsets[k] = offset
        if not tail or ended or (key is not None and key in finished):
            return
        await journal.wait_for_commit(seen)


# -- commands ------------------------------------------------------------------------


async def _runs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with _reading(args.db) as journal:
        runs = await journal.list_runs(None if args.status is None else RunStatus(args.status))
    if args.limit is not None:
        runs = runs[-args.limit :]
    if not runs:
        if style.tty:
            which = "" if args.status is None else f" {args.status}"
            out.write(style.paint(f"no{which} runs in {args.db}", "dim") + "\n")
        return
    now = time.time()
    rows = [
        [
            run.run_id,
            run.workflow,
            run.status.value,
            format_time(run.started_at),
            format_duration(_elapsed(run, now)),
        ]
        for run in runs
    ]
    lines = style.table(
        ["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION"],
        rows,
        colours=[None, "bold", "status", "dim", None],
    )
    out.write("\n".join(lines) + "\n")


def _elapsed(run: RunInfo, now: float) -> float | None:
    if run.finished_at is not None:
        return run.finished_at - run.started_at
    return now - run.started_at if run.status is RunStatus.RUNNING else None


async def _show(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with _reading(args.db) as journal:
        info = await _resolve(journal, args.run)
        history = await journal.load_history(info.run_id)
        streams = await journal.list_streams(info.run_id)
    if history is not None:
        info = history.info  # the same snapshot as the steps
    state = fold(history)
    now = time.time()
    room = style.width - 11
    lines = [
        _field(style, "run", style.paint(info.run_id, "bold")),
        _field(style, "workflow", info.workflow),
        _field(style, "status", style.status(info.status.value)),
        _field(style, "started", format_time(info.started_at)),
    ]
    if info.finished_at is not None:
        took = format_duration(info.finished_at - info.started_at)
        lines.append(_field(style, "finished", f"{format_time(info.finished_at)} (took {took})"))
    elif info.status is RunStatus.RUNNING:
        lines.append(_field(style, "running", f"for {format_duration(now - info.started_at)}"))
    lines.append(_field(style, "input", style.clip(_decoded(info.input), room)))
    if info.output is not None:
        lines.append(_field(style, "output", style.clip(_decoded(info.output), room)))

    lines += ["", style.paint("steps", "bold")]
    if state.steps:
        lines += _step_lines(style, info, list(state.steps.values()), now)
    else:
        lines.append("  " + style.paint("(none)", "dim"))

    lines += ["", style.paint("streams", "bold")]
    if streams:
        rows = [[s.key, str(s.length), "closed" if s.closed else "open"] for s in streams]
        lines += style.table(["KEY", "ENTRIES", "STATE"], rows, indent="  ", aligned=True)
    else:
        lines.append("  " + style.paint("(none)", "dim"))

    if info.error is not None:
        error = escape(f"{info.error.type}: {info.error.message}")
        lines += ["", _field(style, "error", style.paint(error, "red"))]
        lines += ["  " + style.paint(escape(t), "dim") for t in info.error.traceback.splitlines()]
    out.write("\n".join(lines) + "\n")


def _field(style: Style, name: str, value: str) -> str:
    return f"{style.paint(name.ljust(10), 'dim')}{value}".rstrip()


def _decoded(data: bytes) -> str:
    try:
        return render_value(decode_value(data))
    except msgspec.DecodeError:
        return f"<{len(data)} bytes that are not msgpack>"


def _step_lines(style: Style, run: RunInfo, steps: list[StepRecord], now: float) -> list[str]:
    rows: list[list[str]] = []
    details: list[list[str]] = []
    for step in sorted(steps, key=lambda s: s.position):
        status = step.status
        end: float | None = None
        if status == "RUNNING" and run.status.is_terminal:
            # The run ended while the step ran: it was cancelled with it, or cut off.
            status = "CANCELLED" if run.status is RunStatus.CANCELLED else "INTERRUPTED"
            end = run.finished_at
        elif status == "RUNNING":
            end = now
        last = step.attempts[-1] if step.attempts else None
        if last is not None and last.finished_at is not None:
            end = last.finished_at
        start = step.attempts[0].started_at if step.attempts else None
        took = None if start is None or end is None else end - start
        at = "-" if start is None else "+" + format_duration(start - run.started_at)
        rows.append([step.step_id, status, str(len(step.attempts)), at, format_duration(took)])
        details.append(_attempt_lines(style, step))
    table = style.table(
        ["STEP", "STATUS", "ATTEMPTS", "AT", "DURATION"],
        rows,
        colours=["bold", "status", None, "dim", None],
        indent="  ",
        aligned=True,
    )
    out = [table[0]]
    for line, extra in zip(table[1:], details, strict=True):
        out.append(line)
        out += ["    " + style.paint("└ ", "dim") + d for d in extra]
    return out


def _attempt_lines(style: Style, step: StepRecord) -> list[str]:
    """One line per attempt, for a step that was retried or failed (none otherwise)."""
    if len(step.attempts) < 2 and not any(a.error for a in step.attempts):
        return []
    lines = []
    for attempt in step.attempts:
        why = ""
        if attempt.error is not None:
            what, colour = "failed", "red"
            why = escape(f"{attempt.error.type}: {attempt.error.message}")
        elif attempt.finished_at is not None:
            what, colour = "ok", "green"
        else:
            what, colour = "unfinished", "yellow"
        spent = None if attempt.finished_at is None else attempt.finished_at - attempt.started_at
        shown = style.paint(what.ljust(10), colour)
        lines.append(
            f"attempt {attempt.attempt}  {shown}  {format_duration(spent):>6}  {why}".rstrip()
        )
    return lines


async def _logs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with _reading(args.db) as journal:
        info = await _resolve(journal, args.run)
        run_id = info.run_id
        if args.key is not None and (not args.tail or info.status.is_terminal):
            keys = [s.key for s in await journal.list_streams(run_id)]
            if args.key not in keys:
                have = ", ".join(repr(k) for k in keys) if keys else "none"
                raise ActorflowError(
                    f"run {run_id!r} has no stream {args.key!r} (its streams: {have}); "
                    "leave out --key to print them all"
                )
        line = _log_line(args, style, run_id)
        entries = stream_entries(
            journal, run_id, key=args.key, from_offset=args.from_offset, tail=args.tail
        )
        async with contextlib.aclosing(entries):
            async for key, page in entries:
                text = "".join(line(key, e) for e in page if args.step in (None, e.step_id))
                if text:
                    out.write(text)
                    if args.tail:
                        out.flush()


def _log_line(
    args: argparse.Namespace, style: Style, run_id: str
) -> Callable[[str, StreamEntry], str]:
    if args.json:

        def as_json(key: str, e: StreamEntry) -> str:
            data = {
                "run_id": run_id,
                "key": key,
                "offset": e.offset,
                "step_id": e.step_id,
                "attempt": e.attempt,
                "value": json_value(e.value),
            }
            return _json_line.encode(data).decode() + "\n"

        return as_json
    if not style.tty:

        def as_fields(key: str, e: StreamEntry) -> str:
            return f"{key}\t{e.offset}\t{e.step_id}\t{e.attempt}\t{render_value(e.value)}\n"

        return as_fields
    widths = [0, 0]  # grow as entries come, so a live tail stays aligned

    def as_text(key: str, e: StreamEntry) -> str:
        where = f"{key}:{e.offset}"
        who = e.step_id if e.attempt == 1 else f"{e.step_id}#{e.attempt}"
        widths[0], widths[1] = max(widths[0], len(where)), max(widths[1], len(who))
        return (
            f"{style.paint(where.ljust(widths[0]), 'dim')}  "
            f"{style.paint(who.ljust(widths[1]), 'cyan' if e.attempt == 1 else 'yellow')}  "
            f"{render_value(e.value)}\n"
        )

    return as_text


async def _demo(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    from ._demo import DemoRequest, demo_chat
    from ._runtime import Runtime

    db = args.db
    cli = f"actorflow --db {shlex.quote(db)}"
    async with Runtime(db) as rt:
        handle = await rt.start(demo_chat, DemoRequest(args.prompt, args.pace))
        run_id = handle.run_id
        out.write(f"{style.paint('run', 'dim')}      {style.paint(run_id, 'bold')}\n")
        out.write(f"{style.paint('journal', 'dim')}  {db}\n")
        out.write(f"{style.paint('follow', 'dim')}   {cli} logs {run_id} --tail\n\n")
        out.write(style.paint("live (put_stream):", "bold") + "\n  ")
        out.flush()
        async with handle.subscribe() as live:
            async for message in live:
                out.write(str(message.data))
                out.flush()
        result = await handle.result()
    # The runtime is closed: what follows comes back from the file alone, through a
    # read-only journal, the way `actorflow logs` reads it from another process.
    out.write("\n\n" + style.paint("replayed from the journal file (write_stream):", "bold"))
    out.write("\n  ")
    async with _reading(db) as journal:
        async for _, page in stream_entries(journal, run_id, key="tokens"):
            out.write("".join(str(e.value) for e in page))
    out.write(
        f"\n\n{style.paint('result', 'dim')}   {result['words']} words, "
        f"{result['characters']} characters, journaled in {db}\n\n"
        f"{style.paint('next', 'bold')}\n"
        f"  {cli} show {run_id}\n"
        f"  {cli} logs {run_id} --tail\n"
        f"  {cli} runs\n"
        f"  {style.paint('a slower run to tail from another shell:', 'dim')} "
        f"{cli} demo --pace 0.5\n"
    )


# -- serve -------------------------------------------------------------------------


def _import_workflow(spec: str) -> Workflow[Any, Any]:
    """The workflow named by ``MODULE:NAME`` (a dotted module, or a path to a .py file)."""
    module_name, sep, name = spec.rpartition(":")
    if not sep or not module_name or not name:
        raise ValidationError(
            f"--workflow {spec!r}: give MODULE:NAME, e.g. examples/web_chat.py:chat or "
            "myapp.flows:chat"
        )
    try:
        if module_name.endswith(".py"):
            path = os.path.abspath(module_name)
            if not os.path.isfile(path):
                raise ValidationError(f"--workflow {spec!r}: no such file {module_name!r}")
            unique = "_actorflow_serve_" + os.path.splitext(os.path.basename(path))[0]
            loaded = importlib.util.spec_from_file_location(unique, path)
            if loaded is None or loaded.loader is None:
                raise ValidationError(f"--workflow {spec!r}: cannot load {module_name!r}")
            module = importlib.util.module_from_spec(loaded)
            sys.modules[unique] = module
            loaded.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(
            f"--workflow {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    wf = getattr(module, name, None)
    if not isinstance(wf, Workflow):
        raise ValidationError(
            f"--workflow {spec!r}: {module_name!r} has no @af.workflow named {name!r}"
        )
    return wf


async def _serve(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    try:
        from . import web
        from .web._serve import serve_options
    except ImportError as exc:
        raise ActorflowError(str(exc)) from None
    from ._runtime import Runtime

    security = serve_options(args.host, args.auth_token)

    workflows = [_import_workflow(spec) for spec in args.workflows]
    if workflows:
        journal = SQLiteJournal(args.db)
        mode = "workflows " + ", ".join(wf.name for wf in workflows)
    else:
        journal = await _readonly(
            args.db, "or --workflow MODULE:NAME to serve a workflow (that creates the journal)"
        )
        mode = "read-only"
    async with Runtime(journal) as rt:

        def ready(port: int) -> None:
            host = f"[{args.host}]" if ":" in args.host else args.host
            out.write(f"serving http://{host}:{port}/ (journal {args.db}, {mode}; Ctrl-C stops)\n")
            out.flush()

        await web.serve(
            web.app(rt, workflows=workflows, **security),
            host=args.host,
            port=args.port,
            ready=ready,
        )


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, Style], Any]] = {
    "demo": _demo,
    "runs": _runs,
    "show": _show,
    "logs": _logs,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    0: done. 1: an actorflow error, printed as one line on stderr (no journal
    at the path, not a journal, unknown run, ...). 2: bad arguments. 130:
    interrupted with Ctrl-C, quietly.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    backend = getattr(args, "backend", "asyncio")
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        print(
            "actorflow: error: the trio backend needs trio: pip install 'actorflow[trio]'",
            file=sys.stderr,
        )
        return 1
    out = sys.stdout
    try:
        anyio.run(_COMMANDS[args.command], args, out, Style.detect(out), backend=backend)
        out.flush()
    except ActorflowError as exc:
        print(f"actorflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        # trio delivers Ctrl-C inside the task groups (actorflow serve --backend trio).
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
        return 130
    except BrokenPipeError:
        # The reader went away (`actorflow logs RUN | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
