"""The command line's arguments: one argparse parser, its usage errors one line."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from .. import __version__
from .._exceptions import ValidationError
from .._validate import validate_key
from ..abc import RunStatus

__all__ = ("DEFAULT_DB", "JOURNAL_ENV", "build_parser", "default_db")

DEFAULT_DB = "./actorflow.db"
#: The environment variable naming the journal when ``--db`` is not given.
JOURNAL_ENV = "ACTORFLOW_JOURNAL"


def default_db() -> str:
    """The journal used without ``--db``: ``$ACTORFLOW_JOURNAL``, else ``./actorflow.db``."""
    return os.environ.get(JOURNAL_ENV) or DEFAULT_DB


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _stream_key(text: str) -> str:
    try:
        return validate_key(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _topic(text: str) -> str:
    try:
        return validate_key(text, "topic")
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


def build_parser() -> argparse.ArgumentParser:
    """The ``actorflow`` parser, with one subparser per command."""
    parser = _Parser(
        prog="actorflow",
        description="Durable workflows whose steps stream output: run the demo, inspect a journal.",
    )
    parser.add_argument(
        "--db",
        default=default_db(),
        metavar="PATH",
        help=f"the SQLite journal (default: ${JOURNAL_ENV}, else {DEFAULT_DB})",
    )
    parser.add_argument(
        "--version", action="version", version=f"actorflow {__version__}", help="print the version"
    )
    # Subcommands accept --db too; SUPPRESS keeps the value given before the subcommand.
    db_after = _Parser(add_help=False)
    db_after.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help="the journal")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[db_after],
        help="stream a simulated LLM's answer durably, kill the worker midway, resume the run",
        description="A worker process runs a simulated LLM workflow (no network) whose step "
        "streams its answer token by token into the journal, while this process reads the "
        "tokens from the file. Midway the worker is killed (SIGKILL); a new worker resumes "
        "the run, and the step runs again as attempt 2. Then the answer, the stream replayed "
        "from the file, and the run's steps and attempts. Each demo is a new run; the "
        "unfinished runs of earlier, interrupted demos are cancelled first.",
    )
    demo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    demo.add_argument("--prompt", default="Why are durable workflows useful?")
    demo.add_argument(
        "--pace",
        type=_pace,
        default=0.05,
        metavar="SECONDS",
        help="wait between tokens (default: 0.05); slow it down to follow it from another shell",
    )
    # The process that `actorflow demo` starts to run the workflow: not for people.
    demo.add_argument("--worker", metavar="RUN", help=argparse.SUPPRESS)

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
    runs.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
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
    logs.add_argument(
        "--live",
        action="store_true",
        help="print the run's live messages (put_stream) instead, as they come, until the run "
        "ends; they are read from NATS (--nats), so the run may execute in another process",
    )
    logs.add_argument(
        "--nats",
        metavar="URL",
        help="the NATS server the run's runtime publishes to (NATSBroker), for --live "
        "(default: $ACTORFLOW_NATS)",
    )
    cancel = commands.add_parser(
        "cancel",
        parents=[db_after],
        help="cancel a run (needs a journal no other process is writing)",
        description="Cancel a run that has not ended: it ends CANCELLED, its open streams "
        "closed. The journal must not be written by a runtime in another process at the "
        "same time (cancel through that application then, e.g. POST /runs/ID/cancel).",
    )
    cancel.add_argument("run", metavar="RUN", help="a run id, or an unambiguous prefix of one")
    send = commands.add_parser(
        "send",
        parents=[db_after],
        help="send a message to a run's inbox (its ctx.recv(topic) receives it)",
        description="Append a message to a run's durable inbox; the run receives it with "
        "ctx.recv(TOPIC) when it runs (now, or when a runtime resumes it). VALUE is JSON "
        "('{\"ok\": true}', 42, '\"text\"'); anything that is not JSON is sent as a "
        "string. The journal must not be written by a runtime in another process at the "
        "same time.",
    )
    send.add_argument("run", metavar="RUN", help="a run id, or an unambiguous prefix of one")
    send.add_argument("value", metavar="VALUE", help="the message: JSON, or else a string")
    send.add_argument(
        "--topic", type=_topic, default="default", metavar="T", help="the topic (default: default)"
    )
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
        "Needs the web extra: pip install '.[web]' in an actorflow checkout.",
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
    serve.add_argument(
        "--manage",
        action="store_true",
        default=None,
        help="let the page and POST /runs/ID/cancel, /runs/ID/send change runs (the "
        "default with --workflow); opens the journal for writing",
    )
    serve.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    serve.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on every request (default: "
        "$ACTORFLOW_AUTH_TOKEN); needed to bind to an address other than loopback",
    )
    serve.add_argument(
        "--nats",
        metavar="URL",
        help="publish and follow live streams through this NATS server (NATSBroker), so "
        "GET /runs/ID/live works for runs other processes execute (default: $ACTORFLOW_NATS)",
    )
    return parser
