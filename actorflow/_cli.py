"""The ``actorflow`` command line (also ``python -m actorflow``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from ._exceptions import ActorflowError

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorflow", description="Durable workflows whose steps stream output."
    )
    parser.add_argument(
        "--db", default="./actorflow.db", help="the SQLite journal (default: ./actorflow.db)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run a simulated LLM workflow that streams tokens")
    demo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    demo.add_argument("--prompt", default="Why are durable workflows useful?")
    return parser


async def _demo(db: str, prompt: str) -> None:
    from ._demo import demo_chat
    from ._runtime import Runtime

    out = sys.stdout
    async with Runtime(db) as rt:
        handle = await rt.start(demo_chat, prompt)
        out.write(f"run {handle.run_id} started (journal: {db})\n\nlive:    ")
        async with handle.subscribe() as live:
            async for message in live:
                out.write(str(message.data))
                out.flush()
        result = await handle.result()
        out.write("\n\nreplayed from the journal:\n         ")
        async for token in handle.read_stream("tokens"):
            out.write(str(token))
        out.write(
            f"\n\nresult: {result['words']} words, {result['characters']} characters\n\n"
            f"next:   actorflow --db {db} runs\n"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            anyio.run(_demo, args.db, args.prompt, backend=args.backend)
    except ActorflowError as exc:
        print(f"actorflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
