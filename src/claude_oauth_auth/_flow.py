"""The httpx auth flow: one step generator holds the logic; two thin drivers perform steps.

The generator yields either a request to send or a step that needs I/O (a token from the
source, a response body); the sync driver performs steps directly, the async one awaits them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import anthropic
import httpx2
from anthropic.lib.credentials import AccessTokenAuth, TokenCache
from typing_extensions import override

from ._errors import ClaudeAuthError, StoreError, TokenRefreshError
from ._sdk_errors import OAuthRefreshError, raise_to_the_sdk
from ._tokens import Secret
from .cascade._failover import Failover, Fallback
from .cascade._sources import Credential
from .lifecycle._manager import OAuthTokenManager

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
    "as_token_source",
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
    " [claude-oauth-auth: OAuth is unusable and no other credential was found to fall back to. "
    + RELOGIN
)
REFUSED_TOKEN_ADVICE = " [claude-oauth-auth: the API refused the OAuth access token. " + RELOGIN
CLAUDE_CODE_ONLY_REASON = (
    "the API answered that this OAuth credential is only authorized for use with Claude Code"
)
MAX_SWITCHES = 16  # more than the cascade has sources: every request ends


class TokenSource(Protocol):
    """What the flow asks for tokens: ``OAuthTokenManager`` (its public token calls) and the
    adapter below."""

    def get_valid_token(
        self, *, force_refresh: bool = False, rejected: str | None = None
    ) -> str: ...

    async def async_get_valid_token(
        self, *, force_refresh: bool = False, rejected: str | None = None
    ) -> str: ...


class CacheSource:
    """Any SDK credentials provider, through the SDK's own ``TokenCache``."""

    def __init__(self, cache: TokenCache) -> None:
        self._cache = cache

    def get_valid_token(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        if force_refresh or rejected is not None:
            self._cache.invalidate()
        return self._cache.get_token()

    async def async_get_valid_token(
        self, *, force_refresh: bool = False, rejected: str | None = None
    ) -> str:
        if force_refresh or rejected is not None:
            self._cache.invalidate()
        return await self._cache.async_get_token()


@dataclass(frozen=True)
class _Token:
    """Step: a token from ``source`` (``rejected``: the API just refused that one).

    Tokens travel masked (``Secret``) between steps: a traceback that records locals shows
    no frame of this module holding a bare token."""

    source: TokenSource
    rejected: Secret | None = None

    def run(self) -> Secret:
        if self.rejected is None:
            return Secret(self.source.get_valid_token())
        return Secret(self.source.get_valid_token(rejected=self.rejected.reveal()))

    async def arun(self) -> Secret:
        refused = self.rejected
        return Secret(
            await self.source.async_get_valid_token(rejected=refused.reveal() if refused else None)
        )


@dataclass(frozen=True)
class _Probe:
    """Step: try the primary credential again after a temporary failure; its token, or None.

    One request at a time probes (``start_probe``); every other one keeps the fallback.
    """

    failover: Failover
    source: TokenSource

    def run(self) -> Secret | None:
        if not self.failover.start_probe():
            return None
        try:
            token = Secret(self.source.get_valid_token())
        except BaseException as error:
            self._failed(error)
            return None
        self.failover.finish_probe(None)
        return token

    async def arun(self) -> Secret | None:
        if not self.failover.start_probe():
            return None
        try:
            token = Secret(await self.source.async_get_valid_token())
        except BaseException as error:
            self._failed(error)
            return None
        self.failover.finish_probe(None)
        return token

    def _failed(self, error: BaseException) -> None:
        self.failover.finish_probe(error)
        if not isinstance(error, ClaudeAuthError):
            raise error


@dataclass(frozen=True)
class _FailOver:
    """Step: move down the cascade; it reads other sources, so coroutines run it in a thread."""

    failover: Failover
    failed: Credential
    reason: str
    temporary: bool = False
    retry_after: float | None = None

    def run(self) -> Credential | None:
        return self.failover.fail_over(
            self.failed, self.reason, temporary=self.temporary, retry_after=self.retry_after
        )

    async def arun(self) -> Credential | None:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.run)


@dataclass(frozen=True)
class _Body:
    """Step: read a response body (to look for the "Claude Code only" refusal)."""

    response: httpx2.Response

    def run(self) -> bytes:
        return self.response.read()

    def arun(self) -> Awaitable[bytes]:
        return self.response.aread()


Step = httpx2.Request | _Token | _Probe | _FailOver | _Body


