"""A complete FastAPI app over a runtime: made at import time, opened by the lifespan.

Run it with ``uvicorn examples.fastapi_chat:api`` (from the checkout) or
``python examples/fastapi_chat.py``. ``POST /chat`` with ``{"prompt": "hi"}``
starts a run; ``GET /chat/{run_id}`` streams its tokens as Server-Sent Events
(resuming after ``Last-Event-ID``, ending with ``end``; an unknown run is a
404); ``/af`` mounts actorflow's own routes and page. The journal is
``$ACTORFLOW_JOURNAL``, else ``chat.db``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from pydantic import BaseModel

import actorflow as af
import actorflow.web


@af.step(retries=3)
async def generate(ctx: af.StepContext, prompt: str) -> str:
    words = f"You said {prompt!r}; here is a streamed, durable answer.".split(" ")
    for i, word in enumerate(words):
        await ctx.write_stream("tokens", word if i == 0 else " " + word)
    return " ".join(words)


@af.workflow
async def chat(ctx: af.WorkflowContext, prompt: str) -> str:
    answer = await ctx.step(generate, prompt)
    await ctx.close_stream("tokens")
    return answer


class ChatRequest(BaseModel):
    prompt: str


rt = af.Runtime(os.environ.get("ACTORFLOW_JOURNAL", "chat.db"))
api = FastAPI(lifespan=actorflow.web.lifespan(rt))  # opens rt at startup, closes it at shutdown
api.mount("/af", actorflow.web.app(rt, workflows=[chat]))


@api.post("/chat", status_code=202)
async def start_chat(body: ChatRequest) -> dict[str, str]:
    handle = await rt.start(chat, body.prompt)
    return {"run_id": handle.run_id}


@api.get("/chat/{run_id}")
async def chat_tokens(run_id: str, request: Request) -> actorflow.web.EventStreamResponse:
    entries = rt.read_stream_entries(run_id, "tokens")
    return actorflow.web.sse(entries, request=request, runtime=rt, run_id=run_id)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(api, host="127.0.0.1", port=8000)
