"""Spending a refresh token: under the store's lock, only when its successor can be saved."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NoReturn

from .._errors import TokenRefreshError
from .._events import emit
from .._tokens import Generation, Secret, TokenSet
from ..stores._base import TokenStore
from . import _grant
from ._backoff import BackoffSchedule, token_digest
from ._grant import PartialAnswer, RefreshRefused, request_refresh
from ._sync import StoreSync

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RefreshSteps", "default_grant", "next_generation"]

log = logging.getLogger("claude_oauth_auth")


def next_generation(previous: TokenSet | None, spent: Secret) -> Generation:
    """The label of the login a refresh of ``previous`` gives: one further along its chain; a
    chain without a label starts at 1, named after the refresh token spent to start it (a
    digest: no secret, and the same in every process that could start it)."""
    held = previous.generation if previous is not None else None
    if held is None:
        return Generation(token_digest(spent.reveal())[:16], 1)
    return Generation(held.lineage, held.number + 1)


class RefreshSteps(BackoffSchedule, StoreSync):
    """The steps of one refresh; ``lifecycle._policy.next_step`` says when to take them."""

    _grant: Callable[[str, Secret, str], TokenSet]
    _sleep: Callable[[float], None]

    def _current(self) -> str:
        if not self.access_token:
            raise TokenRefreshError("no OAuth access token is loaded")
        return self.access_token

    def _adopt_shared_refusal(self) -> None:
        """Under the lock: a refresh token another process had refused is not spent again."""
        token = self.refresh_token
        verdict = (
            None if self._state.failure is not None or token is None else self._refusal_of(token)
        )
        if verdict is not None and self.store is not None:
            log.info(
                "Another process using %s had this refresh token refused; not sending it again",
                self.store.location,
            )
            self._state.failure = (verdict.reason, token, verdict.status)

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
            where = self.store.location if self.store is not None else None
            emit("refused", message, store=where, status=refused.status, error=refused.error)
            self._state.failure = (message, spent.reveal(), refused.status)
            if refused.error == "invalid_grant":  # the token is dead, whoever sends it
                self._record_refusal(spent, message, refused.status)
            self._raise_refused(message, refused.status)
        except PartialAnswer as partial:
            self._save_partial_answer(partial.tokens, spent)
            raise
        previous = self._state.tokens
        fresh = TokenSet(
            fresh.access_token,
            fresh.refresh_token or spent.reveal(),
            fresh.expires_at,
            fresh.scopes or (previous.scopes if previous else ()),
            previous.extra if previous else {},
            next_generation(previous, spent),
        )
        if fresh.expires_at is not None:
            # Measured from the answer, not from the POST: a threshold equal to the granted
            # lifetime must count as reaching it (else every request refreshes).
            self._state.granted_lifetime = max(0.0, fresh.expires_at - self._clock())
        self._persist(fresh, spent=spent)  # first: every moment before it can lose the login
        self._clear_backoff(spent)
        left = (self.token_expiry or 0) - self._clock()
        where = self.store.location if self.store is not None else None
        emit("refreshed", "OAuth access token refreshed", store=where, expires_in=round(left))
        log.info(
            "Refreshed the OAuth access token (valid for %.0f s)%s",
            (self.token_expiry or 0) - self._clock(),
            f"; saved to {self.store.location}" if self.store and not self._state.unsaved else "",
        )
        return self._current()

    def _save_partial_answer(self, rotated: TokenSet, spent: Secret) -> None:
        """A 200 with a new refresh token but no usable access token: save the new refresh
        token with the access token we hold (the old one is spent: dropping it loses the login)."""
        previous = self._state.tokens
        kept = TokenSet(
            previous.access_token if previous else "",
            rotated.refresh_token,
            previous.expires_at if previous else self._clock(),
            previous.scopes if previous else (),
            previous.extra if previous else {},
            next_generation(previous, spent),
        )
        self._remember_spent(spent)
        self._persist(kept, spent=spent)

    def _adopt_rotation_by_other_program(self, spent: Secret) -> bool:
        """After a refusal: a program that ignores our lock may have rotated the tokens; re-read
        now (the driver re-reads once more after a short wait, the lock released)."""
        if self.store is None:
            return False
        self._reload_quietly()
        if self.refresh_token is not None and self.refresh_token != spent.reveal():
            self._state.last_refresh_at = self._clock()
            log.info("Adopted OAuth tokens another program refreshed")
            return True
        return False

    def _raise_refused(self, message: str, status: int | None) -> NoReturn:
        from .._sdk_errors import OAuthRefreshError

        raise OAuthRefreshError(message, token_url=self.token_url, endpoint_status=status)


def default_grant(
    token_url: str, refresh_token: Secret, client_id: str, *, timeout: float | None = None
) -> TokenSet:
    """The refresh POST; ``timeout`` defaults to ``_grant.REFRESH_TIMEOUT_SECONDS``."""
    from .._version import __version__

    return request_refresh(
        token_url,
        refresh_token,
        client_id,
        user_agent=f"claude-oauth-auth/{__version__}",
        timeout=_grant.REFRESH_TIMEOUT_SECONDS if timeout is None else timeout,
    )
