"""OpenTelemetry: a run's spans, across a restart, in one trace (printed by the console exporter).

    pip install 'actorflow[otel]'
    python examples/otel_console.py [journal.db]

The first runtime runs a step that fails once and is retried, then stops
(as a crash or a deploy would) while the next step runs. A second runtime
opens the same journal and resumes the run. Each life of the run is a span
``run weather``, each step attempt a span under it; both lives share the trace
id that actorflow derives from the run id, so a tracing backend shows the
whole run as one trace.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import actorflow as af
from actorflow.otel import OpenTelemetryInstrument, run_trace_id

RUN_ID = "otel-demo"
first_life = True
summarizing = anyio.Event()


@af.step(retries=2, backoff=af.Backoff(initial=0.05, jitter=0.0))
async def fetch(ctx: af.StepContext, city: str) -> str:
    if ctx.attempt == 1:
        raise ConnectionError("the weather service did not answer")
    return f"sunny in {city}"


@af.step
async def summarize(ctx: af.StepContext, report: str) -> str:
    if first_life:
        summarizing.set()
        await anyio.sleep_forever()  # the runtime stops here
    return report.upper()


@af.workflow
async def weather(ctx: af.WorkflowContext, city: str) -> str:
    report = await ctx.step(fetch, city)
    return await ctx.step(summarize, report)


async def main(db: Path) -> None:
    global first_life
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    counted = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(counted))
    instrument = OpenTelemetryInstrument(provider)

    async with af.Runtime(db, instrument=instrument) as rt:
        await rt.start(weather, "Lisbon", run_id=RUN_ID)
        await summarizing.wait()
    # The runtime closed mid-run: the run is unfinished in the journal.
    first_life = False
    async with af.Runtime(db, instrument=instrument) as rt:  # resumes the run
        answer = await rt.handle(RUN_ID).result()

    spans = counted.get_finished_spans()
    traces = {span.context.trace_id for span in spans}
    lives = sum(span.name == "run weather" for span in spans)
    assert traces == {run_trace_id(RUN_ID)}
    print(f"answer: {answer}")
    print(f"{lives} lives of run {RUN_ID!r} in one trace: {len(spans)} spans")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(main, Path(tmp) / "otel.db")
