"""LangChain: a ``ChatAnthropic`` whose requests go through our clients.

``ChatAnthropic`` takes no client object; it builds its SDK clients in two cached properties,
``_client`` and ``_async_client``, from ``_client_params``. The subclass here builds
``ClaudeClient`` and ``AsyncClaudeClient`` there instead, sharing one ``UnifiedAuthManager``, so
every sync and async call gets the refresh, the 401 retry and the fallback to an API key.
Those three names are checked when this module is imported: a langchain-anthropic that renames
them fails here, loudly, instead of silently sending a stale credential.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from ._extras import require

require("langchain_anthropic", "langchain")

import anthropic  # noqa: E402
from langchain_anthropic import ChatAnthropic  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from .._client import AsyncClaudeClient, ClaudeClient  # noqa: E402
from ..cascade._cascade import UnifiedAuthManager  # noqa: E402

__all__ = ["CLIENT_HOOKS", "ClaudeChatAnthropic", "chat_anthropic"]

CLIENT_HOOKS = ("_client", "_async_client", "_client_params")
"""The cached properties of ``ChatAnthropic`` that this module builds on."""


def _check_hooks() -> None:
    missing = [
        name
        for name in CLIENT_HOOKS
        if not isinstance(getattr(ChatAnthropic, name, None), cached_property)
    ]
    if missing:
        raise ImportError(
            "claude_oauth_auth.integrations cannot hook this langchain-anthropic: ChatAnthropic "
            f"no longer builds its clients in {', '.join(missing)}; pin langchain-anthropic to "
            "a version claude-oauth-auth supports, or pass api_key= to ChatAnthropic yourself"
        )


_check_hooks()


class ClaudeChatAnthropic(ChatAnthropic):
    """``ChatAnthropic`` with credentials from our cascade and OAuth tokens kept fresh.

    Every ``ChatAnthropic`` option works as before, except ``api_key``: credentials come from
    ``auth_manager`` (by default a ``UnifiedAuthManager()`` running the whole cascade).
    """

    _auth_manager: UnifiedAuthManager = PrivateAttr()

    def __init__(self, *, auth_manager: UnifiedAuthManager | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._auth_manager = auth_manager if auth_manager is not None else UnifiedAuthManager()

    @property
    def auth_manager(self) -> UnifiedAuthManager:
        """The cascade result both SDK clients share (one refresh for sync and async calls)."""
        return self._auth_manager

    @property
    def auth_method(self) -> str:
        """``"oauth"`` or ``"api_key"``."""
        return self._auth_manager.auth_method

    @cached_property
    def _client(self) -> ClaudeClient:
        options = self._sdk_options()
        if self.anthropic_proxy:
            options["http_client"] = anthropic.DefaultHttpxClient(
                proxy=self.anthropic_proxy, base_url=options["base_url"]
            )
        return ClaudeClient(auth_manager=self._auth_manager, **options)

    @cached_property
    def _async_client(self) -> AsyncClaudeClient:
        options = self._sdk_options()
        if self.anthropic_proxy:
            options["http_client"] = anthropic.DefaultAsyncHttpxClient(
                proxy=self.anthropic_proxy, base_url=options["base_url"]
            )
        return AsyncClaudeClient(auth_manager=self._auth_manager, **options)

    def _sdk_options(self) -> dict[str, Any]:
        """LangChain's client options (base URL, retries, headers, timeout) minus its key."""
        params: dict[str, Any] = self._client_params
        return {name: value for name, value in params.items() if name != "api_key"}


def chat_anthropic(
    *,
    auth_manager: UnifiedAuthManager | None = None,
    api_key: str | None = None,
    **kwargs: Any,
) -> ClaudeChatAnthropic:
    """A ``ChatAnthropic`` (``model=`` and any of its options) that uses our credentials.

    ``api_key=`` pins an API key, like ``ClaudeClient(api_key=...)``; ``auth_manager=`` shares a
    ``UnifiedAuthManager`` (and so one token refresh) with other clients.
    """
    if auth_manager is not None and api_key is not None:
        raise ValueError("pass auth_manager= or api_key=, not both")
    if auth_manager is None:
        auth_manager = UnifiedAuthManager(api_key=api_key)
    return ClaudeChatAnthropic(auth_manager=auth_manager, **kwargs)