@dataclass(frozen=True)
class _Outcome:
    """What the last step gave back to the generator: a value, or an error to raise there."""

    value: Any = field(default=None, repr=False)
    error: Exception | None = None

    def advance(self, steps: Generator[Step, Any, None], request: httpx2.Request) -> Step | None:
        """The next step; our error on the way out becomes its SDK twin (not retried)."""
        try:
            return steps.throw(self.error) if self.error else steps.send(self.value)
        except StopIteration:
            return None
        except ClaudeAuthError as error:
            raise_to_the_sdk(error, request)

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
    """Bearer auth that recovers a refused token: refresh and resend, or move down the cascade."""

    requires_response_body = False

    def __init__(self, cache: TokenCache, failover: Failover, source: TokenSource) -> None:
        super().__init__(cache)
        self._failover = failover
        self._source = source
        self._wrapped: dict[int, tuple[Any, TokenSource]] = {}

    @override
    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        steps, outcome = self._steps(request), _Outcome()
        while (step := outcome.advance(steps, request)) is not None:
            if isinstance(step, httpx2.Request):
                outcome = _Outcome((yield step))
            else:
                outcome = _Outcome.of(step.run)

    @override
    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        steps, outcome = self._steps(request), _Outcome()
        while (step := outcome.advance(steps, request)) is not None:
            if isinstance(step, httpx2.Request):
                outcome = _Outcome((yield step))
            else:
                outcome = await _Outcome.of_awaited(step.arun())

    def _steps(self, request: httpx2.Request) -> Generator[Step, Any, None]:
        """The whole policy: send; on a refusal refresh and resend, or resend with the next
        source of the cascade; after a temporary failure, one request at a time tries OAuth."""
        if self._has_static_credential(request):
            yield request
            return
        failover, token = self._failover, None
        fallback = failover.fallback  # read once per attempt: another request may change it
        if fallback is not None and failover.probe_due():
            token = yield _Probe(failover, self._source)
            fallback = failover.fallback
        for _ in range(MAX_SWITCHES):
            if fallback is None:
                credential, source = failover.primary, self._source
            else:
                credential, token = fallback.credential, None  # a probe's token is the primary's
                if credential.kind != "oauth":
                    assert credential.secret is not None
                    _apply_key(request, credential.secret)
                    yield request
                    return
                source = self._source_of(fallback)
            try:
                if token is None:
                    token = yield _Token(source)
                self._apply(request, token.reveal())
                response = yield request
                failover.quotas.note(credential.source, response.headers)  # headers come first
                if response.status_code == 401:
                    fresh = yield _Token(source, rejected=token)
                    if fresh == token:
                        return
                    self._apply(request, fresh.reveal())
                    response = yield request
                    failover.quotas.note(credential.source, response.headers)
                    if response.status_code != 401:
                        return
                    reason = "the API refused a freshly refreshed token"
                elif response.status_code in (400, 403):
                    yield _Body(response)
                    if CLAUDE_CODE_ONLY not in response.text.lower():
                        return
                    reason = CLAUDE_CODE_ONLY_REASON
                else:
                    return
            except OAuthRefreshError as error:
                if (yield _FailOver(failover, credential, str(error))) is None:
                    raise advised(error, NO_FALLBACK_ADVICE) from None
            except (TokenRefreshError, StoreError) as error:
                retry_after = getattr(error, "retry_after", None)
                step = _FailOver(failover, credential, str(error), True, retry_after)
                if (yield step) is not None:
                    pass
                elif token is None:
                    raise
                else:
                    return  # the API refused the token and it cannot be refreshed right now
            else:
                if (yield _FailOver(failover, credential, reason)) is None:
                    return  # the SDK raises the refusal, with what to do appended
            token, fallback = None, failover.fallback

    def _source_of(self, fallback: Fallback) -> TokenSource:
        """The token source of an OAuth fallback (kept while that fallback lasts)."""
        provider = fallback.token_source
        known = self._wrapped.get(id(provider))
        if known is not None and known[0] is provider:
            return known[1]
        wrapped = as_token_source(provider, None)
        self._wrapped = {id(provider): (provider, wrapped)}
        return wrapped


def as_token_source(provider: Any, cache: TokenCache | None) -> TokenSource:
    """Our managers as they are; any other SDK provider through a ``TokenCache``."""
    if isinstance(provider, OAuthTokenManager) or hasattr(provider, "async_get_valid_token"):
        return provider  # type: ignore[no-any-return]
    return CacheSource(cache if cache is not None else TokenCache(provider))


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
