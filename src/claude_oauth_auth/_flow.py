"""The httpx auth flow: one step generator holds the logic; two thin drivers perform steps.

The generator yields either a request to send or a step that needs I/O (a token from the
source, a response body); the sync driver performs steps directly, the async one awaits them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anthropic
import httpx2
from anthropic.lib.credentials import AccessTokenAuth, TokenCache
from typing_extensions import override

from ._cascade import UnifiedAuthManager
from ._errors import TokenRefreshError
from ._sdk_errors import OAuthRefreshError

__all__ = [
    "CLAUDE_CODE_ADVICE",
    "CLAUDE_CODE_ONLY",
    "NO_FALLBACK_ADVICE",
    "OAUTH_BETA",
    "REFUSED_TOKEN_ADVICE",
    "AuthFlow",
    "CacheSource",
    "TokenSource",
    "advised",
    "beta_flags",
]

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


class TokenSource(Protocol):
    """What the flow asks for tokens: ``OAuthTokenManager`` and the adapters below."""

    def peek_valid_token(self) -> str | None: ...

    def token(self, *, force: bool = False, rejected: str | None = None) -> str: ...

    async def async_token(self, *, force: bool = False, rejected: str | None = None) -> str: ...


class CacheSource:
    """Any SDK credentials provider, through the SDK's own ``TokenCache``."""

    def __init__(self, cache: TokenCache) -> None:
        self._cache = cache

    def peek_valid_token(self) -> str | None:
        return None

    def token(self, *, force: bool = False, rejected: str | None = None) -> str:
        if force or rejected is not None:
            self._cache.invalidate()
        return self._cache.get_token()

    async def async_token(self, *, force: bool = False, rejected: str | None = None) -> str:
        if force or rejected is not None:
            self._cache.invalidate()
        return await self._cache.async_get_token()


@dataclass(frozen=True)
class _Token:
    """Step: a token from the source (``rejected``: the API just refused that one)."""

    rejected: str | None = None

    def run(self, source: TokenSource) -> str:
        if self.rejected is None:
            return source.peek_valid_token() or source.token()
        return source.token(rejected=self.rejected)

    def arun(self, source: TokenSource) -> Awaitable[str]:
        return source.async_token(rejected=self.rejected)


@dataclass(frozen=True)
class _Body:
    """Step: read a response body (to look for the "Claude Code only" refusal)."""

    response: httpx2.Response

    def run(self, source: TokenSource) -> bytes:
        return self.response.read()

    def arun(self, source: TokenSource) -> Awaitable[bytes]:
        return self.response.aread()


Step = httpx2.Request | _Token | _Body


@dataclass(frozen=True)
class _Outcome:
    """What the last step gave back to the generator: a value, or an error to raise there."""

    value: Any = None
    error: Exception | None = None

    def advance(self, steps: Generator[Step, Any, None]) -> Step | None:
        try:
            return steps.throw(self.error) if self.error else steps.send(self.value)
        except StopIteration:
            return None

    @staticmethod
    def of(call: Callable[[], Any]) -> _Outcome:
        try:
            return _Outcome(call())
        except Exception as error:
            return _Outcome(error=error)

    @staticmethod
    async def of_awaited(awaitable: Awaitable[Any]) -> _Outcome:
        try:
            return _Outcome(await awaitable)
        except Exception as error:
            return _Outcome(error=error)


class AuthFlow(AccessTokenAuth):
    """Bearer auth that recovers a refused token: refresh and resend, or switch to an API key."""

    requires_response_body = False

    def __init__(self, cache: TokenCache, auth: UnifiedAuthManager, source: TokenSource) -> None:
        super().__init__(cache)
        self._auth = auth
        self._source = source

    @override
    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        steps, outcome = self._steps(request), _Outcome()
        while (step := outcome.advance(steps)) is not None:
            if isinstance(step, httpx2.Request):
                outcome = _Outcome((yield step))
            else:
                outcome = _Outcome.of(partial(step.run, self._source))

    @override
    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        steps, outcome = self._steps(request), _Outcome()
        while (step := outcome.advance(steps)) is not None:
            if isinstance(step, httpx2.Request):
                outcome = _Outcome((yield step))
            else:
                outcome = await _Outcome.of_awaited(step.arun(self._source))

    def _steps(self, request: httpx2.Request) -> Generator[Step, Any, None]:
        """The whole policy: send, and on a refusal refresh and resend or switch to a key."""
        if self._has_static_credential(request):
            yield request
            return
        key = self._fallback_key()
        if key is None:
            try:
                token = yield _Token()
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
                fresh = yield _Token(rejected=token)
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
            yield _Body(response)
            key = self._claude_code_only_fallback(response)
        if key is not None:
            _apply_key(request, key)
            yield request

    def _fallback_key(self) -> str | None:
        active = self._auth.active_credential
        return active.secret if active.kind != "oauth" else None

    def _switch_or_raise(self, error: OAuthRefreshError) -> str:
        key = self._auth.switch_to_fallback(str(error))
        if key is None:
            raise advised(error, NO_FALLBACK_ADVICE)
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
    flags = [flag for flag in beta_flags(request) if flag != OAUTH_BETA]
    if flags:
        request.headers["anthropic-beta"] = ",".join(flags)
    elif "anthropic-beta" in request.headers:
        del request.headers["anthropic-beta"]


def beta_flags(request: httpx2.Request) -> list[str]:
    return [
        flag.strip()
        for flag in request.headers.get("anthropic-beta", "").split(",")
        if flag.strip()
    ]


def advised(error: anthropic.APIStatusError, advice: str) -> anthropic.APIStatusError:
    """Append what to do to an SDK error's message (once)."""
    if advice not in error.message:
        error.message += advice
        error.args = (error.message,)
    return error
