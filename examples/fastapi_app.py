"""A FastAPI app on AsyncClaudeClient: awaits the API, streams replies, never blocks the loop.

Run it (credentials are found automatically; see `claude-oauth-auth status`):

    pip install '.[examples]'                  # from a clone; installs FastAPI and uvicorn
    uvicorn examples.fastapi_app:app          # or: python examples/fastapi_app.py
    curl -X POST http://127.0.0.1:8000/chat -H 'Content-Type: application/json' \\
         -d '{"prompt": "Hello!"}'
    curl -N -X POST http://127.0.0.1:8000/chat/stream -H 'Content-Type: application/json' \\
         -d '{"prompt": "Tell me a story"}'

One client is created when the app starts and closed when it stops. An OAuth refresh runs in a
worker thread, so the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anthropic
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from claude_oauth_auth import AsyncClaudeClient

MODEL = os.environ.get("CLAUDE_MODEL", "claude-sonnet-4-6")


class ChatRequest(BaseModel):
    prompt: str = Field(min_length=1)
    max_tokens: int = Field(default=1024, ge=1, le=8192)


class ChatResponse(BaseModel):
    response: str
    model: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.claude = AsyncClaudeClient()
    try:
        yield
    finally:
        await app.state.claude.close()


app = FastAPI(title="Claude chat", lifespan=lifespan)


def _client(request: Request) -> AsyncClaudeClient:
    client: AsyncClaudeClient = request.app.state.claude
    return client


@app.post("/chat")
async def chat(body: ChatRequest, request: Request) -> ChatResponse:
    try:
        message = await _client(request).messages.create(
            model=MODEL,
            max_tokens=body.max_tokens,
            messages=[{"role": "user", "content": body.prompt}],
        )
    except anthropic.AuthenticationError as error:
        raise HTTPException(401, f"Claude credentials were refused: {error.message}") from None
    except anthropic.RateLimitError:
        raise HTTPException(429, "rate limited by the Claude API; try again shortly") from None
    except anthropic.APIStatusError as error:
        raise HTTPException(502, f"the Claude API answered {error.status_code}") from None
    except anthropic.APIConnectionError:
        raise HTTPException(502, "could not reach the Claude API") from None
    text = "".join(block.text for block in message.content if block.type == "text")
    return ChatResponse(response=text, model=message.model)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    client = _client(request)

    async def text_chunks() -> AsyncIterator[str]:
        async with client.messages.stream(
            model=MODEL,
            max_tokens=body.max_tokens,
            messages=[{"role": "user", "content": body.prompt}],
        ) as stream:
            async for text in stream.text_stream:
                yield text

    return StreamingResponse(text_chunks(), media_type="text/plain; charset=utf-8")


@app.get("/health")
async def health(request: Request) -> dict[str, str]:
    client = _client(request)
    return {"status": "ok", "auth_method": client.auth_method, "source": client.auth_source}


if __name__ == "__main__":
    import uvicorn  # type: ignore[import-not-found, unused-ignore]  # the examples extra

    uvicorn.run(app)
