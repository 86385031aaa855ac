"""The manager's side of its store: what it holds, reloading, saving before use."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _config
from ._backoff import read_shared_state, state_path, token_digest
from ._errors import StoreConflict, StoreError, TokenFileError
from ._tokens import Secret, TokenSet
from .stores._base import DEFAULT_LOCK_TIMEOUT, TokenStore, Version
from .stores._file import path_of

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["NOTHING_SERVED", "Served", "StoreSync", "default_token_file", "make_access_token"]

log = logging.getLogger("claude_oauth_auth")

SAVE_RETRY_INTERVAL_SECONDS = 1.0
WATCH_INTERVAL_SECONDS = 0.5
"""After adopting a new login, a store that is never polled (Redis) is checked this often until
the login it replaced expires, so a worker that wrote back that older one after the store lost
its data is corrected at once."""
RESTORE_GRACE_SECONDS = 2.0
"""A login written back after lost data (by this process or another) is not spent until this
long after it was first seen: a worker holding a newer login replaces it meanwhile (it checks
every ``WATCH_INTERVAL_SECONDS``). A still-valid access token is served meanwhile."""

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


class StoreSync:
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
    _tokens: TokenSet | None
    _served: Served
    _version: Version
    _next_poll: float
    _last_refresh_at: float
    _failure: tuple[str, str | None, int | None] | None
    _unsaved: TokenSet | None
    _last_save_attempt: float
    _granted_lifetime: float | None
    _spent: list[str]
    _holding_store_lock: bool
    _restored_at: float
    _restored_digest: str
    _watch_until: float

    def is_token_valid(self) -> bool:
        """True when there is an access token and it has not expired."""
        expiry = self.token_expiry
        return bool(self.access_token) and (expiry is None or expiry > self._clock())

    def _threshold(self) -> float:
        """The refresh threshold; one at or above the lifetime the endpoint last granted is
        capped at half that lifetime, so it refreshes once per half-lifetime, not on every
        request. A threshold below the lifetime is used as given (a sidecar's, say)."""
        lifetime = self._granted_lifetime
        if lifetime is None or self.refresh_threshold < lifetime:
            return self.refresh_threshold
        return lifetime / 2

    def _fresh(self, now: float) -> bool:
        expiry = self.token_expiry
        return bool(self.access_token) and (expiry is None or expiry - now > self._threshold())

    def _adopt(self, tokens: TokenSet | None) -> None:
        """Make ``tokens`` current and recompute until when the fast path may serve them."""
        held, self._tokens = self._tokens, tokens
        self._served = NOTHING_SERVED
        if held is not None and held.expires_at is not None and _replaces(held, tokens):
            self._watch_until = max(self._watch_until, held.expires_at)
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
        if poll is None and now < self._watch_until and hasattr(self.store, "restore"):
            poll = WATCH_INTERVAL_SECONDS
        self._next_poll = now + poll if poll is not None else math.inf
        if not self.access_token or self._failure is not None or self._unsaved is not None:
            self._served = NOTHING_SERVED
            return
        expiry = self.token_expiry
        fresh_until = math.inf if expiry is None else expiry - self._threshold()
        self._served = Served(min(fresh_until, self._next_poll), self.access_token, None)

    def _reload(self) -> None:
        """Read the store; a missing login is a TokenFileError naming where it was looked for."""
        assert self.store is not None
        version = self.store.version()
        tokens = self.store.load()
        if tokens is None and version is None and self._restore_lost_login():
            version, tokens = self.store.version(), self.store.load()
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
        self._version = version
        self._adopt(tokens)
        if tokens.extra.get("restored") and tokens.refresh_token is not None:
            self._start_restore_grace(tokens.refresh_token)  # whoever wrote it back
        if self._failure is not None and self.refresh_token != self._failure[1]:
            log.info("New OAuth tokens found in storage; OAuth is usable again")
            self._failure = None
            self._schedule_fast_path(self._clock())

    def _restore_lost_login(self) -> bool:
        """The store lost its data (a Redis flush or restart), not a logout: write back the
        login held in memory, only into a still-empty store (so never over a newer one).
        True when the store now holds a login again (ours, or another worker's written first)."""
        store, held = self.store, self._tokens
        may_restore = getattr(store, "may_restore", None)
        if store is None or held is None or held.refresh_token is None or may_restore is None:
            return False
        if self._failure is not None:
            return False  # a refused login is not worth restoring
        if not may_restore():
            log.warning("The OAuth login was deleted from %s; no longer using it", store.location)
            self._adopt(None)  # a logout or a move: spending it here would fork the chain
            return False
        restore, version = getattr(store, "restore", None), self._version
        try:
            if restore is not None and isinstance(version, int):
                restore(held, version=version)  # under its own version: the newest one wins
            else:
                store.save(held, expected_version=None)
        except StoreConflict:
            return True  # another worker wrote first: the caller reads theirs
        self._restored_digest = token_digest(held.refresh_token)
        self._restored_at = self._clock()  # each write-back starts the grace again
        log.warning(
            "%s was empty (its data was lost, not deleted); wrote back the OAuth login "
            "this process holds",
            store.location,
        )
        return True

    def _went_back(self, version: Version, theirs: TokenSet) -> bool:
        """The store holds an older version than our login: a worker wrote back what it held
        after the store lost its data, while we hold the newer login."""
        ours, mine = self._tokens, self._version
        return (
            hasattr(self.store, "restore")
            and isinstance(version, int)
            and isinstance(mine, int)
            and version < mine
            and ours is not None
            and ours.refresh_token not in (None, theirs.refresh_token)
            and self._failure is None
        )

    def _write_back_newer(self) -> None:
        """Replace the older login with ours, under our version (never over a newer one)."""
        store, ours = self.store, self._tokens
        assert store is not None and ours is not None
        try:
            store.restore(ours, version=self._version)  # type: ignore[attr-defined]
        except StoreConflict:
            return  # a newer login meanwhile: the next check reads it
        except (StoreError, OSError) as error:
            log.warning("Could not write the newer OAuth login back: %s", error)
            return
        log.warning(
            "%s held an older OAuth login than this process (written back by a worker after "
            "the store lost its data); wrote back the newer one",
            store.location,
        )

    def _start_restore_grace(self, refresh_token: str) -> None:
        """A login written back after lost data is spent only after the grace, counted from
        when this process first saw it."""
        digest = token_digest(refresh_token)
        if digest != self._restored_digest:
            self._restored_digest, self._restored_at = digest, self._clock()

    def _in_restore_grace(self) -> bool:
        return self._clock() < self._restored_at + RESTORE_GRACE_SECONDS

    def _await_newer_login(self) -> None:
        """Just after writing back a lost login with no valid access token left: give a worker
        holding a newer login the rest of the grace to replace it, before ours is spent."""
        held = self.refresh_token
        while self._in_restore_grace() and self.refresh_token == held:
            left = self._restored_at + RESTORE_GRACE_SECONDS - self._clock()
            time.sleep(max(0.0, min(left, WATCH_INTERVAL_SECONDS / 2)))
            self._reload_quietly()

    def _reload_if_changed(self, now: float) -> None:
        if self.store is None:
            return
        try:
            changed = self.store.version() != self._version
        except StoreError:
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
        if self.store is None or self._unsaved is not None:
            return
        try:
            self._reload()
        except (StoreError, OSError, ValueError) as error:
            self._version = self.store.version()
            self._schedule_fast_path(self._clock())
            log.warning("Could not re-read OAuth tokens (%s); keeping the ones in memory", error)

    # ----- a stale write-back by another program ----------------------------------------------

    def _is_stale_write_back(self, theirs: TokenSet) -> bool:
        """The store holds a refresh token we (or another process of ours) already spent."""
        ours = self._tokens
        if ours is None or ours.refresh_token is None or theirs.refresh_token is None:
            return False
        if theirs.refresh_token == ours.refresh_token:
            return False
        digest = token_digest(theirs.refresh_token)
        if digest in self._spent:
            return True
        path = path_of(self.store)
        return path is not None and digest in read_shared_state(state_path(path)).spent

    def _keep_ours_over_stale_write_back(self, version: Version) -> None:
        """Keep our newer tokens and write them back (under the store's lock)."""
        store, ours = self.store, self._tokens
        assert store is not None and ours is not None
        log.warning(
            "%s holds OAuth tokens older than ours (a stale write-back by another program); "
            "keeping ours and writing them back",
            store.location,
        )
        self._version = version
        try:
            if self._holding_store_lock:
                store.save(ours, expected_version=version)
            else:
                with store.lock(DEFAULT_LOCK_TIMEOUT):
                    theirs = store.load()
                    if theirs is not None and not self._is_stale_write_back(theirs):
                        return  # replaced again meanwhile: the next check decides
                    store.save(ours, expected_version=store.version())
        except (StoreError, OSError) as error:
            log.warning("Could not write the newer OAuth tokens back: %s", error)
            return
        self._version = store.version()

    # ----- saving ------------------------------------------------------------------------------

    def _persist(self, fresh: TokenSet, *, spent: Secret) -> None:
        """Save ``fresh`` (compare-and-set) before it is used; never drop it."""
        self._last_refresh_at = self._last_save_attempt = self._clock()
        store = self.store
        if store is not None:
            try:
                try:
                    store.save(fresh, expected_version=self._version)
                except StoreConflict:
                    if self._newer_login_in_store(spent, fresh):
                        return
                    store.save(fresh, expected_version=store.version())
            except Exception as error:
                log.error(
                    "Could not save the rotated OAuth tokens to %s (%s). They are kept in "
                    "memory and the save is retried; free disk space or fix permissions there, "
                    "or this login is lost when the process exits.",
                    store.location,
                    getattr(error, "strerror", None) or error,
                )
                self._unsaved = fresh
            else:
                self._version = store.version()
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
        if (theirs.expires_at or math.inf) < (fresh.expires_at or math.inf):
            return False
        log.warning("A newer login was saved to %s meanwhile; using it", self.store.location)
        self._version = self.store.version()
        self._adopt(theirs)
        return True

    def _retry_save(self, now: float) -> None:
        pending, store = self._unsaved, self.store
        if pending is None or store is None:
            return
        if now - self._last_save_attempt < SAVE_RETRY_INTERVAL_SECONDS:
            return
        self._last_save_attempt = now
        try:
            with store.lock(DEFAULT_LOCK_TIMEOUT):
                self._holding_store_lock = True
                try:
                    store.save(pending, expected_version=store.version())
                finally:
                    self._holding_store_lock = False
        except Exception as error:
            log.debug("Saving the rotated OAuth tokens failed again: %s", error)
            return
        log.info("Saved the rotated OAuth tokens to %s after an earlier failure", store.location)
        self._unsaved = None
        self._version = store.version()
        self._schedule_fast_path(now)
