"""The cost of observing: sequential steps/s with logging at INFO and with OpenTelemetry.

    python benchmarks/bench_observe.py [--backend asyncio|trio] [--json out.json]
                                       [--baseline old.json]

Measures sequential steps/s (one run of 2,000 steps that each return their
input) and runs/s (500 runs of one step, one after the other), on the
in-memory journal (where the runtime's own cost is all there is, so an
instrument's share is the largest) and on a SQLite journal (synchronous=NORMAL,
temp dir), under four set-ups:

  - ``bare``: a runtime with no hooks at all (the built-in logging instrument
    left out by replacing ``actorflow._runtime.LOGGING`` with ``None``, which
    only a benchmark may do);
  - ``default``: the built-in logging instrument with the ``actorflow`` logger
    at WARNING, Python's default: what every application pays;
  - ``info``: the ``actorflow`` logger at INFO (DEBUG for nothing), with a
    handler that formats every record and writes it to /dev/null;
  - ``otel``: ``actorflow.otel.OpenTelemetryInstrument`` on an SDK
    ``TracerProvider`` with no span processor (a no-op exporter: spans are
    made, attributed and ended, then dropped); logging at WARNING;
  - ``otel_export``: the same, the provider's ``SimpleSpanProcessor``
    exporting each span to an ``InMemorySpanExporter`` (cleared after each
    measure).

Ratios are set-up / bare rates (targets: info >= 0.9, otel >= 0.7 of
sequential steps/s). Set-ups alternate within a round, 1 warm-up round then 7
rounds; a ratio is the median over the rounds of the set-up's rate against the
bare rate of the same round; the bare rate is over the total time of its
rounds. On a shared machine the figures move with the load: run it several
times.

An OpenTelemetry SDK span costs tens of microseconds to start and end
(attributes, sampler, ids, the processor), about what a whole step costs on
the in-memory journal, so there the OTel ratio is far below the SQLite one,
where a step's commit dominates.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _report import add_report_args, load_baseline, save, table

import actorflow as af
import actorflow._runtime as runtime_module
from actorflow._logging import LOGGING

STEPS = 2_000
RUNS = 500
ROUNDS = 7


@af.step
async def noop(ctx: af.StepContext, i: int) -> int:
    return i


@af.workflow
async def many_steps(ctx: af.WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.step(noop, i)
    return total


async def sequential(journal: Any, instrument: Any) -> float:
    async with af.Runtime(journal, instrument=instrument) as rt:
        t0 = time.perf_counter()
        await rt.run(many_steps, STEPS)
        return time.perf_counter() - t0


async def one_step_runs(journal: Any, instrument: Any) -> float:
    async with af.Runtime(journal, instrument=instrument) as rt:
        t0 = time.perf_counter()
        for _ in range(RUNS):
            await rt.run(many_steps, 1)
        return time.perf_counter() - t0


class SetUp:
    """How one set-up is entered and left around each measure."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.instrument: Any = None
        self.exporter: Any = None
        self._handler: logging.Handler | None = None
        self._sink: Any = None

    def enter(self) -> None:
        logger = logging.getLogger("actorflow")
        runtime_module.LOGGING = None if self.name == "bare" else LOGGING  # type: ignore[assignment]
        logger.setLevel(logging.INFO if self.name == "info" else logging.WARNING)
        if self.name == "info":
            self._sink = open(os.devnull, "w")  # noqa: SIM115 - closed in leave()
            self._handler = logging.StreamHandler(self._sink)
            self._handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            logger.addHandler(self._handler)
        if self.name.startswith("otel"):
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            from actorflow.otel import OpenTelemetryInstrument

            provider = TracerProvider()
            if self.name == "otel_export":
                self.exporter = InMemorySpanExporter()
                provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self.instrument = OpenTelemetryInstrument(provider)

    def leave(self) -> None:
        logger = logging.getLogger("actorflow")
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._sink.close()
            self._handler = self._sink = None
        if self.exporter is not None:
            self.exporter.clear()
        runtime_module.LOGGING = LOGGING
        logger.setLevel(logging.NOTSET)


def measure(
    backend: str, journal: Callable[[], Any], bench: Any, setups: list[SetUp]
) -> dict[str, list[float]]:
    """Seconds per set-up in each of ROUNDS rounds, set-ups alternating within a round."""
    spent: dict[str, list[float]] = {s.name: [] for s in setups}
    for round_ in range(ROUNDS + 1):
        for setup in setups:
            setup.enter()
            try:
                elapsed = anyio.run(bench, journal(), setup.instrument, backend=backend)
            finally:
                setup.leave()
            if round_:  # the first round warms up
                spent[setup.name].append(elapsed)
    return spent


def run(backend: str) -> dict[str, float]:
    setups = [SetUp(name) for name in ("bare", "default", "info", "otel", "otel_export")]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = iter(range(1_000_000))
        journals: dict[str, Callable[[], Any]] = {
            "memory": af.MemoryJournal,
            "sqlite": lambda: Path(tmp) / f"j{next(files)}.db",
        }
        for jname, journal in journals.items():
            for what, bench, count in (
                ("steps", sequential, STEPS),
                ("runs", one_step_runs, RUNS),
            ):
                spent = measure(backend, journal, bench, setups)
                bare = spent["bare"]
                results[f"{jname}_{what}_per_s_bare"] = ROUNDS * count / sum(bare)
                for setup in setups[1:]:
                    # Each round's set-up against the bare run next to it, so a
                    # swing in the machine's load hits both sides of a ratio.
                    ratios = [b / t for b, t in zip(bare, spent[setup.name], strict=True)]
                    results[f"{jname}_{what}_ratio_{setup.name}"] = statistics.median(ratios)
    return results


TARGETS = {
    "memory_steps_ratio_info": (">=", 0.9),
    "memory_steps_ratio_otel": (">=", 0.7),
    "sqlite_steps_ratio_info": (">=", 0.9),
    "sqlite_steps_ratio_otel": (">=", 0.7),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_args(parser)
    args = parser.parse_args()
    results = run(args.backend)
    print(f"backend: {args.backend}; {STEPS} sequential steps, {RUNS} one-step runs")
    print(table(results, load_baseline(args.baseline), TARGETS))
    save(results, args.json)


if __name__ == "__main__":
    main()
