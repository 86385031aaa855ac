"""When the store holds something other than our login: Redis lost its data, the login was
removed (a logout, a move), or another writer put back an older login."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _telemetry
from .._errors import StoreConflict, StoreError
from .._events import emit
from .._tokens import TokenSet
from ..stores._base import DEFAULT_LOCK_TIMEOUT, TokenStore, Version
from ..stores._file import path_of
from ._backoff import read_shared_state, state_path, token_digest
from ._state import WorkerState

__all__ = ["RESTORE_GRACE_SECONDS", "WATCH_INTERVAL_SECONDS", "WriteBacks"]

log = logging.getLogger("claude_oauth_auth")

WATCH_INTERVAL_SECONDS = 0.5
"""After adopting a new login, a store that is never polled (Redis) is checked this often (on
this process's own requests) in the refresh window of the login it replaced, when the workers
still holding that one come to the store: if one of them wrote it back after the store lost its
data, it is replaced by the newer login at once."""
RESTORE_GRACE_SECONDS = 2.0
"""A login written back after lost data (by this process or another) is not spent until at
least this long after it was first seen (and never before a refresh POST that could have
started before the loss has ended: the manager's ``refresh_timeout``): a worker holding a
newer login replaces it meanwhile (it checks every ``WATCH_INTERVAL_SECONDS``). A still-valid
access token is served meanwhile."""


class WriteBacks:
    """The write-back rules of ``StoreSync`` (its subclass), which provides the state."""

    store: TokenStore | None
    refresh_token: str | None
    _clock: Callable[[], float]
    _state: WorkerState
    _sleep: Callable[[float], None]
    _holding_store_lock: bool

    access_token: str | None

    if TYPE_CHECKING:

        def is_token_valid(self) -> bool: ...

        def _adopt(self, tokens: TokenSet | None) -> None: ...

        def _reload_quietly(self) -> None: ...

    def _restore_method(self) -> Callable[..., None] | None:
        """The store's ``restore(tokens, *, version)``: set when its versions rank its logins
        (Redis), so a login is written back under the version it had."""
        restore: Callable[..., None] | None = getattr(self.store, "restore", None)
        return restore

    # ----- lost data, a removed login ----------------------------------------------------------

    def _restore_lost_login(self) -> bool:
        """The store lost its data (a Redis flush or restart), not a logout: write back the
        login held in memory, only into a still-empty store (so never over a newer one).
        True when the store now holds a login again (ours, or another worker's written first)."""
        store, held = self.store, self._state.tokens
        may_restore = getattr(store, "may_restore", None)
        if store is None or held is None or held.refresh_token is None or may_restore is None:
            return False
        if self._state.failure is not None:
            return False  # a refused login is not worth restoring
        if not may_restore():
            log.warning("The OAuth login was deleted from %s; no longer using it", store.location)
            self._adopt(None)  # a logout or a move: spending it here would fork the chain
            return False
        restore, version = self._restore_method(), self._state.version
        if restore is not None and not isinstance(version, int):
            return False  # no version to rank it by: a plain save would outrank newer logins
        try:
            if restore is not None:
                restore(held, version=version)  # under its own version: the newest one wins
            else:
                store.save(held, expected_version=None)
        except StoreConflict:
            return True  # another worker wrote first: the caller reads theirs
        self._start_restore_grace(held.refresh_token, again=True)
        emit("written_back", "OAuth login written back", store=store.location, why="lost data")
        log.warning(
            "%s was empty (its data was lost, not deleted); wrote back the OAuth login "
            "this process holds",
            store.location,
        )
        return True

    def _forget_removed_login(self) -> None:
        """The store we read or wrote is gone (a logout, or ``move``): stop using its login,
        since its refresh token now lives elsewhere or is revoked. A store that can lose its
        data says so with ``may_restore`` (handled above)."""
        store = self.store
        if (
            self._state.version is None
            or self._state.tokens is None
            or hasattr(store, "may_restore")
        ):
            return  # never stored yet (tokens given as arguments), or Redis
        assert store is not None
        log.warning(
            "The OAuth login was removed from %s (a logout, or moved elsewhere); no longer "
            "using it",
            store.location,
        )
        self._state.version = None
        self._adopt(None)

    def _went_back(self, version: Version, theirs: TokenSet) -> bool:
        """The store holds an older version than our login: a worker wrote back what it held
        after the store lost its data, while we hold the newer login."""
        ours, mine = self._state.tokens, self._state.version
        return (
            self._restore_method() is not None
            and isinstance(version, int)
            and isinstance(mine, int)
            and version < mine
            and ours is not None
            and ours.refresh_token not in (None, theirs.refresh_token)
            and self._state.failure is None
        )

    def _write_back_newer(self) -> None:
        """Replace the older login with ours, under our version (never over a newer one)."""
        store, ours, restore = self.store, self._state.tokens, self._restore_method()
        assert store is not None and ours is not None and restore is not None
        try:
            restore(ours, version=self._state.version)
        except StoreConflict:
            return  # a newer login meanwhile: the next check reads it
        except (StoreError, OSError) as error:
            _telemetry.store_failed(store, "write_back", error)
            log.warning("Could not write the newer OAuth login back: %s", error)
            return
        emit("written_back", "newer OAuth login written back", store=store.location, why="older")
        log.warning(
            "%s held an older OAuth login than this process (written back by a worker after "
            "the store lost its data); wrote back the newer one",
            store.location,
        )

    def _start_restore_grace(self, refresh_token: str, *, again: bool = False) -> None:
        """A login written back after lost data is spent only after the grace, counted from
        when this process first saw it (``again``: from now, as after our own write-back)."""
        digest = token_digest(refresh_token)
        if again or digest != self._state.written_back.digest:
            self._state.written_back.digest, self._state.written_back.at = digest, self._clock()

    # ----- a stale write-back by another program ---------------------------------------------

    def _is_stale_write_back(self, theirs: TokenSet) -> bool:
        """The store holds an older login than ours: one of our chain with a smaller
        generation, or a refresh token we (or another process of ours) already spent."""
        ours = self._state.tokens
        if ours is None or ours.refresh_token is None or theirs.refresh_token is None:
            return False
        if theirs.refresh_token == ours.refresh_token:
            return False
        if theirs.older_than(ours):
            return self._state.failure is None  # a refused login of ours is not worth keeping
        digest = token_digest(theirs.refresh_token)
        if digest in self._state.known.spent:
            return True
        path = path_of(self.store)
        return path is not None and digest in read_shared_state(state_path(path)).spent

    def _put_back_before_exit(self) -> None:
        """At exit: if another writer put an older login (one we spent) over ours since we last
        looked, write ours back; the process takes the only live login with it otherwise."""
        store = self.store
        if store is None or not self._state.known.spent or self._state.tokens is None:
            return
        try:
            version = store.version()
            if version == self._state.version:
                return
            theirs = store.load()
        except (StoreError, OSError, ValueError):
            return
        if theirs is not None and self._is_stale_write_back(theirs):
            self._keep_ours_over_stale_write_back(version)

    def _keep_ours_over_stale_write_back(self, version: Version) -> None:
        """Keep our newer tokens and write them back (under the store's lock)."""
        store, ours = self.store, self._state.tokens
        assert store is not None and ours is not None
        log.warning(
            "%s holds OAuth tokens older than ours (a stale write-back by another program); "
            "keeping ours and writing them back",
            store.location,
        )
        self._state.version = version
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
            _telemetry.store_failed(store, "write_back", error)
            log.warning("Could not write the newer OAuth tokens back: %s", error)
            return
        self._state.version = store.version()
