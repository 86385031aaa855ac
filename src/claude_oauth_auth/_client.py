"""ClaudeClient and AsyncClaudeClient: the SDK clients, with our credentials and fallback."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic._types import NOT_GIVEN, NotGiven
from anthropic.lib.credentials import AccessTokenAuth, TokenCache
from typing_extensions import Self

from ._cascade import UnifiedAuthManager
from ._flow import (
    CLAUDE_CODE_ADVICE,
    CLAUDE_CODE_ONLY,
    NO_FALLBACK_ADVICE,
    OAUTH_BETA,
    REFUSED_TOKEN_ADVICE,
    AuthFlow,
    CacheSource,
    TokenSource,
    advised,
    beta_flags,
)
from ._manager import OAuthTokenManager
from ._sdk_errors import OAuthRefreshError
from .stores._base import TokenStore

__all__ = ["AsyncClaudeClient", "ClaudeClient"]


def _resolve(
    auth_manager: UnifiedAuthManager | None, arguments: dict[str, Any]
) -> tuple[UnifiedAuthManager, dict[str, Any]]:
    try:
        auth = auth_manager if auth_manager is not None else UnifiedAuthManager(**arguments)
    except OAuthRefreshError as error:
        advised(error, NO_FALLBACK_ADVICE)
        raise
    active = auth.active_credential
    if active.kind == "api_key":
        return auth, {"api_key": active.secret}
    if active.kind == "auth_token":
        return auth, {"auth_token": active.secret}
    return auth, {"credentials": auth.token_source}


def _token_source(auth: UnifiedAuthManager, cache: TokenCache) -> TokenSource:
    source: Any = auth.token_source
    if isinstance(source, OAuthTokenManager) or hasattr(source, "async_token"):
        return source  # type: ignore[no-any-return]
    return CacheSource(cache)


class _ClaudeClientMixin:
    """What ClaudeClient and AsyncClaudeClient add to their SDK base class."""

    auth_manager: UnifiedAuthManager
    _credential_headers: Mapping[str, str]
    _token_cache: TokenCache | None
    _custom_auth: AccessTokenAuth | None

    def __init__(
        self,
        api_key: str | None = None,
        auth_token: str | None = None,
        *,
        oauth_manager: OAuthTokenManager | None = None,
        auth_manager: UnifiedAuthManager | None = None,
        token_file: str | os.PathLike[str] | None = None,
        store: TokenStore | None = None,
        sources: Sequence[str] | None = None,
        credentials: Callable[..., Any] | None = None,
        refresh_threshold: float | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        **sdk_options: Any,
    ) -> None:
        arguments = {
            "api_key": api_key,
            "auth_token": auth_token,
            "oauth_manager": oauth_manager,
            "credentials": credentials,
            "token_file": token_file,
            "store": store,
            "sources": sources,
            "refresh_threshold": refresh_threshold,
            "client_id": client_id,
            "token_url": token_url,
            # The SDK's profile=/config= are credential arguments (step 1 of the cascade).
            "profile": sdk_options.pop("profile", None),
            "config": sdk_options.pop("config", None),
            "base_url": sdk_options.get("base_url"),
        }
        self.auth_manager, credential = _resolve(auth_manager, arguments)
        profile_base_url = self.auth_manager.credential_base_url
        if (
            profile_base_url
            and not sdk_options.get("base_url")
            and not os.environ.get("ANTHROPIC_BASE_URL")
        ):
            sdk_options["base_url"] = profile_base_url  # as the SDK: a profile's host
        sdk_base: Any = super()
        sdk_base.__init__(**credential, **sdk_options)
        if self.auth_manager.credential_headers:
            self._credential_headers = self.auth_manager.credential_headers
        if self._token_cache is not None:
            source = _token_source(self.auth_manager, self._token_cache)
            self._custom_auth = AuthFlow(self._token_cache, self.auth_manager, source)

    @property
    def auth_method(self) -> str:
        """``"oauth"`` or ``"api_key"``."""
        return self.auth_manager.auth_method

    @property
    def auth_source(self) -> str:
        """The cascade step whose credential this client uses."""
        return self.auth_manager.source

    def copy(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        credentials: Any = NOT_GIVEN,
        _extra_kwargs: Mapping[str, Any] = {},
        **options: Any,
    ) -> Self:
        """A new client with changed options; without a new credential it shares this one's."""
        sdk_base: Any = super()
        if api_key or auth_token or not isinstance(credentials, NotGiven):
            copied: Self = sdk_base.copy(
                api_key=api_key, auth_token=auth_token, credentials=credentials, **options
            )
            return copied
        extra: dict[str, Any] = {"auth_manager": self.auth_manager}
        if self.auth_manager.active_credential.kind == "oauth" and options.get("base_url") is None:
            extra["_token_cache"] = self._token_cache  # one cache (and one refresh) for all copies
        extra.update(_extra_kwargs)
        shared: Self = sdk_base.copy(_extra_kwargs=extra, **options)
        return shared

    with_options = copy

    def _should_retry(self, response: httpx2.Response) -> bool:
        # Our auth flow already refreshed and resent a 401; a second round would spend another
        # refresh token on a credential the API keeps refusing.
        if response.status_code == 401 and isinstance(self._custom_auth, AuthFlow):
            return False
        sdk_base: Any = super()
        should: bool = sdk_base._should_retry(response)
        return should

    def _make_status_error_from_response(
        self, response: httpx2.Response
    ) -> anthropic.APIStatusError:
        sdk_base: Any = super()
        error: anthropic.APIStatusError = sdk_base._make_status_error_from_response(response)
        if error.status_code in (400, 403) and CLAUDE_CODE_ONLY in error.message.lower():
            return advised(error, CLAUDE_CODE_ADVICE)
        if error.status_code == 401 and OAUTH_BETA in beta_flags(response.request):
            return advised(error, REFUSED_TOKEN_ADVICE)
        return error


class ClaudeClient(_ClaudeClientMixin, anthropic.Anthropic):
    """``anthropic.Anthropic`` with credentials from the cascade and OAuth kept fresh."""


class AsyncClaudeClient(_ClaudeClientMixin, anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic`` with our credentials; a refresh never blocks the loop."""
