"""Spending a refresh token: under the store's lock, only when its successor can be saved."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

from ._backoff import BackoffSchedule
from ._errors import StoreError, TokenRefreshError
from ._grant import PartialAnswer, RefreshRefused, request_refresh
from ._sync import StoreSync
from ._tokens import Secret, TokenSet
from .stores._base import DEFAULT_LOCK_TIMEOUT, TokenStore

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RefreshSteps", "default_grant"]

log = logging.getLogger("claude_oauth_auth")

INVALID_GRANT_RECHECK_SECONDS = 0.5
LOCK_ATTEMPTS = 3


class RefreshSteps(BackoffSchedule, StoreSync):
    """The steps of one refresh; the manager's ``_decide`` says when to take them."""

    _grant: Callable[[str, Secret, str], TokenSet]
    _sleep: Callable[[float], None]

    def _current(self) -> str:
        if not self.access_token:
            raise TokenRefreshError("no OAuth access token is loaded")
        return self.access_token

    def _refresh_under_store_lock(
        self, *, force: bool, rejected: Secret | None, adopt: bool
    ) -> str:
        store = self.store
        if store is None:
            return self._spend_and_record()
        self._check_writable(store)
        before = Secret(self.access_token or "")
        for _ in range(LOCK_ATTEMPTS):
            with store.lock(DEFAULT_LOCK_TIMEOUT):
                self._holding_store_lock = True
                try:
                    answer = self._refresh_holding_lock(store, before, force, rejected, adopt)
                finally:
                    self._holding_store_lock = False
            if answer is not None:
                return answer
        raise StoreError(
            store.location,
            f"the refresh lock was lost while held, {LOCK_ATTEMPTS} times in a row",
            "check what keeps emptying the store (FLUSHALL, restarts without persistence)",
        )

    def _refresh_holding_lock(
        self,
        store: TokenStore,
        before: Secret,
        force: bool,
        rejected: Secret | None,
        adopt: bool,
    ) -> str | None:
        """Adopt, wait, or spend; None when the lock was lost before spending (take it again)."""
        recover = getattr(store, "recover_interrupted_save", None)
        if recover is not None:
            recover()  # a save of ours that a kill interrupted, holding newer tokens
        self._reload_quietly()
        self._read_shared_backoff()
        self._adopt_shared_refusal()
        if adopt and not force and self._in_restore_grace():  # spend it after the grace
            refused = rejected.reveal() if rejected is not None else None
            if refused is not None or not self.is_token_valid():
                self._await_newer_login(refused)
            if self.is_token_valid() and self.access_token != refused:
                return self._current()
        replaced = self.access_token not in (
            before.reveal(),
            rejected.reveal() if rejected is not None else None,
        )
        wanted = replaced or (not force and rejected is None and self._fresh(self._clock()))
        if adopt and wanted and self._failure is None and self.is_token_valid():
            self._last_refresh_at = self._clock()
            log.debug("Adopted OAuth tokens another process refreshed")
            return self._current()
        if self._failure is not None:
            self._raise_refused(self._failure[0], self._failure[2])
        now = self._clock()
        if adopt and now < self._retry_not_before:  # another process failed just now
            if not force and rejected is None and self.is_token_valid():
                return self._current()
            raise self._backing_off(now)
        holds_lock = getattr(store, "holds_lock", None)
        if holds_lock is not None and not holds_lock():
            log.warning(
                "%s: the refresh lock was lost while held (did the store lose its data?); "
                "taking it again before spending the refresh token",
                store.location,
            )
            return None
        return self._spend_and_record()

    def _adopt_shared_refusal(self) -> None:
        """Under the lock: a refresh token another process had refused is not spent again."""
        token = self.refresh_token
        verdict = None if self._failure is not None or token is None else self._refusal_of(token)
        if verdict is not None and self.store is not None:
            log.info(
                "Another process using %s had this refresh token refused; not sending it again",
                self.store.location,
            )
            self._failure = (verdict.reason, token, verdict.status)

    def _check_writable(self, store: TokenStore) -> None:
        """Don't spend a single-use refresh token whose successor could not be saved."""
        if store.writable:
            return
        explain = getattr(store, "why_not_writable", None)
        why = (explain() if callable(explain) else "") or "it cannot be written"
        raise TokenRefreshError(
            f"not refreshing the OAuth token: {store.location} cannot be saved ({why}), and "
            "spending the single-use refresh token without saving its successor would lose "
            "this login; make it writable, or point CLAUDE_AUTH_FILE at a writable place"
        )

    def _spend_and_record(self) -> str:
        """Spend the refresh token; on a transient failure schedule the shared next attempt."""
        try:
            return self._spend_refresh_token()
        except TokenRefreshError as error:
            self._schedule_retry(error)
            self._write_shared_backoff()
            raise

    def _spend_refresh_token(self) -> str:
        if self.refresh_token is None:
            message = "the OAuth access token has expired and there is no refresh token"
            if self.store is not None:
                message += f" in {self.store.location}"
            self._raise_refused(message + "; log in again", None)
        spent = Secret(self.refresh_token)
        try:
            fresh = self._grant(self.token_url, spent, self.client_id)
        except RefreshRefused as refused:
            if self._adopt_rotation_by_other_program(spent):
                # Their access token, or (already expired) one refresh with their new
                # refresh token.
                return self._current() if self.is_token_valid() else self._spend_refresh_token()
            message = f"the token endpoint refused the refresh token ({refused})"
            self._failure = (message, spent.reveal(), refused.status)
            if refused.error == "invalid_grant":  # the token is dead, whoever sends it
                self._record_refusal(spent, message, refused.status)
            self._raise_refused(message, refused.status)
        except PartialAnswer as partial:
            self._save_partial_answer(partial.tokens, spent)
            raise
        previous = self._tokens
        fresh = TokenSet(
            fresh.access_token,
            fresh.refresh_token or spent.reveal(),
            fresh.expires_at,
            fresh.scopes or (previous.scopes if previous else ()),
            previous.extra if previous else {},
        )
        if fresh.expires_at is not None:
            # Measured from the answer, not from the POST: a threshold equal to the granted
            # lifetime must count as reaching it (else every request refreshes).
            self._granted_lifetime = max(0.0, fresh.expires_at - self._clock())
        self._persist(fresh, spent=spent)  # first: every moment before it can lose the login
        self._clear_backoff(spent)
        log.info(
            "Refreshed the OAuth access token (valid for %.0f s)%s",
            (self.token_expiry or 0) - self._clock(),
            f"; saved to {self.store.location}" if self.store and not self._unsaved else "",
        )
        return self._current()

    def _save_partial_answer(self, rotated: TokenSet, spent: Secret) -> None:
        """A 200 with a new refresh token but no usable access token: save the new refresh
        token with the access token we hold (the old one is spent: dropping it loses the login)."""
        previous = self._tokens
        kept = TokenSet(
            previous.access_token if previous else "",
            rotated.refresh_token,
            previous.expires_at if previous else self._clock(),
            previous.scopes if previous else (),
            previous.extra if previous else {},
        )
        self._remember_spent(spent)
        self._persist(kept, spent=spent)

    def _adopt_rotation_by_other_program(self, spent: Secret) -> bool:
        """After invalid_grant: a program that ignores our lock may have rotated the tokens and
        not have written them yet; re-read now and once more after a short wait."""
        if self.store is None:
            return False
        for wait in (0.0, INVALID_GRANT_RECHECK_SECONDS):
            if wait:
                self._sleep(wait)
            self._reload_quietly()
            if self.refresh_token is not None and self.refresh_token != spent.reveal():
                self._last_refresh_at = self._clock()
                log.info("Adopted OAuth tokens another program refreshed")
                return True
        return False

    def _raise_refused(self, message: str, status: int | None) -> NoReturn:
        from ._sdk_errors import OAuthRefreshError

        raise OAuthRefreshError(message, token_url=self.token_url, endpoint_status=status)


def default_grant(token_url: str, refresh_token: Secret, client_id: str) -> TokenSet:
    from ._version import __version__

    return request_refresh(
        token_url, refresh_token, client_id, user_agent=f"claude-oauth-auth/{__version__}"
    )
