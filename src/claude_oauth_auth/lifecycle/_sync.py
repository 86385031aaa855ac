"""The manager's side of its store: what it holds, reloading, saving before use."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _config, _telemetry
from .._errors import StoreConflict, StoreError, TokenFileError
from .._events import emit
from .._tokens import Secret, TokenSet
from ..stores._base import DEFAULT_LOCK_TIMEOUT, TokenStore
from ._writeback import WATCH_INTERVAL_SECONDS, WriteBacks

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["NOTHING_SERVED", "Served", "StoreSync", "default_token_file", "make_access_token"]

log = logging.getLogger("claude_oauth_auth")

SAVE_RETRY_INTERVAL_SECONDS = 1.0

_access_token_class: Any = None


def make_access_token(token: str) -> AccessToken:
    """An SDK ``AccessToken`` with ``expires_at=0``: the SDK asks us again before each request."""
    global _access_token_class
    if _access_token_class is None:
        from anthropic.lib.credentials import AccessToken as imported

        _access_token_class = imported
    token_object: AccessToken = _access_token_class(token, expires_at=0)
    return token_object


def default_token_file() -> Path:
    """The first existing of CLAUDE_AUTH_FILE, our auth.json, Claude Code's file; else our path."""
    named = _config.env_value(_config.ENV.AUTH_FILE)
    ours = _config.expand_path(named) if named else _config.default_auth_file()
    for candidate in (ours, _config.claude_code_file()):
        if candidate.is_file():
            return candidate
    return ours


def _replaces(held: TokenSet, tokens: TokenSet | None) -> bool:
    """``tokens`` is another login than ``held`` (a rotation, or a new login)."""
    newer = tokens.refresh_token if tokens is not None else None
    return None not in (held.refresh_token, newer) and held.refresh_token != newer


@dataclass(frozen=True, slots=True)
class Served:
    """What the fast path hands out, and until when (``clock()`` seconds) it may."""

    until: float
    text: str = field(repr=False)
    token: Any = field(repr=False)  # the cached SDK AccessToken, built on first use


NOTHING_SERVED = Served(-math.inf, "", None)


