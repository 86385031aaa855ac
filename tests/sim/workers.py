"""The actors: workers running the real ``OAuthTokenManager``, and foreign programs.

A worker is a process (or host): its own manager, its own store object, its own clock (off
by ``clock_offset``), one request at a time. A request gets a token and uses it; when the API
(the endpoint model, on server time) refuses it, the worker asks again with ``rejected=``, as
the client flow does after a 401. A killed worker takes its memory with it; a restarted one
is a new process that reads the store.
"""

from __future__ import annotations

import math
import random
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from claude_oauth_auth import OAuthTokenManager
from claude_oauth_auth._errors import ClaudeAuthError, StoreError, TokenRefreshError
from claude_oauth_auth._tokens import TokenSet
from claude_oauth_auth.lifecycle._grant import PartialAnswer, RefreshRefused
from claude_oauth_auth.lifecycle._manager import check_store

from .endpoint import TOKEN_URL, Endpoint
from .plan import Request, Worker
from .scheduler import Killed, Scheduler
from .stores import Backend, SimStore

if TYPE_CHECKING:
    from .invariants import Monitor

__all__ = ["Foreign", "SimWorker"]

CLIENT_ID = "sim-client-id"
LOCKLESS = "foreign-lockless"


class SimWorker:
    """One incarnation of a worker (a restart is a new one)."""

    lockless = False

    def __init__(
        self,
        spec: Worker,
        incarnation: int,
        sched: Scheduler,
        endpoint: Endpoint,
        make_store: Callable[[SimWorker], SimStore],
        monitor: Monitor,
        requests: tuple[Request, ...],
    ) -> None:
        self.spec = spec
        self.name = spec.name if incarnation == 0 else f"{spec.name}#{incarnation}"
        self.sched, self.endpoint, self.monitor = sched, endpoint, monitor
        self.requests = requests
        self.incarnation = incarnation
        self.manager: OAuthTokenManager | None = None
        self.in_hand: list[str] = []
        self.ask: tuple[str, str | None] = ("plain", None)
        self.request_started: float | None = None
        self.dead = False
        self.died_at = math.inf
        self.fault_hit = False
        self.store = make_store(self)

    def clock(self) -> float:
        return self.sched.now + self.spec.clock_offset

    def sleep(self, seconds: float) -> None:
        if self.dead or self.sched.closed:
            raise Killed
        self.sched.sleep(seconds, f"manager sleeps {seconds:g} s")

    def holds(self, refresh_token: str) -> bool:
        manager = self.manager
        held = manager is not None and manager.refresh_token == refresh_token
        return held or refresh_token in self.in_hand

    def main(self) -> None:
        for request in self.requests:
            when = self.sched.start + request.at
            self.sched.pause(f"request {request.kind}", wake_at=when)
            self.request_started, self.fault_hit = self.sched.now, False
            outcome = "token"
            try:
                self._serve(request)
            except ClaudeAuthError as error:
                outcome = type(error).__name__
            except Killed:
                raise
            except Exception as error:
                detail = "".join(traceback.format_exception(error))
                self.monitor.fail(
                    "3-request-ends",
                    f"{self.name}'s {request.kind} request raised {type(error).__name__}, not "
                    f"one of the library's errors:\n{detail}",
                )
                outcome = type(error).__name__
            self.monitor.request_done(self, outcome)
            self.request_started = None
            self.in_hand.clear()

    def _start(self) -> OAuthTokenManager:
        manager = OAuthTokenManager(
            store=self.store,
            client_id=CLIENT_ID,
            token_url=TOKEN_URL,
            refresh_threshold=self.spec.threshold,
            clock=self.clock,
            grant=self.endpoint.grant(self),
            sleep=self.sleep,
            rng=random.Random(f"{self.sched.rng.random()}"),  # the backoff's jitter, seeded
        )
        self.manager = manager
        return manager

    def _serve(self, request: Request) -> None:
        manager = self.manager or self._start()
        held = manager.access_token
        if request.kind == "check":  # what keep-fresh does on each --check-every
            self.ask = ("check", None)
            check_store(manager)
            return
        if request.kind == "force":
            self.ask = ("force", None)
            token = manager.get_valid_token(force_refresh=True)
        elif request.kind == "reject" and held:
            self.ask = ("reject", held)
            token = manager.get_valid_token(rejected=held)
        else:
            self.ask = ("plain", None)
            token = manager.get_valid_token()
        if not self.endpoint.access_valid(token):  # the API answers 401
            self.ask = ("reject", token)
            manager.get_valid_token(rejected=token)


class Foreign:
    """Another program on the same store: it rotates the login at its time, with the store's
    lock (another program of ours) or without it (Claude Code itself: ``claude_code.py``)."""

    in_hand: list[str]

    def __init__(
        self,
        kind: str,
        index: int,
        sched: Scheduler,
        endpoint: Endpoint,
        backend: Backend,
        make_store: Callable[[Foreign], SimStore],
    ) -> None:
        self.lockless = kind == "foreign_lockless"
        self.name = LOCKLESS if self.lockless else f"foreign-locked-{index}"
        self.sched, self.endpoint = sched, endpoint
        self.in_hand = []
        self.dead = False
        self.died_at = math.inf
        self.fault_hit = False
        self.store = make_store(self)
        self.request_started: float | None = None

    def clock(self) -> float:
        return self.sched.now

    def holds(self, refresh_token: str) -> bool:
        return refresh_token in self.in_hand

    def main(self) -> None:
        try:
            if self.lockless:
                self._rotate()
            else:
                with self.store.lock(60.0):
                    self._rotate()
        except StoreError:
            pass
        self.in_hand.clear()

    def _rotate(self) -> None:
        tokens = self.store.load()
        if tokens is None or tokens.refresh_token is None:
            return
        try:
            fresh = self.endpoint.post(self, tokens.refresh_token)
        except PartialAnswer as partial:
            fresh = TokenSet(tokens.access_token, partial.tokens.refresh_token, tokens.expires_at)
        except (RefreshRefused, TokenRefreshError):
            return
        self.store.save(fresh, expected_version=self.store.version())
