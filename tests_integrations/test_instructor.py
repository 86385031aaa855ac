"""instructor: from_anthropic(ClaudeClient()) and from_anthropic(AsyncClaudeClient()) work as is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import instructor
import pytest
from conftest import (
    MODEL,
    PROMPT,
    Login,
    assert_sent_api_key,
    assert_sent_oauth,
    refreshed_once,
)
from fakeapi import FakeAnthropic
from pydantic import BaseModel

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient


class Greeting(BaseModel):
    text: str
    words: int


EXPECTED = Greeting(text="Hello from fake API", words=1)


class Asker:
    """One instructor client, sync or async, asked for a Greeting."""

    def __init__(self, kind: str, loop: asyncio.AbstractEventLoop) -> None:
        self.kind = kind
        self.loop = loop
        if kind == "sync":
            self.client = instructor.from_anthropic(ClaudeClient())
        else:
            self.async_client = instructor.from_anthropic(AsyncClaudeClient())

    def __call__(self) -> Greeting:
        options = {"model": MODEL, "max_tokens": 50, "messages": PROMPT, "response_model": Greeting}
        if self.kind == "sync":
            reply: Greeting = self.client.chat.completions.create(**options)
        else:
            reply = self.loop.run_until_complete(
                self.async_client.chat.completions.create(**options)
            )
        assert isinstance(reply, Greeting)
        assert reply.model_dump() == EXPECTED.model_dump()
        return reply


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all the async calls of a test (the client keeps its connections)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_api_key(
    kind: str, loop: asyncio.AbstractEventLoop, api_key: str, oauth_env: FakeAnthropic
) -> None:
    Asker(kind, loop)()
    assert_sent_api_key(oauth_env, api_key)
    with oauth_env.lock:
        assert oauth_env.api_requests[-1].json["tool_choice"]["name"] == "Greeting"


def test_oauth(kind: str, loop: asyncio.AbstractEventLoop, oauth: Login) -> None:
    Asker(kind, loop)()
    assert_sent_oauth(oauth.server, oauth.access_token)


def test_token_expired_mid_session(
    kind: str, loop: asyncio.AbstractEventLoop, short_oauth: Login
) -> None:
    ask = Asker(kind, loop)
    ask()
    short_oauth.wait_until_expired()
    ask()
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)
