"""Falling back down the cascade when OAuth fails, and coming back after a temporary failure.

``UnifiedAuthManager`` holds one ``Failover`` (``auth.failover``), shared by the client's auth
flow and the LiteLLM helpers. Policy:

- The credential in use fails (a refused refresh, a token the API refuses, or an expired
  token whose endpoint is failing): the next usable source *below it* in the cascade takes
  over, whatever its kind; one WARNING names both. Sources that are absent, invalid, or
  point at the same store as a failed one are skipped.
- After a temporary failure of the cascade's own choice (the primary), it is tried again,
  by one request at a time, once its backoff has passed (the endpoint's ``Retry-After``, else
  1, 2, 4 … 60 s). The first refresh that succeeds brings every request back (one INFO).
  A refused refresh during such a try makes the switch permanent.
- A permanent failure (a dead login, a refusal by the API) is never retried by this client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import _clock
from .._errors import ClaudeAuthError
from .._events import emit
from .._quota import QuotaBoard
from ._credential import Credential, SourceReports, State
from ._sources import check_source

__all__ = ["Failover", "Fallback"]

log = logging.getLogger("claude_oauth_auth")

MAX_PROBE_BACKOFF_SECONDS = 60.0

_LABELS = {"api_key": "API key", "auth_token": "bearer token", "oauth": "OAuth token"}


@dataclass(frozen=True)
class Fallback:
    """The credential used instead of the primary one, and why."""

    credential: Credential
    token_source: Any  # what gives its tokens when it is an OAuth credential, else None
    reason: str
    temporary: bool  # the primary failed temporarily and is tried again


class Failover:
    """Which credential a cascade's requests use, and when its primary is tried again.

    One per ``UnifiedAuthManager`` (``auth.failover``), shared by the client's auth flow and
    the LiteLLM helpers. After a temporary failure a caller tries the primary only when
    ``start_probe()`` says so, and reports the result with ``finish_probe(error)``. ``quotas``
    keeps the last quota each of its logins' responses reported.
    """

    def __init__(
        self,
        primary: Credential,
        primary_source: Any,
        *,
        sources: Sequence[str],
        reports: SourceReports,
        settings: Mapping[str, Any],
        token_source_for: Callable[[Credential], Any],
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Start on ``primary``.

        Args:
            primary: The credential the cascade chose.
            primary_source: What gives its tokens when it is an OAuth credential, else None.
            sources: The cascade's steps, in order (a fallback is looked for below the failed one).
            reports: The cascade's reports, updated as sources are checked, fail or take over.
            settings: The client's token-manager arguments, to judge the sources below.
            token_source_for: Builds the token source of a fallback OAuth credential.
            clock: The time source, in seconds, of the retries of the primary (tests);
                default the monotonic clock.
        """
        self._primary = primary
        self._primary_source = primary_source
        self._sources = tuple(sources)
        self._reports = reports
        self._settings = settings
        self._token_source_for = token_source_for
        self._clock = clock or _clock.monotonic
        self._lock = threading.Lock()
        self._fallback: Fallback | None = None
        self._probing = False
        self._next_probe = 0.0
        self._probe_backoff = 1.0
        self.quotas = QuotaBoard()

    def __repr__(self) -> str:
        return f"Failover(primary={self._primary.source!r}, fallback={self._fallback!r})"

    @property
    def primary(self) -> Credential:
        """The credential the cascade chose."""
        return self._primary

    @property
    def primary_source(self) -> Any:
        """What gives the primary's OAuth tokens (None for a key or bearer token)."""
        return self._primary_source

    @property
    def fallback(self) -> Fallback | None:
        """The fallback in use, or None while the primary credential is."""
        return self._fallback

    @property
    def active_credential(self) -> Credential:
        """The credential requests use now: the primary, or its fallback."""
        fallback = self._fallback
        return self._primary if fallback is None else fallback.credential

    @property
    def active_token_source(self) -> Any:
        """What gives the active credential's OAuth tokens (None for a key or bearer token)."""
        fallback = self._fallback
        return self._primary_source if fallback is None else fallback.token_source

    def fallback_credential(self, after: Credential | None = None) -> Credential | None:
        """The next usable credential below ``after`` (default: the one in use), or None.

        Only an OAuth primary falls back; a key or bearer token given or found first is final.
        """
        if self._primary.kind != "oauth":
            return None
        failed = after if after is not None else self.active_credential
        names = [name for name in self._sources if name != "explicit"]
        start = names.index(failed.source) + 1 if failed.source in names else 0
        for name in names[start:]:
            report, credential = check_source(name, self._settings)
            self._reports.record_if_unchecked(name, report)
            if credential is None or _same_place(credential, failed, self._primary):
                continue
            return credential
        return None

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
        with self._lock:
            if failed is not self.active_credential:
                return self.active_credential
            chosen = self._next_fallback(failed, reason, temporary)
            if chosen is None:
                return None
            if self._fallback is None:  # the primary failed: schedule its comeback if temporary
                self._probe_backoff = 1.0
                self._schedule_probe(retry_after)
            self._fallback = chosen
            self._mark(failed, "invalid" if not temporary else "available", reason)
            self._reports.for_source(chosen.credential.source).state = "used"
        following = chosen.credential
        until = " until a refresh succeeds" if chosen.temporary else ""
        emit(
            "fell_back",
            "fell back to another credential",
            source=failed.source,
            to=following.source,
            temporary=temporary,
            reason=reason,
        )
        log.warning(
            "%s from %s %s (%s); falling back to the %s from %s%s",
            "OAuth" if failed.kind == "oauth" else _LABELS[failed.kind].capitalize(),
            failed.source,
            "cannot be refreshed right now" if temporary else "failed",
            reason,
            _LABELS[following.kind],
            following.source,
            until,
        )
        return following

    def _next_fallback(self, failed: Credential, reason: str, temporary: bool) -> Fallback | None:
        """The first source below ``failed`` whose token source can be set up."""
        previous = self._fallback
        after = failed
        while (following := self.fallback_credential(after=after)) is not None:
            try:
                token_source = self._token_source_for(following)
            except (ClaudeAuthError, OSError, ValueError) as error:
                log.warning("Skipping %s as a fallback: %s", following.source, error)
                after = following
                continue
            still_temporary = previous.temporary if previous is not None else temporary
            return Fallback(following, token_source, reason, still_temporary)
        return None

    # ----- coming back after a temporary failure ---------------------------------------------

    def probe_due(self) -> bool:
        """True when the primary may be tried again (cheap; see ``start_probe``)."""
        fallback = self._fallback
        return (
            fallback is not None
            and fallback.temporary
            and not self._probing
            and self._clock() >= self._next_probe
        )

    def start_probe(self) -> bool:
        """Claim the next try of the primary; True for one caller at a time."""
        with self._lock:
            if not self.probe_due():
                return False
            self._probing = True
            return True

    def finish_probe(self, error: BaseException | None) -> None:
        """The try of the primary succeeded (``error`` None) or failed; act on it."""
        with self._lock:
            self._probing = False
            fallback = self._fallback
            if fallback is None:
                return
            if error is None:
                self._fallback = None
                self._mark(self._primary, "used", "")
                self._reports.for_source(fallback.credential.source).state = "available"
            elif _is_refused(error):
                self._fallback = replace(fallback, temporary=False, reason=str(error))
                self._mark(self._primary, "invalid", str(error))
            else:
                self._schedule_probe(getattr(error, "retry_after", None))
        if error is None:
            emit("recovered", "OAuth works again", source=self._primary.source)
            log.info(
                "OAuth from %s works again; stopped using the %s from %s",
                self._primary.source,
                _LABELS[fallback.credential.kind],
                fallback.credential.source,
            )
        elif _is_refused(error):
            log.warning(
                "OAuth from %s failed for good (%s); staying on the %s from %s",
                self._primary.source,
                error,
                _LABELS[fallback.credential.kind],
                fallback.credential.source,
            )
        else:
            log.debug("OAuth from %s still failing: %s", self._primary.source, error)

    def _schedule_probe(self, retry_after: float | None) -> None:
        delay = self._probe_backoff if retry_after is None else max(0.0, retry_after)
        self._probe_backoff = min(MAX_PROBE_BACKOFF_SECONDS, self._probe_backoff * 2)
        self._next_probe = self._clock() + delay

    def _mark(self, credential: Credential, state: State, reason: str) -> None:
        report = self._reports.for_source(credential.source)
        report.state = state
        base = report.detail.split("; OAuth failed: ")[0]
        report.detail = f"{base}; OAuth failed: {reason}".lstrip("; ") if reason else base


def _is_refused(error: BaseException) -> bool:
    """A refused refresh (``OAuthRefreshError``), as opposed to a temporary failure."""
    if not isinstance(error, ClaudeAuthError):
        return False
    from .._sdk_errors import OAuthRefreshError  # imports the SDK: only on this failure path

    return isinstance(error, OAuthRefreshError)


def _where(credential: Credential) -> str | None:
    """The store or file behind an OAuth credential, to skip a fallback that is the same."""
    store = credential.store or getattr(credential.provider, "store", None)
    location = getattr(store, "location", None)
    if isinstance(location, str):
        return location
    return None if credential.path is None else str(credential.path)


def _same_place(candidate: Credential, *failed: Credential) -> bool:
    where = _where(candidate)
    return where is not None and any(where == _where(other) for other in failed)
