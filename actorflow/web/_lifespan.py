"""Opening a runtime for the lifetime of an ASGI application (its lifespan)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ("lifespan", "opening")


def opening(
    rt: Runtime, *, unless_open: bool
) -> Callable[[object], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan that opens ``rt`` at startup and closes it at shutdown.

    With ``unless_open``, a runtime that is already open (``async with rt``
    around the server) is left to whoever opened it.
    """

    @contextlib.asynccontextmanager
    async def run(app: object) -> AsyncIterator[None]:
        if unless_open and rt.is_open:
            yield
            return
        async with rt:
            yield

    return run


def lifespan(rt: Runtime) -> Callable[[object], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan for FastAPI or Starlette that opens ``rt`` and closes it with the app.

    The runtime can then be made, and :func:`app` mounted, at import time::

        rt = af.Runtime(os.environ.get("ACTORFLOW_JOURNAL", "chat.db"))
        api = FastAPI(lifespan=actorflow.web.lifespan(rt))
        api.mount("/af", actorflow.web.app(rt, workflows=[chat]))

    Startup opens the journal and resumes its unfinished runs; shutdown
    cancels whatever still runs (those runs resume at the next startup). With
    a lifespan of your own, open the runtime inside it instead:
    ``async with rt: yield``.

    Raises (at startup):
        JournalLocked: another runtime writes the journal.
        JournalError: the journal cannot be opened.
    """
    return opening(rt, unless_open=False)
