"""OAuthTokenManager: the refresh policy. Where tokens live is its store's business."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _clock, _config, _telemetry
from .._errors import ClaudeAuthError
from .._tokens import Secret, TokenSet, has_control_characters, mask
from ..stores._base import TokenStore
from ..stores._file import FileStore, path_of
from . import _grant
from ._driver import Driver
from ._hooks import HookStore, overrides_hooks
from ._spend import default_grant
from ._state import AskKind, WorkerState
from ._sync import NOTHING_SERVED, Served, default_token_file, make_access_token

if TYPE_CHECKING:
    from anthropic.lib.credentials import AccessToken

__all__ = ["Grant", "OAuthTokenManager", "check_store", "default_token_file", "make_access_token"]

log = logging.getLogger("claude_oauth_auth")

Grant = Callable[[str, Secret, str], TokenSet]
"""The refresh grant: ``grant(token_url, refresh_token, client_id) -> TokenSet``; the refresh
token comes as a masked ``Secret`` (``.reveal()`` gives the value)."""

_live_managers: weakref.WeakValueDictionary[int, OAuthTokenManager] = weakref.WeakValueDictionary()


def _reset_locks_after_fork() -> None:
    """In a forked child, no thread holds a manager's lock: a lock held by a parent thread
    at the fork would otherwise stay locked forever."""
    for manager in list(_live_managers.values()):
        manager._lock = threading.Lock()
        manager._holding_store_lock = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


@atexit.register
def _put_back_before_exit() -> None:
    """A login we rotated that another program overwrote with an older one since our last
    look is written back before the process ends (a few requests later would have)."""
    for manager in list(_live_managers.values()):
        if not manager._lock.acquire(timeout=1.0):
            continue  # busy in a thread that outlives us: it saves what it holds
        try:
            manager._put_back_before_exit()
        except Exception as error:  # never fail an exit
            log.debug("Checking %r at exit failed: %s", manager, error)
        finally:
            manager._lock.release()


class OAuthTokenManager(Driver):
    """Holds an OAuth token pair for a store, refreshes it before expiry, saves rotations.

    Call it like any SDK credentials provider: ``anthropic.Anthropic(credentials=manager)``.

    Policy (``lifecycle._policy.next_step``; the driver carries it out):

    - A token more than ``refresh_threshold`` seconds from expiry is served from memory; the
      store's ``version()`` is consulted at most every ``store.poll_interval`` seconds, so a
      rotation made elsewhere is adopted without a refresh call.
    - Inside the threshold, one caller refreshes: it takes the store's lock, re-reads the
      store, adopts tokens another process already rotated, and otherwise spends the refresh
      token once and saves the answer (compare-and-set) before anyone uses it. Other callers
      keep using the still-valid token meanwhile.
    - After the API refused a token (a 401), the store is re-read at once; a replaced token is
      used, otherwise a refresh is forced. A burst of forced calls refreshes once.
    - A refused refresh token stops OAuth until the store holds new tokens (after
      ``invalid_grant`` the store is re-read once more after a short wait, for a program that
      rotated without our lock; the verdict is kept in the shared state, so the other
      processes raise it without spending the dead token again). A transient failure
      schedules the next attempt for every thread and process (``_backoff``): meanwhile a
      still-valid token is served and an expired one raises ``TokenRefreshError`` at once,
      without a POST.
    - A refresh token is not spent when the store cannot be written, nor by a thread whose
      store lock was lost while held (it takes the lock again); a 200 carrying a new refresh
      token is saved even when the rest of the answer is unusable.
    - A store that lost its data (Redis) gets the login held in memory written back under its
      version; that login is spent only ``refresh_timeout`` (at least
      ``RESTORE_GRACE_SECONDS``) after it was first seen: a POST begun before the loss has
      ended by then, and a worker holding a newer login (it checks twice a second in the
      refresh window of the login it replaced) has put it back, so the newest login wins.
    - Before the POST, a lease (Redis) is made to outlast the POST's timeout and checked to
      be still ours.
    - A save that fails keeps the new tokens in memory, logs one error and retries.

    ``store=`` decides where tokens live (``token_file=`` means ``FileStore(token_file)``).
    Subclasses may override ``_load_tokens``/``_save_tokens`` instead; they then run for
    every read and write. ``clock=`` and ``grant=`` replace the time source and the POST.
    """

    def __init__(
        self,
        access_token: str | None = None,
        refresh_token: str | None = None,
        token_expiry: float | None = None,
        *,
        token_file: str | os.PathLike[str] | None = None,
        store: TokenStore | None = None,
        client_id: str | None = None,
        token_url: str | None = None,
        refresh_threshold: float | None = None,
        clock: Callable[[], float] | None = None,
        grant: Grant | None = None,
        sleep: Callable[[float], None] | None = None,
        refresh_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Load tokens from a store (or take them as arguments) and get ready to refresh them.

        Args:
            access_token: An access token to start with (with ``refresh_token`` and
                ``token_expiry``, unix seconds); without them the store is read now.
            refresh_token: The refresh token that goes with ``access_token``.
            token_expiry: When ``access_token`` expires, in unix seconds.
            token_file: A token file of either shape (``FileStore``); the default is the
                first existing of ``CLAUDE_AUTH_FILE``, ``auth.json`` and Claude Code's file.
            store: Any ``TokenStore`` instead of a file (not with ``token_file``).
            client_id: The OAuth client id (else ``CLAUDE_OAUTH_CLIENT_ID``, the file's, or
                Claude Code's public client).
            token_url: The token endpoint (else ``CLAUDE_OAUTH_TOKEN_URL``, the file's, or the
                default); plain ``http://`` only for loopback.
            refresh_threshold: Seconds before expiry to refresh (else
                ``CLAUDE_TOKEN_REFRESH_THRESHOLD``, else 300).
            clock: The time source, in unix seconds (tests).
            sleep: Waits that many seconds; goes with ``clock`` (a simulation's virtual time).
            refresh_timeout: Seconds a refresh POST may take (default 30). It also bounds two
                waits: a lease is made to outlast it before the POST, and a login written back
                after lost data is not spent before a POST begun before the loss has ended.
            rng: The backoff's jitter (a seeded one makes a simulation replayable).
            grant: Replaces the refresh POST: ``grant(token_url, refresh_token, client_id)``
                returns a ``TokenSet``; ``refresh_token`` is a masked ``Secret``
                (``.reveal()`` gives the text).
        """
        if store is not None and token_file is not None:
            raise ValueError("pass token_file= or store=, not both")
        self._explicit_client_id = client_id or _config.env_value(_config.ENV.CLIENT_ID)
        self._explicit_token_url = token_url or _config.env_value(_config.ENV.TOKEN_URL)
        self.client_id = self._explicit_client_id or _config.DEFAULT_CLIENT_ID
        self.token_url = _config.validate_token_url(
            self._explicit_token_url or _config.DEFAULT_TOKEN_URL
        )
        self.refresh_threshold = _config.refresh_threshold(refresh_threshold)
        self._clock = clock or _clock.now
        self._sleep = sleep or _clock.sleep
        self.refresh_timeout = (
            _grant.REFRESH_TIMEOUT_SECONDS if refresh_timeout is None else float(refresh_timeout)
        )
        if not self.refresh_timeout > 0:
            raise ValueError("refresh_timeout must be a positive number of seconds")
        self._grant: Grant = grant or functools.partial(default_grant, timeout=self.refresh_timeout)
        self._lock = threading.Lock()
        self._holding_store_lock = False
        _live_managers[id(self)] = self
        self._served = NOTHING_SERVED
        self._state = WorkerState()
        self._rng = rng or random.Random()
        self.access_token = self.refresh_token = self.token_expiry = None
        given = access_token is not None or refresh_token is not None
        path = _config.expand_path(token_file) if token_file is not None else None
        if store is None and overrides_hooks(self):
            store = HookStore(self, path if path is not None or given else default_token_file())
        elif store is None and (path is not None or not given):
            store = FileStore(path if path is not None else default_token_file())
        self.store: TokenStore | None = store
        self._grant = _telemetry.watch_manager(self, self._grant)  # timed, traced: OTel only
        if given:
            for value in (access_token, refresh_token):
                if value is not None and has_control_characters(value.strip()):
                    raise ValueError("a token must not contain control characters (CR, LF, NUL)")
            expiry = None if token_expiry is None else float(token_expiry)
            self._adopt(TokenSet(access_token or "", refresh_token, expiry))
            self._state.version = store.version() if store is not None else None
        else:
            self._reload()

    # ----- what it holds ----------------------------------------------------------------------

    @property
    def token_file(self) -> Path | None:
        """The file behind the store, when there is one."""
        return path_of(self.store)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(access_token={mask(self.access_token)!r}, "
            f"refresh_token={mask(self.refresh_token)!r}, token_expiry={self.token_expiry!r}, "
            f"store={self.store.location if self.store is not None else None!r})"
        )

    @property
    def permanent_failure(self) -> str | None:
        """Why OAuth stopped working for this manager (the endpoint's words), or None."""
        return None if self._state.failure is None else self._state.failure[0]

    @property
    def can_refresh(self) -> bool:
        return self.refresh_token is not None

    @property
    def unsaved(self) -> bool:
        """True while rotated tokens could not be saved (they live only in memory)."""
        return self._state.unsaved is not None

    def needs_refresh(self) -> bool:
        """True when the token is within the refresh threshold of expiry (or missing)."""
        return not self.access_token or not self._fresh(self._clock())

    # ----- the SDK provider protocol and the token calls --------------------------------------

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        """A valid token as an SDK ``AccessToken`` (``expires_at=0``: ask again next time)."""
        served = self._served
        if not force_refresh and served.token is not None and self._clock() < served.until:
            cached: AccessToken = served.token
            return cached
        try:
            token = make_access_token(self._token(force_refresh, None))  # masked repr
        except ClaudeAuthError as error:  # the SDK called us: reach its caller unwrapped
            from .._sdk_errors import raise_to_the_sdk, token_request

            raise_to_the_sdk(error, token_request(self.token_url))
        served = self._served
        if served.text == token.token and served.token is None and self._lock.acquire(False):
            try:  # cache it for the fast path, unless the tokens changed meanwhile
                if self._served is served:
                    self._served = Served(served.until, served.text, token)
            finally:
                self._lock.release()
        return token

    def get_valid_token(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        """A token that is not within the refresh threshold of expiry, refreshing if needed.

        ``rejected``: a token the API just refused (a 401): another one is returned, adopted
        from the store if a worker already replaced it, else refreshed.
        """
        if not force_refresh and rejected is None:
            served = self._served
            if self._clock() < served.until:
                return served.text
        refused = None if rejected is None else Secret(rejected)
        del rejected  # from here on only masked: tracebacks that record locals stay clean
        return self._token(force_refresh, refused)

    async def async_get_valid_token(
        self, *, force_refresh: bool = False, rejected: str | None = None
    ) -> str:
        """Like ``get_valid_token``; a refresh runs in a worker thread, never on the event loop."""
        if not force_refresh and rejected is None:
            served = self._served
            if self._clock() < served.until:
                return served.text
        import anyio.to_thread

        refused = None if rejected is None else Secret(rejected)
        del rejected  # masked from here on (tracebacks that record locals)
        return await anyio.to_thread.run_sync(lambda: self._token(force_refresh, refused))

    def _token(self, force: bool, refused: Secret | None) -> str:
        if not force and refused is None and self.is_token_valid() and self._state.failure is None:
            # Advisory window: serve the still-valid token rather than queue behind a refresh.
            if not self._lock.acquire(blocking=False):
                return self._current()
        else:
            # Waiters queue here while one attempt is in flight, then share its outcome: its
            # tokens, or the backoff its failure scheduled (no POST of their own).
            self._lock.acquire()
        try:
            kind: AskKind = "rejected" if refused is not None else "forced" if force else "plain"
            return self._drive(kind, refused)
        finally:
            self._lock.release()

    def _check_store(self) -> None:
        with self._lock:
            self._reload_quietly()

    def refresh(self) -> str:
        """Force a refresh now (one POST, under both locks) and return the new access token."""
        with self._lock:
            return self._drive("refresh", None)

    # ----- storage hooks ----------------------------------------------------------------------

    def _load_tokens(self) -> None:
        """Read the store and set ``access_token``, ``refresh_token`` and ``token_expiry``."""
        self._reload()

    def _save_tokens(self) -> None:
        """Write ``access_token``, ``refresh_token`` and ``token_expiry`` to the store."""
        if self.store is None or not self.access_token:
            return
        tokens = TokenSet(self.access_token, self.refresh_token, self.token_expiry)
        self.store.save(tokens, expected_version=self.store.version())
        self._state.version = self.store.version()


def check_store(manager: OAuthTokenManager) -> None:
    """Re-read ``manager``'s store now, as after a 401 (``keep-fresh`` on each check): adopt a
    login saved elsewhere, or put the manager's newer login back over an older one. Never
    refreshes."""
    manager._check_store()
