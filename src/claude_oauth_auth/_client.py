"""ClaudeClient and AsyncClaudeClient: the SDK clients, with our credentials and fallback."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic._types import NOT_GIVEN, NotGiven
from anthropic.lib.credentials import AccessTokenAuth, TokenCache
from typing_extensions import Self, override

from ._auth import UnifiedAuthManager
from ._errors import TokenRefreshError
from ._oauth import OAuthTokenManager
from ._sdk_errors import OAuthRefreshError

__all__ = ["AsyncClaudeClient", "ClaudeClient"]

OAUTH_BETA = "oauth-2025-04-20"
CLAUDE_CODE_ONLY = "only authorized for use with claude code"
CLAUDE_CODE_ADVICE = (
    " [claude-oauth-auth: this is a Claude subscription (Pro/Max) token, which Anthropic's terms "
    "limit to Claude Code. Use an API key instead: set ANTHROPIC_API_KEY or pass api_key=.]"
)
RELOGIN = (
    "Log in again (run `claude`, then /login, or `claude-oauth-auth save`), or set "
    "ANTHROPIC_API_KEY or pass api_key=.]"
)
NO_FALLBACK_ADVICE = (
    " [claude-oauth-auth: OAuth is unusable and no API key was found to fall back to. " + RELOGIN
)
REFUSED_TOKEN_ADVICE = " [claude-oauth-auth: the API refused the OAuth access token. " + RELOGIN


class _CacheSource:
    """Adapts any SDK provider (through the SDK's own TokenCache) to our token-source calls."""

    def __init__(self, cache: TokenCache) -> None:
        self._cache = cache

    def peek_valid_token(self) -> str | None:
        return None

    def get_valid_token(self) -> str:
        return self._cache.get_token()

    async def async_get_valid_token(self) -> str:
        return await self._cache.async_get_token()

    def refresh_rejected(self, rejected_token: str) -> str:
        self._cache.invalidate()
        return self._cache.get_token()

    async def async_refresh_rejected(self, rejected_token: str) -> str:
        self._cache.invalidate()
        return await self._cache.async_get_token()


class _OAuthFlow(AccessTokenAuth):
    """Bearer auth that recovers a refused token: refresh and resend, or switch to an API key."""

    requires_response_body = False

    def __init__(self, cache: TokenCache, auth: UnifiedAuthManager, source: Any) -> None:
        super().__init__(cache)
        self._auth = auth
        self._source = source

    def _fallback_key(self) -> str | None:
        active = self._auth.active_credential
        return active.secret if active.kind != "oauth" else None

    @override
    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        if self._has_static_credential(request):
            yield request
            return
        key = self._fallback_key()
        if key is None:
            try:
                token = self._source.peek_valid_token() or self._source.get_valid_token()
            except OAuthRefreshError as error:
                key = self._switch_or_raise(error)
        if key is not None:
            _apply_key(request, key)
            yield request
            return
        self._apply(request, token)
        response = yield request
        if response.status_code == 401:
            try:
                fresh = self._source.refresh_rejected(token)
            except OAuthRefreshError as error:
                key = self._switch_or_raise(error)
            except TokenRefreshError:
                return
            else:
                if fresh == token:
                    return
                self._apply(request, fresh)
                response = yield request
                if response.status_code != 401:
                    return
                key = self._auth.switch_to_fallback("the API refused a freshly refreshed token")
        elif response.status_code in (400, 403):
            response.read()
            key = self._claude_code_only_fallback(response)
        if key is not None:
            _apply_key(request, key)
            yield request

    @override
    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._has_static_credential(request):
            yield request
            return
        key = self._fallback_key()
        if key is None:
            try:
                token = (
                    self._source.peek_valid_token() or await self._source.async_get_valid_token()
                )
            except OAuthRefreshError as error:
                key = self._switch_or_raise(error)
        if key is not None:
            _apply_key(request, key)
            yield request
            return
        self._apply(request, token)
        response = yield request
        if response.status_code == 401:
            try:
                fresh = await self._source.async_refresh_rejected(token)
            except OAuthRefreshError as error:
                key = self._switch_or_raise(error)
            except TokenRefreshError:
                return
            else:
                if fresh == token:
                    return
                self._apply(request, fresh)
                response = yield request
                if response.status_code != 401:
                    return
                key = self._auth.switch_to_fallback("the API refused a freshly refreshed token")
        elif response.status_code in (400, 403):
            await response.aread()
            key = self._claude_code_only_fallback(response)
        if key is not None:
            _apply_key(request, key)
            yield request

    def _switch_or_raise(self, error: OAuthRefreshError) -> str:
        key = self._auth.switch_to_fallback(str(error))
        if key is None:
            raise _advised(error, NO_FALLBACK_ADVICE)
        return key

    def _claude_code_only_fallback(self, response: httpx2.Response) -> str | None:
        if CLAUDE_CODE_ONLY not in response.text.lower():
            return None
        return self._auth.switch_to_fallback(
            "the API answered that this OAuth credential is only authorized for use with "
            "Claude Code"
        )


def _apply_key(request: httpx2.Request, key: str) -> None:
    """Send ``key`` the way the SDK sends ``api_key=``, without the OAuth beta flag."""
    request.headers["Authorization"] = f"Bearer {key}"
    flags = [flag for flag in _beta_flags(request) if flag != OAUTH_BETA]
    if flags:
        request.headers["anthropic-beta"] = ",".join(flags)
    elif "anthropic-beta" in request.headers:
        del request.headers["anthropic-beta"]


def _beta_flags(request: httpx2.Request) -> list[str]:
    return [
        flag.strip()
        for flag in request.headers.get("anthropic-beta", "").split(",")
        if flag.strip()
    ]


def _advised(error: anthropic.APIStatusError, advice: str) -> anthropic.APIStatusError:
    """Append what to do to an SDK error's message (once)."""
    if advice not in error.message:
        error.message += advice
        error.args = (error.message,)
    return error


def _resolve(
    auth_manager: UnifiedAuthManager | None, arguments: dict[str, Any]
) -> tuple[UnifiedAuthManager, dict[str, Any]]:
    try:
        auth = auth_manager if auth_manager is not None else UnifiedAuthManager(**arguments)
    except OAuthRefreshError as error:
        _advised(error, NO_FALLBACK_ADVICE)
        raise
    active = auth.active_credential
    if active.kind == "api_key":
        return auth, {"api_key": active.secret}
    if active.kind == "auth_token":
        return auth, {"auth_token": active.secret}
    return auth, {"credentials": auth.token_source}


def _token_source(auth: UnifiedAuthManager, cache: TokenCache) -> Any:
    source = auth.token_source
    if isinstance(source, OAuthTokenManager) or hasattr(source, "peek_valid_token"):
        return source
    return _CacheSource(cache)


class _ClaudeClientMixin:
    """What ClaudeClient and AsyncClaudeClient add to their SDK base class."""

    auth_manager: UnifiedAuthManager
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
            "sources": sources,
            "refresh_threshold": refresh_threshold,
            "client_id": client_id,
            "token_url": token_url,
        }
        self.auth_manager, credential = _resolve(auth_manager, arguments)
        sdk_base: Any = super()
        sdk_base.__init__(**credential, **sdk_options)
        if self._token_cache is not None:
            source = _token_source(self.auth_manager, self._token_cache)
            self._custom_auth = _OAuthFlow(self._token_cache, self.auth_manager, source)

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
        if response.status_code == 401 and isinstance(self._custom_auth, _OAuthFlow):
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
            return _advised(error, CLAUDE_CODE_ADVICE)
        if error.status_code == 401 and OAUTH_BETA in _beta_flags(response.request):
            return _advised(error, REFUSED_TOKEN_ADVICE)
        return error


class ClaudeClient(_ClaudeClientMixin, anthropic.Anthropic):
    """``anthropic.Anthropic`` with credentials from the cascade and OAuth kept fresh."""


class AsyncClaudeClient(_ClaudeClientMixin, anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic`` with our credentials; a refresh never blocks the loop."""
