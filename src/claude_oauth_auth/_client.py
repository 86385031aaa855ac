"""ClaudeClient and AsyncClaudeClient: the SDK clients, with our credentials and fallback.

Each class spells out the SDK's own constructor and ``copy()`` arguments, with the SDK's
types, so editors complete them and type checkers check them (a test keeps them in step with
the installed SDK); the work both classes share lives in the functions below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anthropic
import httpx2
from anthropic._constants import DEFAULT_MAX_RETRIES
from anthropic._middleware import MiddlewareInput
from anthropic._types import NotGiven, OpenTelemetryClientOption, not_given
from anthropic.lib.credentials import AccessTokenProvider, AsyncAccessTokenProvider, TokenCache
from httpx2 import Timeout
from typing_extensions import Self

from ._flow import (
    CLAUDE_CODE_ADVICE,
    CLAUDE_CODE_ONLY,
    NO_FALLBACK_ADVICE,
    OAUTH_BETA,
    REFUSED_TOKEN_ADVICE,
    AuthFlow,
    advised,
    as_token_source,
    beta_flags,
)
from ._quota import Quota
from ._sdk_errors import OAuthRefreshError
from .cascade._cascade import UnifiedAuthManager
from .lifecycle._manager import OAuthTokenManager
from .stores._base import TokenStore

__all__ = ["AsyncClaudeClient", "ClaudeClient"]

Client = TypeVar("Client", "ClaudeClient", "AsyncClaudeClient")


class ClaudeClient(anthropic.Anthropic):
    """``anthropic.Anthropic``, with its credential found for you and OAuth kept fresh.

    Every resource, streaming, ``with_options()`` and error of the SDK work unchanged.
    The credential comes from the first source of the cascade that has one (see
    ``UnifiedAuthManager``) unless you pass one; an OAuth token is refreshed before it
    expires, once across threads and processes. When OAuth fails, requests move to the next
    usable source of the cascade (one WARNING), and after a temporary failure come back to
    OAuth once a refresh succeeds.

    Example:
        >>> client = ClaudeClient()
        >>> client.auth_method, client.auth_source
        ('oauth', 'auth_file')
    """

    auth_manager: UnifiedAuthManager
    """Which credential this client uses, where it came from, and its fallback."""

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
        credentials: AccessTokenProvider | None = None,
        config: Mapping[str, Any] | None = None,
        profile: str | None = None,
        refresh_threshold: float | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        clock: Callable[[], float] | None = None,
        webhook_key: str | None = None,
        base_url: str | httpx2.URL | None = None,
        timeout: float | Timeout | NotGiven | None = not_given,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        open_telemetry: OpenTelemetryClientOption = None,
        http_client: httpx2.Client | None = None,
        middleware: Sequence[MiddlewareInput] | None = None,
        _strict_response_validation: bool = False,
        _token_cache: TokenCache | NotGiven | None = not_given,
    ) -> None:
        """Find a credential and build the SDK client with it.

        Args:
            api_key: Use this API key and nothing else (like the SDK's ``api_key=``).
            auth_token: Use this static bearer token and nothing else.
            oauth_manager: An ``OAuthTokenManager`` (or subclass) to take OAuth tokens from.
            auth_manager: A ``UnifiedAuthManager`` to share (copies of a client share one).
            token_file: A token file to use, in our shape or Claude Code's.
            store: A ``TokenStore`` holding the OAuth tokens.
            sources: The cascade steps to look at, in order (default: all of them).
            credentials: Any SDK credentials provider.
            config: The SDK's in-memory profile configuration (the SDK's ``config=``).
            profile: The name of an SDK profile (the SDK's ``profile=``).
            refresh_threshold: Refresh this many seconds before the token expires.
            client_id: The OAuth client id to refresh with.
            token_url: The token endpoint to refresh at.
            clock: The time source of the refreshes and of the fallback's retries, in seconds
                (tests); default the system clock.
            webhook_key: Passed to the SDK client, as are all the arguments below.
            base_url: The API's base URL.
            timeout: The request timeout.
            max_retries: How many times the SDK retries a failed request.
            default_headers: Headers sent with every request.
            default_query: Query parameters sent with every request.
            open_telemetry: The SDK's OpenTelemetry option.
            http_client: A custom ``httpx2.Client``.
            middleware: The SDK's request middleware.
            _strict_response_validation: The SDK's response validation switch.
            _token_cache: The SDK's token cache, shared between copies.

        At most one credential argument (``api_key`` … ``profile``) may be given.
        """
        sdk = _setup(self, auth_manager, locals())
        super().__init__(**sdk)
        _install_flow(self)

    @property
    def auth_method(self) -> str:
        """``"oauth"`` or ``"api_key"`` (after a fallback, the fallback's)."""
        return self.auth_manager.auth_method

    @property
    def auth_source(self) -> str:
        """The cascade step whose credential requests use now."""
        return self.auth_manager.source

    @property
    def quota(self) -> Quota | None:
        """The subscription quota the last response for the login in use reported, or None.

        From the ``anthropic-ratelimit-unified-*`` headers of responses the client already
        received (nothing is fetched); shared with its copies. API keys get none.
        """
        return _quota_of(self)

    def copy(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        credentials: AccessTokenProvider | NotGiven | None = not_given,
        config: Mapping[str, Any] | None = None,
        profile: str | None = None,
        webhook_key: str | None = None,
        base_url: str | httpx2.URL | None = None,
        timeout: float | Timeout | NotGiven | None = not_given,
        http_client: httpx2.Client | None = None,
        max_retries: int | NotGiven = not_given,
        open_telemetry: OpenTelemetryClientOption = None,
        default_headers: Mapping[str, str] | None = None,
        set_default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        set_default_query: Mapping[str, object] | None = None,
        middleware: Sequence[MiddlewareInput] | NotGiven | None = not_given,
        _extra_kwargs: Mapping[str, Any] = {},
    ) -> Self:
        """A new client with changed options (the SDK's ``copy``).

        Without a new credential the copy shares this client's: one ``auth_manager``, one
        refresh and one fallback for all copies.
        """
        copied: Self = _copy(self, super().copy, locals())
        return copied

    with_options = copy

    def _should_retry(self, response: httpx2.Response) -> bool:
        return not _refused_after_our_retry(self, response) and super()._should_retry(response)

    def _make_status_error_from_response(
        self, response: httpx2.Response
    ) -> anthropic.APIStatusError:
        return _with_advice(super()._make_status_error_from_response(response), response)


class AsyncClaudeClient(anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic``, with its credential found for you and OAuth kept fresh.

    The same as ``ClaudeClient`` for coroutines; a refresh runs in a worker thread and never
    blocks the event loop.

    Example:
        >>> async with AsyncClaudeClient() as client:
        ...     await client.messages.create(model=..., max_tokens=100, messages=[...])
    """

    auth_manager: UnifiedAuthManager
    """Which credential this client uses, where it came from, and its fallback."""

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
        credentials: AccessTokenProvider | AsyncAccessTokenProvider | None = None,
        config: Mapping[str, Any] | None = None,
        profile: str | None = None,
        refresh_threshold: float | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        clock: Callable[[], float] | None = None,
        webhook_key: str | None = None,
        base_url: str | httpx2.URL | None = None,
        timeout: float | Timeout | NotGiven | None = not_given,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        open_telemetry: OpenTelemetryClientOption = None,
        http_client: httpx2.AsyncClient | None = None,
        middleware: Sequence[MiddlewareInput] | None = None,
        _strict_response_validation: bool = False,
        _token_cache: TokenCache | NotGiven | None = not_given,
    ) -> None:
        """Find a credential and build the SDK client with it.

        Takes the same arguments as ``ClaudeClient``, except that ``http_client`` is an
        ``httpx2.AsyncClient`` and ``credentials`` may be an async provider.
        """
        sdk = _setup(self, auth_manager, locals())
        super().__init__(**sdk)
        _install_flow(self)
        import filelock  # noqa: F401  (imported by a first refresh's thread: loop stalls 100 ms)

    @property
    def auth_method(self) -> str:
        """``"oauth"`` or ``"api_key"`` (after a fallback, the fallback's)."""
        return self.auth_manager.auth_method

    @property
    def auth_source(self) -> str:
        """The cascade step whose credential requests use now."""
        return self.auth_manager.source

    @property
    def quota(self) -> Quota | None:
        """The subscription quota the last response reported; see ``ClaudeClient.quota``."""
        return _quota_of(self)

    def copy(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        credentials: AccessTokenProvider | AsyncAccessTokenProvider | NotGiven | None = not_given,
        config: Mapping[str, Any] | None = None,
        profile: str | None = None,
        webhook_key: str | None = None,
        base_url: str | httpx2.URL | None = None,
        timeout: float | Timeout | NotGiven | None = not_given,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int | NotGiven = not_given,
        open_telemetry: OpenTelemetryClientOption = None,
        default_headers: Mapping[str, str] | None = None,
        set_default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        set_default_query: Mapping[str, object] | None = None,
        middleware: Sequence[MiddlewareInput] | NotGiven | None = not_given,
        _extra_kwargs: Mapping[str, Any] = {},
    ) -> Self:
        """A new client with changed options (the SDK's ``copy``); see ``ClaudeClient.copy``."""
        copied: Self = _copy(self, super().copy, locals())
        return copied

    with_options = copy

    def _should_retry(self, response: httpx2.Response) -> bool:
        return not _refused_after_our_retry(self, response) and super()._should_retry(response)

    def _make_status_error_from_response(
        self, response: httpx2.Response
    ) -> anthropic.APIStatusError:
        return _with_advice(super()._make_status_error_from_response(response), response)


# ----- what both clients share ------------------------------------------------------------------

# The arguments that choose the credential, as UnifiedAuthManager takes them.
_AUTH_ARGUMENTS = (
    "api_key",
    "auth_token",
    "oauth_manager",
    "credentials",
    "token_file",
    "store",
    "sources",
    "refresh_threshold",
    "client_id",
    "token_url",
    "clock",
    "profile",
    "config",
)


def _setup(
    client: ClaudeClient | AsyncClaudeClient,
    auth_manager: UnifiedAuthManager | None,
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """Resolve the credential into ``client.auth_manager``; the SDK constructor's arguments."""
    base_url = arguments["base_url"]
    try:
        if auth_manager is None:
            auth_manager = UnifiedAuthManager(
                **{name: arguments[name] for name in _AUTH_ARGUMENTS},
                base_url=None if base_url is None else str(base_url),  # a profile may refresh there
            )
    except OAuthRefreshError as error:
        advised(error, NO_FALLBACK_ADVICE)
        raise
    client.auth_manager = auth_manager
    sdk = {
        name: value
        for name, value in arguments.items()
        if name not in _AUTH_ARGUMENTS and name not in ("self", "auth_manager", "__class__")
    }
    profile_base_url = auth_manager.credential_base_url
    if profile_base_url and not base_url and not os.environ.get("ANTHROPIC_BASE_URL"):
        sdk["base_url"] = profile_base_url  # as the SDK: a profile's host
    # An OAuth client keeps its flow even after a fallback, to come back when OAuth recovers.
    credential = auth_manager.credential
    if credential.kind == "api_key":
        sdk["api_key"] = auth_manager.active_credential.secret
    elif credential.kind == "auth_token":
        sdk["auth_token"] = auth_manager.active_credential.secret
    else:
        sdk["credentials"] = auth_manager.token_source
    return sdk


def _install_flow(client: ClaudeClient | AsyncClaudeClient) -> None:
    """After the SDK's constructor: the profile's headers, and our auth flow."""
    if client.auth_manager.credential_headers:
        client._credential_headers = client.auth_manager.credential_headers
    cache = client._token_cache
    if cache is not None:
        source = as_token_source(client.auth_manager.token_source, cache)
        client._custom_auth = AuthFlow(cache, client.auth_manager.failover, source)


def _copy(client: Client, sdk_copy: Any, arguments: dict[str, Any]) -> Any:
    options = {key: value for key, value in arguments.items() if key not in ("self", "__class__")}
    new_credential = (
        options["api_key"]
        or options["auth_token"]
        or not isinstance(options["credentials"], NotGiven)
        or options["config"] is not None
        or options["profile"] is not None
    )
    if new_credential:
        return sdk_copy(**options)
    del options["credentials"]
    extra: dict[str, Any] = {"auth_manager": client.auth_manager}
    if client.auth_manager.credential.kind == "oauth" and options["base_url"] is None:
        extra["_token_cache"] = client._token_cache  # one cache (and one refresh) for all copies
    extra.update(options.pop("_extra_kwargs"))
    return sdk_copy(_extra_kwargs=extra, **options)


def _quota_of(client: ClaudeClient | AsyncClaudeClient) -> Quota | None:
    auth = client.auth_manager
    return auth.failover.quotas.get(auth.source)


def _refused_after_our_retry(client: ClaudeClient | AsyncClaudeClient, response: Any) -> bool:
    # Our auth flow already refreshed and resent a 401; a second round would spend another
    # refresh token on a credential the API keeps refusing.
    return response.status_code == 401 and isinstance(client._custom_auth, AuthFlow)


def _with_advice(
    error: anthropic.APIStatusError, response: httpx2.Response
) -> anthropic.APIStatusError:
    if error.status_code in (400, 403) and CLAUDE_CODE_ONLY in error.message.lower():
        return advised(error, CLAUDE_CODE_ADVICE)
    if error.status_code == 401 and OAUTH_BETA in beta_flags(response.request):
        return advised(error, REFUSED_TOKEN_ADVICE)
    return error
