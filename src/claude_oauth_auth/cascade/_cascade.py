"""UnifiedAuthManager: runs the cascade, remembers what it found, falls back down it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._config import ENV
from .._errors import ClaudeAuthError, StoreError, TokenRefreshError
from .._tokens import mask
from ..lifecycle._manager import OAuthTokenManager
from ..stores._base import TokenStore
from ._credential import Credential, SourceReport, SourceReports
from ._failover import Failover, Fallback
from ._sources import check_source, explain_reports, validate_sources
from ._static_token import StaticOAuthToken

__all__ = ["StaticOAuthToken", "UnifiedAuthManager"]

log = logging.getLogger("claude_oauth_auth")
_WARNED_SHADOWS: set[tuple[str, str]] = set()


class UnifiedAuthManager:
    """Finds one credential from the cascade and says where it came from.

    ``auth_method`` is ``"oauth"`` or ``"api_key"``; ``source`` names the cascade step.
    Override ``_discover_credentials`` to add a source of your own. When an OAuth credential
    fails, the next usable source below it takes over (``fail_over``); after a temporary
    failure OAuth is tried again and used as soon as a refresh succeeds. The fallback lives in
    ``failover`` (a ``Failover``), which the clients' auth flow and the LiteLLM helpers share.
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
        self._reports = SourceReports(("explicit", *self._sources))
        self._clock = clock
        found = self._discover_credentials()
        if found is None:
            from .._sdk_errors import NoCredentialsError

            raise NoCredentialsError(self._no_credentials_message())
        self.credential = self._coerce(found)
        self._reports.for_source(self.credential.source).state = "used"
        self.token_source = self._token_source_for(self.credential)
        self.failover = Failover(
            self.credential,
            self.token_source,
            sources=self._sources,
            reports=self._reports,
            settings=self._manager_options,
            token_source_for=self._token_source_for,
            clock=clock,
        )
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
        return list(self._reports)

    # ----- the fallback (see ``Failover``) ---------------------------------------------------

    @property
    def active_credential(self) -> Credential:
        """The credential requests use now: the primary, or its fallback."""
        return self.failover.active_credential

    @property
    def active_token_source(self) -> Any:
        """What gives the active credential's OAuth tokens (None for a key or bearer token)."""
        return self.failover.active_token_source

    @property
    def fallback(self) -> Fallback | None:
        """The fallback in use, or None while the primary credential is."""
        return self.failover.fallback

    @property
    def fallback_reason(self) -> str | None:
        """Why the client left the primary credential, or None."""
        fallback = self.failover.fallback
        return None if fallback is None else fallback.reason

    def fallback_credential(self, after: Credential | None = None) -> Credential | None:
        """The next usable credential below ``after`` (default: the one in use), or None.

        Only an OAuth primary falls back; a key or bearer token given or found first is final.
        """
        return self.failover.fallback_credential(after)

    def fail_over(
        self,
        failed: Credential,
        reason: str,
        *,
        temporary: bool = False,
        retry_after: float | None = None,
    ) -> Credential | None:
        """``failed`` stopped working: move to the next usable source below it.

        Returns the credential to use now, or None when there is none. Requests that report
        a failure another one already handled get the credential already chosen.
        """
        return self.failover.fail_over(failed, reason, temporary=temporary, retry_after=retry_after)

    def switch_to_fallback(self, reason: str) -> str | None:
        """Leave the credential in use for good; return the next one's key or bearer token.

        None when there is no next source, or when it is an OAuth source (its token comes from
        ``fallback.token_source``).
        """
        following = self.fail_over(self.active_credential, reason)
        return None if following is None or following.kind == "oauth" else following.secret

    def __repr__(self) -> str:
        return f"{type(self).__name__}(auth_method={self.auth_method!r}, source={self.source!r})"

    # ----- discovery -------------------------------------------------------------------------

    def _discover_credentials(self) -> Any:
        """Return the first credential of the cascade, or None. Override to add a source."""
        if self._explicit:
            return self._explicit_credential()
        self._reports.for_source("explicit").state = "absent"
        self._reports.for_source("explicit").detail = "no credential arguments were passed"
        for name in self._sources:
            if name == "explicit":
                continue
            report, credential = check_source(name, self._manager_options)
            self._reports.record(name, report)
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
        report = self._reports.for_source("explicit")
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
        self._reports.record("explicit", report)
        if credential is None:
            raise ClaudeAuthError(f"{name}= argument: {report.detail}")
        return credential

    def _coerce(self, found: Any) -> Credential:
        """Accept what a custom ``_discover_credentials`` returns."""
        if isinstance(found, Credential):
            return found
        custom = self._reports.for_source("custom")
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
            from .._sdk_errors import OAuthRefreshError

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
