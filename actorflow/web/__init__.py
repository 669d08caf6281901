"""Stream runs to browsers and HTTP clients as Server-Sent Events (SSE).

Needs the ``web`` extra (``pip install '.[web]'`` in a checkout: Starlette, plus
uvicorn to serve). Two entry points:

- :func:`app` builds an ASGI application over a :class:`~actorflow.Runtime`,
  mountable in Starlette or FastAPI, with these routes:

  ``GET /runs/{run_id}/streams/{key}``
      A durable stream as SSE. Each entry is a ``message`` event whose ``id``
      is its offset and whose data is ``{"offset", "value", "step_id",
      "attempt"}``. A reconnect with ``Last-Event-ID: N`` (what browsers'
      ``EventSource`` sends by itself) resumes at offset ``N + 1``;
      ``?from=N`` starts at offset ``N``. Before the first entry of a retried
      step's new attempt comes a ``restart`` event (no ``id``) with
      ``{"step_id", "attempt", "offset", "from_offset"}``: that step's entries
      from ``from_offset`` belong to the attempt it supersedes. When the
      stream is closed and its run has ended, a final ``end`` event carries
      ``{"run_id", "status", "error"}``.
  ``GET /runs/{run_id}/live``
      The run's live stream (``ctx.put_stream``) as SSE; ``?subject=`` is a
      NATS-style pattern relative to the run (``*``, ``generate``, ``>``: the
      default). Messages are not journaled, so this one does not resume; it
      ends with the same ``end`` event when the run ends.
  ``GET /runs/{run_id}``
      The run's status as JSON, with its output or error and its streams.
  ``POST /workflows/{name}``
      Starts a run of a workflow listed in ``workflows=``; the body is JSON
      ``{"input": ..., "run_id": ...}`` (both optional). Answers ``202`` with
      the run's id and links, and a ``Location`` that is the absolute path of
      its status (``/runs/{run_id}``, under the app's mount point).
  ``GET /workflows``
      The names of the workflows that may be started.
  ``GET /runs``
      Runs, newest first, a page at a time: ``?status=``, ``?workflow=``,
      ``?limit=`` (1-500, default 50), ``?cursor=`` (the ``next_cursor`` of the
      page before); ``manage`` says whether runs may be cancelled and sent to.
  ``GET /runs/{run_id}/steps``
      The run's steps and their attempts (with errors and tracebacks), events,
      messages, error, and a registered graph's ``mermaid`` shape.
  ``POST /runs/{run_id}/cancel``, ``POST /runs/{run_id}/send``
      Cancel a run; send it ``{"value": ..., "topic": ...}``. Only when the app
      manages runs (``manage=True``, the default with ``workflows``); 403 otherwise.
  ``GET /``
      The dashboard: runs as they start and end, a run's step timeline,
      streams, events and errors (``page=False`` drops it).

- :func:`sse` turns any async iterator (durable entries, live messages, or
  your own values) into a streaming SSE response for your own routes.
- :func:`lifespan` opens a runtime when a FastAPI or Starlette app starts and
  closes it when it stops, so the runtime can be made, and :func:`app`
  mounted, at import time.

Every value is encoded as JSON with msgspec. The journal stores msgpack,
which holds a few values JSON cannot (a dict with tuple keys, an extension
type); those are not sent, and do not stop anything either: such a stream entry
becomes an ``entry-error`` event with the entry's ``id`` and ``{"offset",
"step_id", "attempt", "error": {"type", "message"}}`` (no ``value``), so the
stream, and a reconnect after it, go on; such a live message becomes an
``entry-error`` event with its fields but ``data``; and such a run output
is ``"output": null`` with an ``"output_error"`` in ``GET /runs/{run_id}``.

Who may call it: a request whose ``Host`` is not one of ``allowed_hosts``
(default: ``localhost``, ``127.0.0.1``, ``[::1]``, any port) is refused with
``403``, so a page on another site whose DNS name resolves to this server
cannot read it (DNS rebinding). ``auth``, when given, runs on every request
next (:func:`bearer_token` checks ``Authorization: Bearer <token>``). A ``POST``
must declare its body ``application/json`` (``415`` otherwise: an HTML form
cannot) and, when it has an ``Origin``, come from the server's own origin or
one of ``allowed_origins`` (``403`` otherwise). ``actorflow serve`` binds to
loopback unless it is given an auth token.

An unknown run or workflow is a ``404``, bad input a ``400`` (a body nested
too deeply to decode included), both with a JSON body
``{"error": {"type", "message"}}``; an unexpected error is a ``500`` with the
same body and no traceback. A client that disconnects stops its reader at once.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401 - checked first, for a clear error
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "actorflow.web needs Starlette; install the web extra: pip install '.[web]' in an "
        "actorflow checkout, or pip install 'actorflow[web] @ git+<clone URL>'"
    ) from exc

from ._app import app
from ._guard import bearer_token
from ._http import Forbidden, RuntimeNotOpen, Unauthorized
from ._lifespan import lifespan
from ._serve import serve
from ._sse import Event, EventStreamResponse, encode_event, sse

__all__ = (
    "Event",
    "EventStreamResponse",
    "Forbidden",
    "RuntimeNotOpen",
    "Unauthorized",
    "app",
    "bearer_token",
    "encode_event",
    "lifespan",
    "serve",
    "sse",
)
