"""Token sources for the SDK's configuration (imports the SDK; built only for a client).

A ``user_oauth`` profile refreshes through our ``OAuthTokenManager`` over its credentials file
(our lock, the SDK's request). ``oidc_federation`` profiles and workload identity keep the
SDK's own providers, whose failures are re-raised naming the source and what to check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import anthropic
from anthropic.lib.credentials import (
    AccessToken,
    CredentialsFile,
    IdentityTokenFile,
    InMemoryConfig,
    WorkloadIdentityCredentials,
    WorkloadIdentityError,
)

from .._config import ENV
from .._errors import TokenRefreshError
from .._sdk_errors import OAuthRefreshError
from .._tokens import Secret, TokenSet
from ..lifecycle._grant import request_refresh
from ..lifecycle._manager import OAuthTokenManager
from ..stores._base import TokenStore
from ._profiles import USER_OAUTH, SdkProfile
from ._sources import Credential

__all__ = ["DiagnosedProvider", "sdk_token_source", "workload_identity_provider"]

OAUTH_BETA = "oauth-2025-04-20"
WORKLOAD_LABEL = "workload identity (ANTHROPIC_FEDERATION_RULE_ID, ANTHROPIC_ORGANIZATION_ID)"


def sdk_token_source(
    credential: Credential,
    *,
    base_url: str | None,
    refresh_threshold: float | None,
    clock: Callable[[], float] | None = None,
) -> Any:
    """The provider for a credential found by an SDK step (or ``profile=``/``config=``);
    ``clock`` is the time source of the manager of a ``user_oauth`` profile."""
    client_base_url = base_url or os.environ.get(ENV.BASE_URL) or None
    profile = credential.profile
    if profile is not None and profile.auth_type == USER_OAUTH:
        assert credential.store is not None
        return profile_manager(
            profile, credential.store, client_base_url, refresh_threshold, clock=clock
        )
    inner: Any
    if profile is not None:
        if profile.config_path is not None:
            inner = CredentialsFile(profile=profile.name)
        else:
            inner = InMemoryConfig(dict(profile.config))
        label = profile.describe()
    else:
        inner, label = workload_identity_provider(), WORKLOAD_LABEL
    if client_base_url:
        inner.bind_base_url(client_base_url)
    return DiagnosedProvider(inner, label)


def profile_manager(
    profile: SdkProfile,
    store: TokenStore,
    client_base_url: str | None,
    refresh_threshold: float | None,
    *,
    clock: Callable[[], float] | None = None,
) -> OAuthTokenManager:
    """Our manager over a ``user_oauth`` profile: its client id, its host's token endpoint."""
    return OAuthTokenManager(
        store=store,
        client_id=profile.client_id,
        token_url=profile.token_url(client_base_url),
        refresh_threshold=refresh_threshold,
        clock=clock,
        grant=_profile_grant,
    )


def _profile_grant(token_url: str, refresh_token: Secret, client_id: str) -> TokenSet:
    """The SDK's refresh request for a profile: the same body, with the OAuth beta flag."""
    from .._version import __version__

    return request_refresh(
        token_url,
        refresh_token,
        client_id,
        user_agent=f"claude-oauth-auth/{__version__}",
        extra_headers={"anthropic-beta": OAUTH_BETA},
    )


def workload_identity_provider() -> WorkloadIdentityCredentials:
    """The SDK's jwt-bearer provider, configured from the environment as the SDK does."""
    token_file = os.environ.get(ENV.IDENTITY_TOKEN_FILE)
    identity: Any = IdentityTokenFile(token_file) if token_file else _identity_token_from_env
    return WorkloadIdentityCredentials(
        identity_token_provider=identity,
        federation_rule_id=os.environ[ENV.FEDERATION_RULE_ID],
        organization_id=os.environ[ENV.ORGANIZATION_ID],
        service_account_id=os.environ.get(ENV.SERVICE_ACCOUNT_ID),
        workspace_id=os.environ.get(ENV.WORKSPACE_ID) or None,
        scope=os.environ.get(ENV.SCOPE),
    )


def _identity_token_from_env() -> str:
    """Read on every exchange, so a rotated value is used."""
    value = os.environ.get(ENV.IDENTITY_TOKEN)
    if not value:
        raise anthropic.CredentialsError(f"{ENV.IDENTITY_TOKEN} is no longer set")
    return value


class DiagnosedProvider:
    """An SDK provider whose failures name the cascade step and read like our errors.

    A refusal (4xx, a missing or unreadable file) becomes ``OAuthRefreshError`` (an
    ``anthropic.AuthenticationError``: not retried, may fall back); an unreachable or failing
    endpoint becomes ``TokenRefreshError`` (retried by the SDK).
    """

    def __init__(self, inner: Any, label: str) -> None:
        self.inner = inner
        self.label = label

    def __repr__(self) -> str:
        return f"DiagnosedProvider({self.label!r})"

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        try:
            token: AccessToken = self.inner(force_refresh=force_refresh)
        except anthropic.AnthropicError as error:
            status = getattr(error, "status_code", None)
            message = f"{self.label}: {error}; run `claude-oauth-auth status` to check it"
            transient = isinstance(error, WorkloadIdentityError) and (
                status is None or status >= 500 or status == 429
            )
            if transient:
                raise TokenRefreshError(message) from None
            url = "claude-oauth-auth://sdk-credentials"
            raise OAuthRefreshError(message, token_url=url, endpoint_status=status) from None
        return token

    def token(self, *, force: bool = False, rejected: str | None = None) -> str:
        """The token alone (``claude-oauth-auth token``); clients ask through the SDK's cache."""
        return self(force_refresh=force or rejected is not None).token

    def for_base_url(self, base_url: str) -> DiagnosedProvider:
        bound = self.inner.for_base_url(base_url)
        return self if bound is self.inner else DiagnosedProvider(bound, self.label)

    def close(self) -> None:
        self.inner.close()
