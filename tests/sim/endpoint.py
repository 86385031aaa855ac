"""The token endpoint: single-use refresh tokens with reuse detection, on virtual time.

Like OAuth servers, a refresh token works once; presenting one that was already spent revokes
the whole family (every later refresh token of that login, and its access tokens), answered
``invalid_grant``. A refresh is applied when the answer is sent: a POST whose client died or
timed out first never happened (the model leaves out an answer lost after the rotation,
which no client can survive). The faults of ``plan.ENDPOINT_FAULTS`` act on POSTs that start
in their window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from claude_oauth_auth._errors import TokenRefreshError
from claude_oauth_auth._tokens import Secret, TokenSet
from claude_oauth_auth.lifecycle._grant import (
    REFRESH_TIMEOUT_SECONDS,
    PartialAnswer,
    RefreshRefused,
)

from .plan import Fault
from .scheduler import Scheduler

__all__ = ["Endpoint", "Presenter"]

SCOPES = ("user:inference", "user:profile")
TOKEN_URL = "https://sim.invalid/v1/oauth/token"


class Presenter(Protocol):
    """Who POSTs: a worker (its manager's grant) or a foreign program."""

    name: str
    lockless: bool
    in_hand: list[str]

    def clock(self) -> float: ...


class Endpoint:
    """One login's token family; ``head`` is its live refresh token."""

    def __init__(self, sched: Scheduler, lifetime: float, faults: tuple[Fault, ...]) -> None:
        self.sched = sched
        self.lifetime = lifetime
        self.windows = [fault for fault in faults if fault.duration > 0 or fault.kind == "hang"]
        self.head: str | None = None
        self.alive = True
        self.revoked_by = ""
        self.spent: dict[str, str] = {}  # refresh token -> who spent it
        self.in_flight: dict[str, str] = {}  # refresh token -> who is presenting it
        self.access: dict[str, float] = {}  # access token -> expiry (server time)
        self.issued_at: dict[str, float] = {}  # refresh token -> when it was issued
        self.counter = 0
        self.posts = 0
        self.on_post: Callable[[Presenter, str], None] = lambda who, token: None

    def login(self) -> TokenSet:
        """The login a run starts with (issued just now)."""
        access, refresh = self._issue()
        return TokenSet(access, refresh, self.sched.now + self.lifetime, SCOPES)

    def access_valid(self, access: str) -> bool:
        """Would the API accept this access token now (server time)?"""
        expiry = self.access.get(access)
        return self.alive and expiry is not None and self.sched.now < expiry

    def grant(self, who: Presenter) -> Callable[[str, Secret, str], TokenSet]:
        """The ``grant=`` of a manager (or what a foreign program does): one POST."""

        def grant(token_url: str, refresh_token: Secret, client_id: str) -> TokenSet:
            return self.post(who, refresh_token.reveal())

        return grant

    def abandon(self, who: str) -> None:
        """The presenter died: its POSTs in flight never reach the endpoint."""
        for token, presenter in list(self.in_flight.items()):
            if presenter == who:
                del self.in_flight[token]

    # ----- one POST --------------------------------------------------------------------------

    def post(self, who: Presenter, token: str) -> TokenSet:
        self.sched.pause("POST")
        self.posts += 1
        started = who.clock()
        kind, delay = self._behaviour()
        self.on_post(who, token)
        duration = {
            "slow": delay,
            "hang": REFRESH_TIMEOUT_SECONDS,
            "429": 0.05,
            "5xx": 0.05,
        }.get(kind, round(self.sched.rng.uniform(0.05, 0.5), 3))
        self.in_flight[token] = who.name
        try:
            self.sched.sleep(duration, f"POST in flight ({kind})")
        finally:
            if self.in_flight.get(token) == who.name:
                del self.in_flight[token]
        if kind == "hang":
            raise TokenRefreshError(f"could not reach the token endpoint {TOKEN_URL} (timed out)")
        if kind == "5xx":
            raise TokenRefreshError(f"token endpoint {TOKEN_URL} answered HTTP 503")
        if kind == "429":
            raise TokenRefreshError(
                f"token endpoint {TOKEN_URL} answered HTTP 429", retry_after=delay
            )
        if not self.alive or token != self.head:
            if self.alive and token in self.spent:
                self.alive = False
                self.revoked_by = f"{who.name} reused a refresh token spent by {self.spent[token]}"
            raise RefreshRefused(400, "invalid_grant", "Invalid refresh token")
        self.spent[token] = who.name
        access, refresh = self._issue()
        who.in_hand.append(refresh)
        self.sched.note(who.name, f"endpoint rotated {token[-6:]} -> {refresh[-6:]}")
        if kind == "partial":
            problem = f'token endpoint {TOKEN_URL} answered 200 without a usable "access_token"'
            raise PartialAnswer(problem, TokenSet("", refresh, None, SCOPES))
        expires_at = started if kind == "no_expiry" else started + self.lifetime
        return TokenSet(access, refresh, expires_at, SCOPES)

    def _behaviour(self) -> tuple[str, float]:
        now = self.sched.now
        for fault in self.windows:
            if fault.at <= now - self.sched.start < fault.at + max(fault.duration, 0.001):
                return fault.kind, fault.delay
        return "ok", 0.0

    def _issue(self) -> tuple[str, str]:
        self.counter += 1
        access = f"sk-ant-oat01-sim-access-{self.counter:05d}"
        refresh = f"sk-ant-ort01-sim-refresh-{self.counter:05d}"
        self.access[access] = self.sched.now + self.lifetime
        self.issued_at[refresh] = self.sched.now
        self.head = refresh
        return access, refresh