class StoreSync(WriteBacks):
    """Keeps the current tokens in step with the store (the manager adds the policy)."""

    access_token: str | None
    refresh_token: str | None
    token_expiry: float | None
    store: TokenStore | None
    client_id: str
    token_url: str
    refresh_threshold: float
    _explicit_client_id: str | None
    _explicit_token_url: str | None
    _clock: Callable[[], float]
    _served: Served
    _holding_store_lock: bool

    def is_token_valid(self) -> bool:
        """True when there is an access token and it has not expired."""
        expiry = self.token_expiry
        return bool(self.access_token) and (expiry is None or expiry > self._clock())

    def _threshold(self) -> float:
        """The refresh threshold; one at or above the lifetime the endpoint last granted is
        capped at half that lifetime, so it refreshes once per half-lifetime, not on every
        request. A threshold below the lifetime is used as given (a sidecar's, say)."""
        lifetime = self._state.granted_lifetime
        if lifetime is None or self.refresh_threshold < lifetime:
            return self.refresh_threshold
        return lifetime / 2

    def _fresh(self, now: float) -> bool:
        expiry = self.token_expiry
        return bool(self.access_token) and (expiry is None or expiry - now > self._threshold())

    def _adopt(self, tokens: TokenSet | None) -> None:
        """Make ``tokens`` current and recompute until when the fast path may serve them."""
        held, self._state.tokens = self._state.tokens, tokens
        self._served = NOTHING_SERVED
        if held is not None and held.expires_at is not None and _replaces(held, tokens):
            # Workers still holding ``held`` come to the store in its refresh window.
            self._state.watch = (held.expires_at - self._threshold(), held.expires_at)
        if tokens is None:
            self.access_token = self.refresh_token = self.token_expiry = None
            return
        self.access_token = tokens.access_token or None
        self.refresh_token = tokens.refresh_token
        self.token_expiry = tokens.expires_at
        if not self._explicit_client_id and isinstance(tokens.extra.get("client_id"), str):
            self.client_id = tokens.extra["client_id"]
        if not self._explicit_token_url and isinstance(tokens.extra.get("token_url"), str):
            self.token_url = _config.validate_token_url(tokens.extra["token_url"])
        self._schedule_fast_path(self._clock())

    def _schedule_fast_path(self, now: float) -> None:
        poll = getattr(self.store, "poll_interval", 1.0) if self.store is not None else None
        start, end = self._state.watch
        if poll is None and now < end and self._restore_method() is not None:
            poll = WATCH_INTERVAL_SECONDS if now >= start else start - now
        self._state.next_poll = now + poll if poll is not None else math.inf
        if (
            not self.access_token
            or self._state.failure is not None
            or self._state.unsaved is not None
        ):
            self._served = NOTHING_SERVED
            return
        expiry = self.token_expiry
        fresh_until = math.inf if expiry is None else expiry - self._threshold()
        self._served = Served(min(fresh_until, self._state.next_poll), self.access_token, None)

    def _reload(self) -> None:
        """Read the store; a missing login is a TokenFileError naming where it was looked for."""
        assert self.store is not None
        version = self.store.version()
        tokens = self.store.load()
        if tokens is None and version is None and self._restore_lost_login():
            version, tokens = self.store.version(), self.store.load()
        if tokens is None and version is None:
            self._forget_removed_login()
        if tokens is None:
            raise TokenFileError(
                self.store.location,
                "does not exist" if version is None else "holds no OAuth login",
                "log in with Claude Code, or run `claude-oauth-auth save`",
            )
        if self._went_back(version, tokens):
            self._write_back_newer()
            return
        if self._is_stale_write_back(tokens):
            self._keep_ours_over_stale_write_back(version)
            return
        self._state.version = version
        held = self._state.tokens
        self._adopt(tokens)
        if held is not None and _replaces(held, tokens) and self.store is not None:
            emit("adopted", "OAuth tokens adopted from the store", store=self.store.location)
        if tokens.extra.get("restored") and tokens.refresh_token is not None:
            self._start_restore_grace(tokens.refresh_token)  # whoever wrote it back
        if self._state.failure is not None and self.refresh_token != self._state.failure[1]:
            log.info("New OAuth tokens found in storage; OAuth is usable again")
            self._state.failure = None
            self._schedule_fast_path(self._clock())

    def _reload_if_changed(self, now: float) -> None:
        if self.store is None:
            return
        try:
            changed = self.store.version() != self._state.version
        except StoreError as error:
            _telemetry.store_failed(self.store, "read", error)
            expiry = self.token_expiry
            if self.access_token and (expiry is None or expiry > now):
                return  # unreachable: serve the valid token; a refresh reports the outage
            raise
        if changed:
            self._reload_quietly()
        else:
            self._schedule_fast_path(now)

    def _reload_quietly(self) -> None:
        """Re-read the store, keeping what is in memory if it is unreadable right now."""
        if self.store is None or self._state.unsaved is not None:
            return
        try:
            self._reload()
        except (StoreError, OSError, ValueError) as error:
            _telemetry.store_failed(self.store, "read", error)
            if self._restore_method() is None:  # else the version ranks the held login
                self._state.version = self.store.version()
            self._schedule_fast_path(self._clock())
            if self._state.tokens is not None:
                log.warning(
                    "Could not re-read OAuth tokens (%s); keeping the ones in memory", error
                )

    # ----- saving ------------------------------------------------------------------------------

    def _persist(self, fresh: TokenSet, *, spent: Secret) -> None:
        """Save ``fresh`` (compare-and-set) before it is used; never drop it."""
        self._state.last_refresh_at = self._state.last_save_attempt = self._clock()
        store = self.store
        if store is not None:
            try:
                try:
                    store.save(fresh, expected_version=self._state.version)
                except StoreConflict:
                    if self._newer_login_in_store(spent, fresh):
                        return
                    store.save(fresh, expected_version=store.version())
            except Exception as error:
                _telemetry.store_failed(store, "save", error)
                log.error(
                    "Could not save the rotated OAuth tokens to %s (%s). They are kept in "
                    "memory and the save is retried; free disk space or fix permissions there, "
                    "or this login is lost when the process exits.",
                    store.location,
                    getattr(error, "strerror", None) or error,
                )
                self._state.unsaved = fresh
            else:
                self._state.version = store.version()
        self._adopt(fresh)

    def _newer_login_in_store(self, spent: Secret, fresh: TokenSet) -> bool:
        """Someone wrote while we refreshed: adopt theirs only if it is a newer login."""
        assert self.store is not None
        try:
            theirs = self.store.load()
        except (StoreError, OSError):
            return False
        if theirs is None or theirs.refresh_token in (spent.reveal(), fresh.refresh_token, None):
            return False  # a stale write-back, or our own: keep ours and write it again
        if theirs.older_than(fresh):
            return False  # an older login of our chain, written back meanwhile
        if (theirs.expires_at or math.inf) < (fresh.expires_at or math.inf):
            return False
        log.warning("A newer login was saved to %s meanwhile; using it", self.store.location)
        self._state.version = self.store.version()
        self._adopt(theirs)
        return True

    def _retry_save(self, now: float) -> None:
        pending, store = self._state.unsaved, self.store
        if pending is None or store is None:
            return
        if now - self._state.last_save_attempt < SAVE_RETRY_INTERVAL_SECONDS:
            return
        self._state.last_save_attempt = now
        try:
            with store.lock(DEFAULT_LOCK_TIMEOUT):
                self._holding_store_lock = True
                try:
                    store.save(pending, expected_version=store.version())
                finally:
                    self._holding_store_lock = False
        except Exception as error:
            _telemetry.store_failed(store, "save", error)
            log.debug("Saving the rotated OAuth tokens failed again: %s", error)
            return
        log.info("Saved the rotated OAuth tokens to %s after an earlier failure", store.location)
        self._state.unsaved = None
        self._state.version = store.version()
        self._schedule_fast_path(now)
