"""Run management over HTTP: list runs, a run's step timeline, cancel, send.

``GET /runs`` and ``GET /runs/{id}/steps`` only read the journal.
``POST /runs/{id}/cancel`` and ``POST /runs/{id}/send`` change runs, so they
answer only when the app allows it (``app(..., manage=True)``, the default
when the app may start workflows); they pass the guard's checks on
state-changing requests (Host, ``auth``, JSON body, Origin) like every POST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .._codec import decode_value
from .._exceptions import RunNotFound, ValidationError
from .._graph import CompiledGraph
from .._history import StepRecord, fold
from .._registry import registered_workflows
from .._validate import validate_key
from ..abc import RunInfo, RunStatus
from ..records import ErrorInfo
from ._http import Forbidden, _json_response, _read_body
from ._sse import _json

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ("Management",)

#: ``GET /runs`` answers at most this many runs per page.
MAX_PAGE = 500
_DEFAULT_PAGE = 50


class _SendRequest(msgspec.Struct, forbid_unknown_fields=True):
    value: Any = None
    topic: str = "default"


@attrs.define(eq=False)
class Management:
    """The run management routes over one runtime."""

    rt: Runtime
    allowed: bool
    max_body: int

    def _check_allowed(self, request: Request) -> None:
        if not self.allowed:
            raise Forbidden(
                f"{request.method} {request.url.path!r}: this app does not change runs; "
                "build it with app(..., manage=True) (actorflow serve --manage)"
            )

    async def list_runs(self, request: Request) -> Response:
        """``GET /runs?status=&workflow=&limit=&cursor=``: newest first, one page."""
        query = request.query_params
        status = query.get("status")
        wanted: RunStatus | None = None
        if status:
            try:
                wanted = RunStatus(status.upper())
            except ValueError:
                raise ValidationError(
                    f"unknown run status {status!r}; use one of "
                    + ", ".join(s.value for s in RunStatus)
                ) from None
        workflow = query.get("workflow") or None
        limit = _bounded_int(query.get("limit"), "limit", _DEFAULT_PAGE, 1, MAX_PAGE)
        # The cursor is the id of the last run of the page: the next page holds
        # the runs started before it. Runs are ordered by start, which never
        # changes, so paging a status filter neither repeats nor skips a run
        # whose status changes between pages. A page costs what it holds.
        cursor = query.get("cursor") or None
        if cursor is not None and await self.rt.journal.get_run(cursor) is None:
            raise ValidationError(
                f"cursor {cursor!r} is no run of this journal; pass the next_cursor of a page"
            )
        runs = await self.rt.page_runs(wanted, workflow=workflow, before=cursor, limit=limit + 1)
        more = len(runs) > limit
        page = [run_summary(info) for info in runs[:limit]]
        next_cursor = runs[limit - 1].run_id if more else None
        return _json_response(
            {
                "runs": page,
                "next_cursor": next_cursor,
                "now": self.rt.clock.time(),
                "manage": self.allowed,
            }
        )

    async def steps(self, request: Request) -> Response:
        """``GET /runs/{id}/steps``: the step timeline, events, messages and error of a run."""
        run_id = request.path_params["run_id"]
        history = await self.rt.journal.load_history(run_id)
        if history is None:
            raise RunNotFound(run_id)
        info = history.info
        state = fold(history)
        graph = registered_workflows().get(info.workflow)
        body = {
            "run": run_summary(info),
            "steps": [
                _step_body(step, info)
                for step in sorted(state.steps.values(), key=lambda s: s.position)
            ],
            "events": {key: _value(data) for key, data in sorted(state.events.items())},
            "messages": {
                topic: [_value(v) for v in values] for topic, values in state.inbox.items()
            },
            "error": _error(info.error, traceback=True),
            "mermaid": graph.to_mermaid() if isinstance(graph, CompiledGraph) else None,
            "now": self.rt.clock.time(),
        }
        return _json_response(body)

    async def cancel(self, request: Request) -> Response:
        """``POST /runs/{id}/cancel``: cancel the run; answer once it has ended."""
        self._check_allowed(request)
        run_id = request.path_params["run_id"]
        await self.rt.get_run(run_id)  # a 404 before anything is written
        await self.rt.cancel(run_id)
        info = await self.rt.get_run(run_id)
        return _json_response({"run_id": run_id, "status": info.status.value})

    async def send(self, request: Request) -> Response:
        """``POST /runs/{id}/send`` with ``{"value": ..., "topic": "default"}``."""
        self._check_allowed(request)
        run_id = request.path_params["run_id"]
        body = await _read_body(request, self.max_body)
        try:
            req = msgspec.json.decode(body or b"{}", type=_SendRequest)
        except msgspec.ValidationError as exc:
            raise ValidationError(
                f"bad request body for sending to run {run_id!r}: {exc}; send JSON "
                '{"value": <the message>, "topic": <optional topic>}'
            ) from None
        except msgspec.DecodeError as exc:
            raise ValidationError(f"the request body is not valid JSON ({exc})") from None
        except RecursionError:
            raise ValidationError(
                "the request body is nested too deeply to decode; send a flatter value"
            ) from None
        validate_key(req.topic, "topic")
        await self.rt.send(run_id, req.value, topic=req.topic)
        return _json_response({"run_id": run_id, "topic": req.topic}, status_code=202)


def _bounded_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError(f"?{name}= must be an int between {low} and {high}, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValidationError(f"?{name}= must be an int between {low} and {high}, not {value}")
    return value


def run_summary(info: RunInfo) -> dict[str, Any]:
    """A run as one item of ``GET /runs``."""
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "status": info.status.value,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "error": _error(info.error),
    }


def _error(error: ErrorInfo | None, *, traceback: bool = False) -> dict[str, str] | None:
    if error is None:
        return None
    body = {"type": error.type, "message": error.message}
    if traceback:
        body["traceback"] = error.traceback
    return body


def _value(data: bytes) -> Any:
    """A journaled value as JSON can carry it, or its repr when it cannot."""
    try:
        value = decode_value(data)
    except (msgspec.DecodeError, ValueError):
        return f"<{len(data)} bytes that are not msgpack>"
    try:
        _json.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return repr(value)[:1000]
    return value


def _step_body(step: StepRecord, run: RunInfo) -> dict[str, Any]:
    status = step.status
    if status == "RUNNING" and run.status.is_terminal:
        # The run ended while the step ran: it was cancelled with it, or cut off.
        status = "CANCELLED" if run.status is RunStatus.CANCELLED else "INTERRUPTED"
    attempts = []
    for attempt in step.attempts:
        if attempt.error is not None:
            outcome = "failed"
        elif attempt.finished_at is not None:
            outcome = "ok"
        elif attempt is not step.attempts[-1]:
            outcome = "cut off"  # by a crash: a later attempt started
        else:
            outcome = status.lower()
        attempts.append(
            {
                "attempt": attempt.attempt,
                "started_at": attempt.started_at,
                "finished_at": attempt.finished_at,
                "outcome": outcome,
                "error": _error(attempt.error, traceback=True),
            }
        )
    return {
        "position": step.position,
        "step_id": step.step_id,
        "name": step.name,
        "status": status,
        "attempts": attempts,
        "gave_up": _error(step.gave_up),
    }
