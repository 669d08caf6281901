"""A web app whose workers share one SQLite journal: ``uvicorn web_workers_app:api --workers 2``.

The journal's path comes from ``ACTORFLOW_TEST_DB``. Each worker process
opens its own runtime on it (the first writes and executes; the other asks it
and waits to take over). ``GET /whoami`` says which process answered.
"""

from __future__ import annotations

import os

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import actorflow as af
from actorflow import web


@af.step
async def ww_words(ctx: af.StepContext, text: str) -> int:
    for word in text.split():
        await ctx.write_stream("words", word)
        await anyio.sleep(0.001)
    return len(text.split())


@af.workflow
async def ww_count(ctx: af.WorkflowContext, text: str) -> int:
    return await ctx.step(ww_words, text)


rt = af.Runtime(os.environ["ACTORFLOW_TEST_DB"])


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid(), "writes": not rt.journal.readonly})


api = Starlette(
    routes=[
        Route("/whoami", whoami),
        Mount("/", web.app(rt, workflows=[ww_count], allowed_hosts=["127.0.0.1:*", "*"])),
    ],
    lifespan=web.lifespan(rt),
)
