"""The driver: builds the ``View``, asks ``next_step``, carries the action out.

The only place that takes the store's lock for a refresh and the only place that waits: a
wait (``WaitUntil``) first lets the lock go, so nothing sleeps while holding a lock. Time is
read through the worker's injected ``clock`` and waits go through its ``sleep``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, NoReturn

from .. import _telemetry
from .._errors import ClaudeAuthError, StoreError, TokenFileError, TokenRefreshError
from .._tokens import Secret
from ..stores._base import DEFAULT_LOCK_TIMEOUT
from ._policy import LOCK_ATTEMPTS, next_step
from ._spend import RefreshSteps
from ._state import (
    Ask,
    AskKind,
    Fail,
    FailKind,
    ReadStore,
    RetakeLock,
    RetrySave,
    Serve,
    Spend,
    TakeLock,
    View,
    WaitUntil,
)
from ._sync import SAVE_RETRY_INTERVAL_SECONDS
from ._writeback import RESTORE_GRACE_SECONDS

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["Driver"]

log = logging.getLogger("claude_oauth_auth")

LEASE_MARGIN_SECONDS = 5.0
"""Before a POST, a lease is made to last the POST's timeout plus this much (the time from
the renewal to the POST's start, with room for a pause of the process)."""


class Driver(RefreshSteps):
    """Carries out ``next_step``'s actions for the manager (its subclass)."""

    refresh_timeout: float

    def _view(self, ask: Ask, before: Secret, rejected: Secret | None) -> View:
        now = self._clock()
        access = self.access_token
        refused = rejected.reveal() if rejected is not None else None
        return View(
            now=now,
            has_token=bool(access),
            expires_at=self.token_expiry,
            threshold=self._threshold(),
            replaced=bool(access) and access not in (before.reveal(), refused),
            differs_from_rejected=refused is not None and bool(access) and access != refused,
            next_poll=self._state.next_poll,
            refused=self._state.failure is not None,
            unsaved_retry_due=self._state.unsaved is not None
            and now - self._state.last_save_attempt >= SAVE_RETRY_INTERVAL_SECONDS,
            retry_not_before=self._state.backoff.retry_not_before,
            last_refresh_at=self._state.last_refresh_at,
            written_back_until=self._state.written_back.at
            + max(RESTORE_GRACE_SECONDS, self.refresh_timeout),
            superseded=self._superseded() is not None,
        )

    def _superseded(self) -> tuple[int, int] | None:
        """(ours, newest) when the login held is an older copy of one saved before."""
        held = self._state.tokens.generation if self._state.tokens is not None else None
        newest = self._state.known.newest
        if held is None or newest is None or not held.older_than(newest):
            return None
        return held.number, newest.number

    def _drive(self, kind: AskKind, rejected: Secret | None) -> str:
        """Run one ask to its end: a token, or one of our errors. Called under ``_lock``."""
        ask = Ask(kind)
        before = Secret(self.access_token or "")
        held: AbstractContextManager[None] | None = None
        error: Exception | None = None
        try:
            while True:
                action = next_step(self._view(ask, before, rejected), ask)
                if isinstance(action, Serve):
                    return self._serve(action, error)
                if isinstance(action, Fail):
                    self._fail(action.kind, error)
                if isinstance(action, RetrySave):
                    self._retry_save(self._clock())
                    ask = ask.but(save_tried=True)
                elif isinstance(action, ReadStore):
                    self._reload_if_changed(self._clock())
                    ask = ask.but(read=True)
                elif isinstance(action, (TakeLock, RetakeLock)):
                    self._let_go(held)
                    held = None
                    before = Secret(self.access_token or "")
                    try:
                        held = self._take_lock()
                    except (TokenRefreshError, StoreError) as failure:
                        error, ask = self._attempt_failed(failure, ask), ask.but(failed=True)
                        continue
                    ask = ask.but(locked=True, lock_attempts=ask.lock_attempts + 1)
                    ask = ask.but(lock_lost=False)
                elif isinstance(action, WaitUntil):
                    self._let_go(held)
                    held = None
                    log.debug("Waiting %.2f s: %s", action.at - self._clock(), action.why)
                    self._sleep(max(0.0, action.at - self._clock()))
                    self._reload_quietly()
                    ask = ask.but(locked=False, read=True, waits=ask.waits + 1)
                    ask = ask.but(rechecked=ask.rechecked or ask.refused_now)
                elif isinstance(action, Spend):
                    if not self._lock_outlasts_the_post():
                        ask = ask.but(lock_lost=True)
                        continue
                    try:
                        self._spend_and_record()
                    except ClaudeAuthError as failure:
                        if self._state.failure is not None and not ask.refused_now:
                            error, ask = failure, ask.but(refused_now=True)  # re-read first
                            continue
                        if not isinstance(failure, (TokenRefreshError, StoreError)):
                            raise  # refused again, or no refresh token: as it is
                        error, ask = self._attempt_failed(failure, ask), ask.but(failed=True)
                        continue
                    ask = ask.but(spent=True)
        finally:
            self._let_go(held)

    # ----- the actions ------------------------------------------------------------------------

    def _serve(self, action: Serve, error: Exception | None) -> str:
        if action.adopted:
            self._state.last_refresh_at = self._clock()
            log.debug("Adopted OAuth tokens another process refreshed")
        if action.warn:
            log.warning(
                "OAuth token refresh failed (%s); using the current token, which is still "
                "valid for %.0f s, and retrying in %.0f s",
                error,
                (self.token_expiry or 0) - self._clock(),
                max(0.0, self._state.backoff.retry_not_before - self._clock()),
            )
        return self._current()

    def _fail(self, kind: FailKind, error: Exception | None) -> NoReturn:
        if kind is FailKind.REFUSED and self._state.failure is not None:
            self._raise_refused(self._state.failure[0], self._state.failure[2])
        if kind is FailKind.BACKING_OFF:
            raise self._backing_off(self._clock())
        superseded = self._superseded()
        if kind is FailKind.SUPERSEDED and superseded is not None and self.store is not None:
            raise TokenFileError(
                self.store.location,
                f"holds an older copy of its OAuth login (refresh {superseded[0]} of its "
                f"chain; refresh {superseded[1]} was saved there before, so it was put back "
                "from an older copy): its refresh token is spent and is not sent again",
                "a process still holding the newer login writes it back at its next request; "
                "if none runs, log in again (Claude Code's /login, or `claude-oauth-auth save`)",
            )
        if kind is FailKind.LOCK_LOST and self.store is not None:
            raise StoreError(
                self.store.location,
                f"the refresh lock was lost while held, {LOCK_ATTEMPTS} times in a row",
                "check what keeps emptying the store (FLUSHALL, restarts without persistence)",
            )
        if error is not None:
            raise error
        raise TokenRefreshError(f"OAuth refresh stopped ({kind.value})")

    def _attempt_failed(self, error: Exception, ask: Ask) -> Exception:
        """A failed attempt schedules the next one for everyone (unless it already did)."""
        if ask.kind != "refresh" and self._state.backoff.retry_not_before <= self._clock():
            self._schedule_retry(error)
        return error

    def _take_lock(self) -> AbstractContextManager[None] | None:
        """Take the store's lock and re-read what it guards; None when there is no store."""
        store = self.store
        if store is None:
            return None
        self._check_writable(store)
        held: AbstractContextManager[None] = store.lock(DEFAULT_LOCK_TIMEOUT)
        _telemetry.timed_enter(held, store, self._clock)  # held.__enter__(), its wait observed
        self._holding_store_lock = True
        try:
            recover = getattr(store, "recover_interrupted_save", None)
            if recover is not None:
                recover()  # a save of ours that a kill interrupted, holding newer tokens
            self._reload_quietly()
            self._read_shared_backoff()
            self._adopt_shared_refusal()
        except BaseException:
            self._let_go(held)
            raise
        return held

    def _let_go(self, held: AbstractContextManager[None] | None) -> None:
        if held is not None:
            self._holding_store_lock = False
            with contextlib.suppress(StoreError):
                held.__exit__(None, None, None)

    def _lock_outlasts_the_post(self) -> bool:
        """A lease (Redis) is made to outlast the POST's timeout, then checked to be ours: a
        stall longer than the lease, or a flush, let another worker take it meanwhile."""
        extend = getattr(self.store, "extend_lock", None)
        holds_lock = getattr(self.store, "holds_lock", None)
        if extend is not None:
            if extend(self.refresh_timeout + LEASE_MARGIN_SECONDS):
                return True
        elif holds_lock is None or holds_lock():
            return True
        assert self.store is not None
        log.warning(
            "%s: the refresh lock was lost while held (did the store lose its data?); "
            "taking it again before spending the refresh token",
            self.store.location,
        )
        return False
