"""UnifiedAuthManager: runs the cascade, remembers what it found, falls back down it."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._config import ENV
from ._errors import ClaudeAuthError, StoreError, TokenRefreshError
from ._failover import FailoverMixin
from ._manager import OAuthTokenManager, make_access_token
from ._sources import (
    Credential,
    SourceReport,
    check_source,
    explain_reports,
    validate_sources,
)
from ._tokens import mask
from .stores._base import TokenStore

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["StaticOAuthToken", "UnifiedAuthManager"]

log = logging.getLogger("claude_oauth_auth")
_WARNED_SHADOWS: set[tuple[str, str]] = set()


class StaticOAuthToken:
    """A long-lived OAuth token with no refresh token (``CLAUDE_CODE_OAUTH_TOKEN``)."""

    def __init__(self, token: str, *, source: str) -> None:
        self._token = token
        self._source = source

    def __repr__(self) -> str:
        return f"StaticOAuthToken({mask(self._token)!r}, source={self._source!r})"

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        return make_access_token(self._token)

    def peek_valid_token(self) -> str | None:
        return self._token

    def get_valid_token(self, *, force_refresh: bool = False) -> str:
        return self._token

    def token(self, *, force: bool = False, rejected: str | None = None) -> str:
        if rejected is None:
            return self._token
        from ._sdk_errors import OAuthRefreshError

        raise OAuthRefreshError(
            f"the API refused the OAuth token from {self._source}, which cannot be refreshed; "
            "create a new one with `claude setup-token`",
            token_url="claude-oauth-auth://static-token",
        )

    async def async_token(self, *, force: bool = False, rejected: str | None = None) -> str:
        return self.token(force=force, rejected=rejected)


class UnifiedAuthManager(FailoverMixin):
    """Finds one credential from the cascade and says where it came from.

    ``auth_method`` is ``"oauth"`` or ``"api_key"``; ``source`` names the cascade step.
    Override ``_discover_credentials`` to add a source of your own. When an OAuth credential
    fails, the next usable source below it takes over (``fail_over``); after a temporary
    failure OAuth is tried again and used as soon as a refresh succeeds.
    """

    def __init__(
        self,
        api_key: str | None = None,
        auth_token: str | None = None,
        *,
        oauth_manager: OAuthTokenManager | None = None,
        credentials: Callable[..., Any] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        store: TokenStore | None = None,
        profile: str | None = None,
        config: Mapping[str, Any] | None = None,
        sources: Sequence[str] | None = None,
        refresh_threshold: float | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        base_url: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Run the cascade now and keep the first usable credential.

        Args:
            api_key: An API key (an explicit credential: the cascade is not searched).
            auth_token: A static bearer token.
            oauth_manager: An ``OAuthTokenManager`` of your own.
            credentials: Any SDK credentials provider.
            token_file: A token file to refresh through an ``OAuthTokenManager``.
            store: A ``TokenStore`` to refresh through an ``OAuthTokenManager``.
            profile: An SDK profile name, as ``anthropic.Anthropic(profile=)``.
            config: An SDK profile configuration, as ``anthropic.Anthropic(config=)``.
            sources: Which cascade steps to search, in which order (names from
                ``status``); default all.
            refresh_threshold: Passed to the token managers it builds.
            client_id: Passed to the token managers it builds.
            token_url: Passed to the token managers it builds.
            base_url: The client's API base URL (an SDK profile's token endpoint is on it).
            clock: The time source, in seconds, of the token managers it builds and of the
                fallback's retries of OAuth (tests); default the system clock.

        Raises:
            NoCredentialsError: No source gave a usable credential (the message lists them).
            ValueError: More than one credential argument, or a bad one.
        """
        explicit = {
            name: value
            for name, value in (
                ("api_key", api_key),
                ("auth_token", auth_token),
                ("oauth_manager", oauth_manager),
                ("credentials", credentials),
                ("token_file", token_file),
                ("store", store),
                ("profile", profile),
                ("config", config),
            )
            if value is not None
        }
        if len(explicit) > 1:
            raise ValueError(f"pass at most one credential argument, got {', '.join(explicit)}")
        self._explicit = explicit
        self._base_url = base_url  # the client's API host: an SDK profile may refresh there
        self._sources = validate_sources(sources)
        self._manager_options: dict[str, Any] = {
            "refresh_threshold": refresh_threshold,
            "client_id": client_id,
            "token_url": token_url,
        }
        self._reports: dict[str, SourceReport] = {
            name: SourceReport(name) for name in ("explicit", *self._sources)
        }
        self._lock = threading.Lock()
        self._clock = clock
        self._probe_clock = clock or time.monotonic
        found = self._discover_credentials()
        if found is None:
            from ._sdk_errors import NoCredentialsError

            raise NoCredentialsError(self._no_credentials_message())
        self.credential = self._coerce(found)
        self._report(self.credential.source).state = "used"
        self.token_source = self._token_source_for(self.credential)
        log.info(
            "Using %s from %s",
            "OAuth" if self.credential.kind == "oauth" else "an API key",
            self.credential.source,
        )
        self._check_oauth_at_start()

    # ----- what was found ---------------------------------------------------------------------

    @property
    def auth_method(self) -> str:
        """``"oauth"`` or ``"api_key"`` (after a fallback, the fallback's method)."""
        return self.active_credential.auth_method

    @property
    def source(self) -> str:
        """The name of the cascade step whose credential is in use."""
        return self.active_credential.source

    @property
    def token_manager(self) -> OAuthTokenManager | None:
        """The OAuth token manager in use, if the credential is a refreshable OAuth token."""
        source = self.token_source
        return source if isinstance(source, OAuthTokenManager) else None

    @property
    def credential_headers(self) -> dict[str, str]:
        """Headers its SDK profile adds to every request (``anthropic-workspace-id``)."""
        profile = self.active_credential.profile
        return profile.headers if profile is not None else {}

    @property
    def credential_base_url(self) -> str | None:
        """The API host the credential's SDK profile names, used when the client names none."""
        profile = self.active_credential.profile
        return profile.base_url if profile is not None else None

    @property
    def reports(self) -> list[SourceReport]:
        """One report per source, in cascade order (later sources may be ``not_checked``)."""
        return list(self._reports.values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(auth_method={self.auth_method!r}, source={self.source!r})"

    # ----- discovery -------------------------------------------------------------------------

    def _discover_credentials(self) -> Any:
        """Return the first credential of the cascade, or None. Override to add a source."""
        if self._explicit:
            return self._explicit_credential()
        self._report("explicit").state = "absent"
        self._report("explicit").detail = "no credential arguments were passed"
        for name in self._sources:
            if name == "explicit":
                continue
            report, credential = check_source(name, self._manager_options)
            self._reports[name] = report
            log.debug("Source %s is %s: %s", name, report.state, report.detail)
            if report.final:
                return None  # the SDK raises here too: nothing below is tried
            if report.state == "invalid":
                log.warning("Skipping %s: %s", name, report.detail)
            if credential is not None:
                self._warn_if_shadowing(name)
                return credential
        return None

    def _warn_if_shadowing(self, used: str) -> None:
        """One WARNING when ``used`` hides an SDK credential the user selected on purpose."""
        from ._profiles import SDK_STEPS, explicit_selection

        below = self._sources[self._sources.index(used) + 1 :]
        for step in (name for name in below if name in SDK_STEPS):
            selection = explicit_selection(step)
            if selection is not None and (used, selection) not in _WARNED_SHADOWS:
                _WARNED_SHADOWS.add((used, selection))
                log.warning(
                    "%s is set, but the credential from %s comes first in the cascade and is "
                    "used; remove it or pass sources= to use %s",
                    selection,
                    used,
                    step,
                )

    def _explicit_credential(self) -> Credential:
        (name, value), *_ = self._explicit.items()
        report = self._report("explicit")
        report.detail = f"{name}= argument"
        if name in ("api_key", "auth_token"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}= must be a non-empty string")
            if name == "api_key":
                return Credential("api_key", "explicit", secret=value.strip())
            return Credential("auth_token", "explicit", secret=value.strip())
        if name in ("profile", "config"):
            return self._explicit_profile(name, value)
        if name in ("token_file", "store"):
            where: dict[str, Any] = {name: value}
            manager = OAuthTokenManager(**where, **self._manager_options, clock=self._clock)
            report.path = manager.store.location if manager.store is not None else None
            return Credential("oauth", "explicit", path=manager.token_file, provider=manager)
        if not callable(value):
            raise TypeError(f"{name}= must be an OAuthTokenManager or an SDK credentials provider")
        return Credential("oauth", "explicit", provider=value)

    def _explicit_profile(self, name: str, value: Any) -> Credential:
        """``profile=``/``config=``: an SDK profile, exactly as ``anthropic.Anthropic`` takes it."""
        from ._profiles import check_loaded_profile, load_profile, profile_from_config

        if name == "profile":
            if not isinstance(value, str) or not value:
                raise ValueError("profile= must be a non-empty profile name")
            profile = load_profile(value, "profile= argument")
        else:
            profile = profile_from_config(value)
        report, credential = check_loaded_profile("explicit", profile)
        self._reports["explicit"] = report
        if credential is None:
            raise ClaudeAuthError(f"{name}= argument: {report.detail}")
        return credential

    def _coerce(self, found: Any) -> Credential:
        """Accept what a custom ``_discover_credentials`` returns."""
        if isinstance(found, Credential):
            return found
        custom = self._report("custom")
        custom.state = "available"
        if isinstance(found, str):
            custom.detail = f"API key ({mask(found)}) from _discover_credentials"
            return Credential("api_key", "custom", secret=found)
        if isinstance(found, dict):
            if isinstance(found.get("api_key"), str):
                return self._coerce(found["api_key"])
            if isinstance(found.get("auth_token"), str):
                custom.detail = "bearer token from _discover_credentials"
                return Credential("auth_token", "custom", secret=found["auth_token"])
            if isinstance(found.get("access_token"), str):
                manager = OAuthTokenManager(
                    found["access_token"],
                    found.get("refresh_token"),
                    found.get("token_expiry"),
                    **self._manager_options,
                    clock=self._clock,
                )
                custom.detail = "OAuth tokens from _discover_credentials"
                return Credential("oauth", "custom", provider=manager)
        if callable(found):
            custom.detail = "credentials provider from _discover_credentials"
            return Credential("oauth", "custom", provider=found)
        raise TypeError(
            "_discover_credentials must return a Credential, an API key string, a dict with "
            "api_key/auth_token/access_token, an OAuthTokenManager or an SDK provider"
        )

    def _report(self, name: str) -> SourceReport:
        if name not in self._reports:
            self._reports = {name: SourceReport(name), **self._reports}
        return self._reports[name]

    def _token_source_for(self, credential: Credential) -> Any:
        if credential.kind != "oauth":
            return None
        if credential.provider is not None:
            return credential.provider
        if credential.profile is not None or credential.source == "workload_identity":
            from ._sdk_providers import sdk_token_source

            threshold = self._manager_options["refresh_threshold"]
            return sdk_token_source(
                credential, base_url=self._base_url, refresh_threshold=threshold, clock=self._clock
            )
        if credential.store is not None:
            return OAuthTokenManager(
                store=credential.store, **self._manager_options, clock=self._clock
            )
        assert credential.secret is not None
        return StaticOAuthToken(credential.secret, source=ENV.CODE_OAUTH_TOKEN)

    def _check_oauth_at_start(self) -> None:
        """Refresh a token that is due, so a failing login falls back (or raises) right away."""
        manager = self.token_manager
        if manager is None or not manager.needs_refresh():
            return
        if _inside_event_loop():
            log.debug("Inside an event loop; the first request will refresh")
            return
        try:
            manager.get_valid_token()
        except (TokenRefreshError, StoreError) as error:
            # Temporary: the token is expired (a valid one would have been served) and the
            # endpoint or the store is failing. Requests use the next source until it recovers.
            retry_after = getattr(error, "retry_after", None)
            if self.fail_over(self.credential, str(error), temporary=True, retry_after=retry_after):
                return
            if isinstance(error, StoreError):
                raise
            log.warning("Could not refresh the OAuth token yet: %s", error)
        except ClaudeAuthError as error:
            # Only a refused refresh is an OAuthRefreshError; importing that class imports the
            # SDK, so it happens here, on the failure path, not on every successful start.
            from ._sdk_errors import OAuthRefreshError

            if not isinstance(error, OAuthRefreshError):
                raise
            if self.fail_over(self.credential, str(error)) is None:
                raise

    # ----- explaining ------------------------------------------------------------------------

    def _no_credentials_message(self) -> str:
        return "No Claude credentials found.\n" + explain_reports(self.reports)


def _inside_event_loop() -> bool:
    """True when called from a running asyncio loop (a refresh here would block it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
