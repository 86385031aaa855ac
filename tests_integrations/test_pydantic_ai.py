"""pydantic-ai: AnthropicProvider(anthropic_client=AsyncClaudeClient()) needs no glue code."""

from __future__ import annotations

import asyncio

from conftest import MODEL, Login, assert_sent_api_key, assert_sent_oauth, refreshed_once
from fakeapi import FakeAnthropic
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.providers.anthropic import AnthropicProvider

from claude_oauth_auth import AsyncClaudeClient


def agent() -> Agent[None, str]:
    provider = AnthropicProvider(anthropic_client=AsyncClaudeClient())
    return Agent(AnthropicModel(MODEL, provider=provider))


def ask(chat: Agent[None, str]) -> None:
    assert chat.run_sync("hi").output == "Hello from fake API"


def test_api_key(api_key: str, oauth_env: FakeAnthropic) -> None:
    ask(agent())
    assert_sent_api_key(oauth_env, api_key)


def test_oauth(oauth: Login) -> None:
    ask(agent())
    assert_sent_oauth(oauth.server, oauth.access_token)


def test_token_expired_mid_session(short_oauth: Login) -> None:
    chat = agent()
    ask(chat)
    short_oauth.wait_until_expired()
    ask(chat)
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)


def test_concurrent_runs_after_expiry_share_one_refresh(short_oauth: Login) -> None:
    chat = agent()

    async def main() -> list[str]:
        await chat.run("hi")
        short_oauth.wait_until_expired()
        results = await asyncio.gather(*(chat.run("hi") for _ in range(4)))
        return [result.output for result in results]

    assert asyncio.run(main()) == ["Hello from fake API"] * 4
    refreshed_once(short_oauth.server, short_oauth)


def test_streaming(oauth: Login) -> None:
    chat = agent()

    async def main() -> str:
        async with chat.run_stream("hi") as result:
            return "".join([chunk async for chunk in result.stream_text(delta=True)])

    assert asyncio.run(main()) == "Hello from fake API"
    assert_sent_oauth(oauth.server)
