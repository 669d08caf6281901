"""actorflow.otel: spans for runs and step attempts, one trace per run across lives."""

from __future__ import annotations

import anyio
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import actorflow as af
from actorflow.otel import OpenTelemetryInstrument, run_trace_id

FAST = af.Backoff(initial=0.25, factor=2.0, jitter=0.0)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


@af.step(retries=3, backoff=FAST)
async def otel_flaky(ctx: af.StepContext, fail_times: int) -> str:
    if ctx.attempt <= fail_times:
        raise ConnectionError(f"attempt {ctx.attempt} refused")
    return "ok"


@af.workflow
async def otel_flow(ctx: af.WorkflowContext, fail_times: int) -> str:
    return await ctx.step(otel_flaky, fail_times)


@pytest.mark.virtual_time
async def test_a_retried_step_makes_one_span_per_attempt_under_its_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with af.Runtime(instrument=OpenTelemetryInstrument(provider)) as rt:
        handle = await rt.start(otel_flow, 2)
        assert await handle.result() == "ok"
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "run otel_flow")
    steps = by_name(spans, "step otel_flaky")
    assert len(spans) == 4
    assert dict(run.attributes or {}) == {
        "actorflow.workflow": "otel_flow",
        "actorflow.run_id": handle.run_id,
        "actorflow.resumed": False,
        "actorflow.outcome": "COMPLETED",
    }
    assert run.status.status_code is trace.StatusCode.UNSET
    assert [s.attributes["actorflow.attempt"] for s in steps] == [1, 2, 3]  # type: ignore[index]
    assert [s.attributes["actorflow.outcome"] for s in steps] == [  # type: ignore[index]
        "retried",
        "retried",
        "completed",
    ]
    assert [s.status.status_code for s in steps] == [
        trace.StatusCode.ERROR,
        trace.StatusCode.ERROR,
        trace.StatusCode.UNSET,
    ]
    assert steps[0].events[0].name == "exception"
    assert steps[0].events[0].attributes["exception.message"] == "attempt 1 refused"  # type: ignore[index]
    assert steps[1].attributes["actorflow.retry_in"] == 0.5  # type: ignore[index]
    for span in spans:
        assert span.context.trace_id == run_trace_id(handle.run_id)
    for step in steps:
        assert step.parent is not None
        assert step.parent.span_id == run.context.span_id


@pytest.mark.virtual_time
async def test_a_failed_run_records_its_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with af.Runtime(instrument=OpenTelemetryInstrument(provider)) as rt:
        with pytest.raises(af.RunFailed):
            await rt.run(otel_flow, 10)
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "run otel_flow")
    assert run.attributes["actorflow.outcome"] == "FAILED"  # type: ignore[index]
    assert run.status.status_code is trace.StatusCode.ERROR
    assert run.status.description is not None
    assert run.status.description.startswith("actorflow.StepFailed: step 'otel_flaky' failed")
    (event,) = run.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "actorflow.StepFailed"  # type: ignore[index]
    last = by_name(spans, "step otel_flaky")[-1]
    assert last.attributes["actorflow.outcome"] == "gave_up"  # type: ignore[index]


entered = anyio.Event()
release = anyio.Event()
user_provider = TracerProvider()


@af.step
async def otel_blocks(ctx: af.StepContext, _: None) -> str:
    entered.set()
    await release.wait()
    # A span of the user's code nests under the attempt's span.
    with user_provider.get_tracer("user").start_as_current_span("user work"):
        pass
    return "done"


@af.workflow
async def otel_blocks_flow(ctx: af.WorkflowContext, _: None) -> str:
    return await ctx.step(otel_blocks, None)


async def test_a_run_resumed_after_a_restart_continues_its_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    global entered, release, user_provider
    entered, release, user_provider = anyio.Event(), anyio.Event(), provider
    instrument = OpenTelemetryInstrument(provider)
    journal = af.MemoryJournal()
    caller = provider.get_tracer("test").start_span("request")
    with trace.use_span(caller, end_on_exit=True):
        async with af.Runtime(journal, instrument=instrument) as rt:
            await rt.start(otel_blocks_flow, None, run_id="otel-resumed")
            await entered.wait()
    first = exporter.get_finished_spans()
    exporter.clear()
    entered = anyio.Event()
    release.set()
    async with af.Runtime(journal, instrument=OpenTelemetryInstrument(provider)) as rt:
        assert await rt.handle("otel-resumed").result() == "done"
    second = exporter.get_finished_spans()

    (run1,) = by_name(first, "run otel_blocks_flow")
    (step1,) = by_name(first, "step otel_blocks")
    assert run1.attributes["actorflow.outcome"] == "stopped"  # type: ignore[index]
    assert step1.attributes["actorflow.outcome"] == "stopped"  # type: ignore[index]
    assert [link.context.span_id for link in run1.links] == [caller.get_span_context().span_id]

    (run2,) = by_name(second, "run otel_blocks_flow")
    (step2,) = by_name(second, "step otel_blocks")
    assert run2.attributes["actorflow.resumed"] is True  # type: ignore[index]
    assert run2.attributes["actorflow.outcome"] == "COMPLETED"  # type: ignore[index]
    assert step2.attributes["actorflow.attempt"] == 2  # type: ignore[index]
    assert run2.context.trace_id == run1.context.trace_id == run_trace_id("otel-resumed")
    assert run1.parent is not None
    assert run2.parent is not None
    assert run2.parent.span_id == run1.parent.span_id  # both lives under one derived root
    (user,) = by_name(second, "user work")
    assert user.parent is not None
    assert user.parent.span_id == step2.context.span_id


@af.step
def otel_thread_step(ctx: af.ThreadStepContext, _: None) -> str:
    with user_provider.get_tracer("user").start_as_current_span("thread work"):
        pass
    return "done"


@af.workflow
async def otel_thread_flow(ctx: af.WorkflowContext, _: None) -> str:
    with user_provider.get_tracer("user").start_as_current_span("body work"):
        pass
    return await ctx.step(otel_thread_step, None)


async def test_spans_made_in_a_body_and_in_a_thread_step_nest_under_theirs(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    global user_provider
    user_provider = provider
    async with af.Runtime(instrument=OpenTelemetryInstrument(provider)) as rt:
        assert await rt.run(otel_thread_flow, None) == "done"
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "run otel_thread_flow")
    (step,) = by_name(spans, "step otel_thread_step")
    (body,) = by_name(spans, "body work")
    (thread,) = by_name(spans, "thread work")
    assert body.parent is not None
    assert body.parent.span_id == run.context.span_id
    assert thread.parent is not None
    assert thread.parent.span_id == step.context.span_id
