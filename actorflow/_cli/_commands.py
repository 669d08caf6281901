"""The commands that describe a journal's runs (``runs``, ``show``) and ``serve``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from typing import Any, TextIO

import msgspec

from .._codec import decode_value
from .._exceptions import ActorflowError, ValidationError
from .._history import StepRecord, fold
from .._journals._sqlite import SQLiteJournal
from .._live import NATSBroker
from .._registry import Workflow
from ..abc import RunInfo, RunStatus
from ._live import NATS_ENV
from ._reading import reading, readonly_journal, resolve_run
from ._terminal import Style, escape, format_duration, format_time, render_value

__all__ = ("runs", "serve", "show")


async def runs(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    status = None if args.status is None else RunStatus(args.status)
    async with reading(args.db) as journal:
        if args.limit is not None:  # one page of the newest: the others are not read
            found = list(reversed(await journal.page_runs(status, args.workflow, args.limit)))
        else:
            found = await journal.list_runs(status)
    if args.workflow is not None:
        found = [run for run in found if run.workflow == args.workflow]
    if not found:
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
        for run in found
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


async def show(args: argparse.Namespace, out: TextIO, style: Style) -> None:
    async with reading(args.db) as journal:
        info = await resolve_run(journal, args.run)
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
        elif attempt is not step.attempts[-1]:
            what, colour = "cut off", "yellow"  # by a crash: a later attempt started
        else:
            what, colour = "unfinished", "yellow"
        spent = None if attempt.finished_at is None else attempt.finished_at - attempt.started_at
        shown = style.paint(what.ljust(10), colour)
        lines.append(
            f"attempt {attempt.attempt}  {shown}  {format_duration(spent):>6}  {why}".rstrip()
        )
    return lines


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


async def serve(args: argparse.Namespace, out: TextIO, style: Style) -> int:
    """Serve until Ctrl-C (or SIGTERM); return 130, the exit status of an interrupt."""
    try:
        from .. import web
        from ..web._serve import serve_options
    except ImportError as exc:
        raise ActorflowError(str(exc)) from None
    from .._runtime import Runtime

    security = serve_options(args.host, args.auth_token)
    workflows = [_import_workflow(spec) for spec in args.workflows]
    if workflows:
        journal = SQLiteJournal(args.db)
        mode = "workflows " + ", ".join(wf.name for wf in workflows)
    elif args.manage:
        await readonly_journal(args.db, "or --workflow MODULE:NAME (that creates the journal)")
        journal = SQLiteJournal(args.db)
        mode = "managing runs"
    else:
        journal = await readonly_journal(
            args.db, "or --workflow MODULE:NAME to serve a workflow (that creates the journal)"
        )
        mode = "read-only"
    nats = args.nats or os.environ.get(NATS_ENV)
    broker = None if not nats else NATSBroker(nats, name="actorflow serve")
    if nats:
        mode += f"; live streams through NATS at {nats}"
    async with Runtime(journal, broker=broker) as rt:

        def ready(port: int) -> None:
            host = f"[{args.host}]" if ":" in args.host else args.host
            out.write(f"serving http://{host}:{port}/ (journal {args.db}, {mode}; Ctrl-C stops)\n")
            out.flush()

        await web.serve(
            web.app(rt, workflows=workflows, manage=args.manage, **security),
            host=args.host,
            port=args.port,
            ready=ready,
        )
    # web.serve returns only once a signal has stopped it (it catches the signal
    # to shut down gracefully): exit as an interrupted command does.
    return 130
