"""LangChain: chat_anthropic() answers over an API key, over OAuth, and after the token expired."""

from __future__ import annotations

import asyncio
from functools import cached_property

import pytest
from conftest import (
    MODEL,
    Login,
    assert_sent_api_key,
    assert_sent_oauth,
    refreshed_once,
)
from fakeapi import FakeAnthropic
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient, UnifiedAuthManager
from claude_oauth_auth.integrations import ClaudeChatAnthropic, chat_anthropic
from claude_oauth_auth.integrations._langchain import CLIENT_HOOKS


def ask(llm: ChatAnthropic) -> AIMessage:
    reply = llm.invoke("hi")
    assert isinstance(reply, AIMessage)
    assert reply.content == "Hello from fake API"
    return reply


def test_api_key(api_key: str, oauth_env: FakeAnthropic) -> None:
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    assert isinstance(llm, ChatAnthropic)
    assert llm.auth_method == "api_key"
    ask(llm)
    assert_sent_api_key(oauth_env, api_key)


def test_oauth(oauth: Login) -> None:
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    assert llm.auth_method == "oauth"
    ask(llm)
    assert_sent_oauth(oauth.server, oauth.access_token)


def test_token_expired_mid_session(short_oauth: Login) -> None:
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    ask(llm)
    short_oauth.wait_until_expired()
    ask(llm)
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)


def test_async_and_streaming_share_one_refresh(short_oauth: Login) -> None:
    """ainvoke and astream go through AsyncClaudeClient, with the same token manager as invoke."""
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    ask(llm)
    short_oauth.wait_until_expired()

    async def main() -> tuple[str, str]:
        reply = await llm.ainvoke("hi")
        chunks = [str(chunk.content) async for chunk in llm.astream("hi")]
        return str(reply.content), "".join(chunks)

    assert asyncio.run(main()) == ("Hello from fake API", "Hello from fake API")
    ask(llm)
    refreshed_once(short_oauth.server, short_oauth)
    assert_sent_oauth(short_oauth.server)


def test_revoked_token_is_refreshed_and_resent(oauth: Login) -> None:
    """A 401 on a token we thought valid: one refresh, the request is sent again."""
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    ask(llm)
    oauth.server.revoke_access_token(oauth.access_token)
    ask(llm)
    refreshed_once(oauth.server, oauth)


def test_falls_back_to_the_api_key_when_the_login_is_dead(
    oauth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = oauth.server.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    llm = chat_anthropic(model=MODEL, max_tokens=5)
    oauth.server.revoke_access_token(oauth.access_token)
    oauth.server.revoke_refresh_token(oauth.refresh_token)
    ask(llm)
    assert llm.auth_method == "api_key"
    with oauth.server.lock:
        assert oauth.server.api_requests[-1].token == key


def test_options_reach_the_client(api_key: str, oauth_env: FakeAnthropic) -> None:
    llm = chat_anthropic(
        model=MODEL,
        max_tokens=5,
        max_retries=0,
        default_headers={"x-trace": "abc"},
        betas=["some-beta-2025-01-01"],
    )
    assert isinstance(llm._client, ClaudeClient)
    assert isinstance(llm._async_client, AsyncClaudeClient)
    assert llm._client.max_retries == 0
    ask(llm)
    with oauth_env.lock:
        record = oauth_env.api_requests[-1]
    assert record.headers["x-trace"] == "abc"
    assert record.betas == ["some-beta-2025-01-01"]


def test_api_key_argument_and_shared_manager(oauth: Login) -> None:
    key = oauth.server.add_api_key()
    ask(chat_anthropic(model=MODEL, max_tokens=5, api_key=key))
    assert_sent_api_key(oauth.server, key)
    manager = UnifiedAuthManager()
    llm = ClaudeChatAnthropic(model=MODEL, max_tokens=5, auth_manager=manager)
    assert llm.auth_manager is manager
    assert llm._client.auth_manager is manager is llm._async_client.auth_manager
    with pytest.raises(ValueError, match="not both"):
        chat_anthropic(model=MODEL, auth_manager=manager, api_key=key)


def test_the_hooks_we_build_on_still_exist() -> None:
    """If langchain-anthropic stops building its clients in these cached properties, our
    subclass would silently fall back to its own fixed key: this test (and the import) fail."""
    for name in CLIENT_HOOKS:
        assert isinstance(ChatAnthropic.__dict__[name], cached_property), name
