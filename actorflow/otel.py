"""OpenTelemetry spans for runs and step attempts, one trace per run across crashes.

Use it as ``Runtime(instrument=OpenTelemetryInstrument())``; it needs the
``otel`` extra (``pip install 'actorflow[otel]'``: opentelemetry-api and
-sdk). Each life of a run in a runtime (from its start, or its resumption
after a restart, to its end or its runtime closing) is a span ``run
<workflow>``; each attempt of a step is a span ``step <step_id>`` under it.
Attributes: ``actorflow.workflow``, ``actorflow.run_id``, ``actorflow.step_id``,
``actorflow.attempt``, ``actorflow.resumed`` and ``actorflow.outcome``
(COMPLETED, FAILED, CANCELLED or ``stopped`` for a run; ``completed``,
``retried``, ``gave_up``, ``cancelled`` or ``stopped`` for an attempt). A
failed attempt records its exception and sets the span's status to ERROR; a
failed run records its error as an ``exception`` event.

One trace per run, across crashes and processes, with nothing stored: the
trace id is derived from the run id (a hash), and every life's run span is a
child of one span id also derived from it, which no process ever ends. So a
run resumed after a crash, or by another worker, lands in the trace of its
first life, whichever process runs it, and the journal needs no trace record.
A run started while a span is current (an HTTP request's, say) gets a span
link to it. The derived root is marked sampled, so a run's spans are recorded
whatever the provider's root sampler decides.

While a run's body and a step's attempt run, their span is the current span,
so spans that your code makes inside a workflow or a step nest under them.
"""

from __future__ import annotations

import hashlib
from contextvars import Token

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "actorflow.otel needs OpenTelemetry; install the otel extra: pip install 'actorflow[otel]'"
    ) from exc

import attrs

from . import __version__
from .abc import Instrument
from .records import ErrorInfo

__all__ = ("OpenTelemetryInstrument", "run_trace_id")

_TRACER_NAME = "actorflow"
_Token = Token[otel_context.Context]


def _digest(run_id: str) -> bytes:
    return hashlib.sha256(b"actorflow run " + run_id.encode("utf-8", "surrogatepass")).digest()


def run_trace_id(run_id: str) -> int:
    """The trace id of every span of run ``run_id`` (a 128-bit int derived from the id)."""
    return int.from_bytes(_digest(run_id)[:16], "big") or 1


def _run_root(run_id: str) -> trace.NonRecordingSpan:
    digest = _digest(run_id)
    return trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=int.from_bytes(digest[:16], "big") or 1,
            span_id=int.from_bytes(digest[16:24], "big") or 1,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )


@attrs.define(eq=False)
class _Life:
    """The span of one life of a run, and its open attempts' spans."""

    span: trace.Span
    token: _Token
    # The context with the run's span current: every attempt's parent.
    context: otel_context.Context
    steps: dict[tuple[str, int], tuple[trace.Span, _Token]] = attrs.field(factory=dict)


class OpenTelemetryInstrument(Instrument):
    """Spans for runs and step attempts, one trace per run (see the module docstring).

    Args:
        tracer_provider: where spans go; default: the global one
            (``opentelemetry.trace.set_tracer_provider``).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_TRACER_NAME, __version__, tracer_provider)
        # Invariant: touched only in the event loop's thread (hooks run there).
        self._lives: dict[str, _Life] = {}

    def __repr__(self) -> str:
        return f"<OpenTelemetryInstrument open_runs={len(self._lives)}>"

    def run_started(self, run_id: str, workflow: str, *, resumed: bool) -> None:
        caller = trace.get_current_span().get_span_context()
        links = [trace.Link(caller)] if caller.is_valid and not resumed else None
        span = self._tracer.start_span(
            f"run {workflow}",
            context=trace.set_span_in_context(_run_root(run_id)),
            links=links,
            attributes={
                "actorflow.workflow": workflow,
                "actorflow.run_id": run_id,
                "actorflow.resumed": resumed,
            },
        )
        # Current while the body runs (the run's own task): the user's spans nest here.
        context = trace.set_span_in_context(span)
        self._lives[run_id] = _Life(span, otel_context.attach(context), context)

    def run_finished(
        self, run_id: str, workflow: str, status: str, error: ErrorInfo | None
    ) -> None:
        life = self._lives.pop(run_id, None)
        if life is None:
            return
        _end_attempts(life, "cancelled" if status == "CANCELLED" else "stopped")
        span = life.span
        span.set_attribute("actorflow.outcome", status)
        if error is not None:
            span.add_event(
                "exception",
                {
                    "exception.type": error.type,
                    "exception.message": error.message,
                    "exception.stacktrace": error.traceback,
                },
            )
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{error.type}: {error.message}"))
        _detach(life.token)
        span.end()

    def run_stopped(self, run_id: str, workflow: str) -> None:
        life = self._lives.pop(run_id, None)
        if life is None:
            return
        _end_attempts(life, "stopped")
        life.span.set_attribute("actorflow.outcome", "stopped")
        _detach(life.token)
        life.span.end()

    def step_started(self, run_id: str, step_id: str, attempt: int) -> None:
        life = self._lives.get(run_id)
        if life is None:
            return
        span = self._tracer.start_span(
            f"step {step_id}",
            context=life.context,
            attributes={
                "actorflow.run_id": run_id,
                "actorflow.step_id": step_id,
                "actorflow.attempt": attempt,
            },
        )
        # Current while the attempt runs (started and ended in the same task).
        life.steps[step_id, attempt] = span, otel_context.attach(trace.set_span_in_context(span))

    def step_finished(self, run_id: str, step_id: str, attempt: int) -> None:
        life = self._lives.get(run_id)
        found = None if life is None else life.steps.pop((step_id, attempt), None)
        if found is not None:
            span, token = found
            span.set_attribute("actorflow.outcome", "completed")
            _detach(token)
            span.end()

    def step_failed(
        self, run_id: str, step_id: str, attempt: int, error: BaseException, retry_in: float | None
    ) -> None:
        life = self._lives.get(run_id)
        found = None if life is None else life.steps.pop((step_id, attempt), None)
        if found is None:
            return
        span, token = found
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.set_attribute("actorflow.outcome", "gave_up" if retry_in is None else "retried")
        if retry_in is not None:
            span.set_attribute("actorflow.retry_in", retry_in)
        _detach(token)
        span.end()

    def heartbeat_timeout(self, run_id: str, step_id: str, attempt: int, timeout: float) -> None:
        life = self._lives.get(run_id)
        found = None if life is None else life.steps.get((step_id, attempt))
        if found is not None:
            found[0].add_event("heartbeat timeout", {"actorflow.heartbeat_timeout": timeout})


def _end_attempts(life: _Life, outcome: str) -> None:
    """End the spans of attempts cut off by their run's end (a cancel) or its runtime closing."""
    for span, _ in life.steps.values():
        span.set_attribute("actorflow.outcome", outcome)
        span.end()
    life.steps.clear()


def _detach(token: _Token) -> None:
    # Every token is detached in the task that attached it: a run's hooks all
    # run in its task, and an attempt's in the task that runs the attempt.
    otel_context.detach(token)
