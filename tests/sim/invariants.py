"""The invariants, checked after every step (and at every POST).

1. ``1-refresh-token-once``: a refresh token is never presented twice (neither after it was
   spent, nor while another POST of it is in flight).
2. ``2-login-kept``: the newest live login (the endpoint's head) is in the store, or held by
   a live worker (in its manager, or in hand between the POST's answer and the save).
3. ``3-request-ends``: every request ends with a token or one of the library's errors
   (``ClaudeAuthError``), within ``bound`` seconds of virtual time.
4. ``4-no-post-while-fresh``: no POST (plain request, or after a 401 on another token) while
   the store, as the posting worker just read it under the lock, holds a live token that is
   fresh by that worker's clock and threshold.

Some losses no library can prevent; they end the run's login without failing it (``lost``,
counted in the figures), after which 1, 2 and 4 stop: a program that ignores the lock raced
us; the only holder of a login the store had lost to an injected fault (flush, snapshot) was
killed; the only holder was killed before its save went through (mid-request, or its save
had failed on an injected fault); a worker paused past the stale time of Claude Code's locks
after its last check that it held them (nothing but a fencing token guards that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .claude_code import ClaudeCode
from .endpoint import Endpoint, Presenter
from .scheduler import Scheduler, Violation
from .stores import Backend
from .workers import LOCKLESS, Foreign, SimWorker

__all__ = ["Monitor"]


class Holder(Protocol):
    name: str
    dead: bool
    fault_hit: bool
    request_started: float | None

    def holds(self, refresh_token: str) -> bool: ...


def _paused_past_check(holder: Holder, names: tuple[str, str]) -> bool:
    store = getattr(holder, "store", None)
    return holder.name in names and bool(getattr(store, "paused_past_check", False))


class Monitor:
    """Watches one run; ``fail`` records a violation, ``after_step`` raises it."""

    def __init__(self, sched: Scheduler, endpoint: Endpoint, backend: Backend, bound: float):
        self.sched, self.endpoint, self.backend = sched, endpoint, backend
        self.bound = bound
        self.holders: list[Holder] = []
        self.violation: Violation | None = None
        self.lost = ""
        self.checks = 0
        self.fault_step = False
        self.stored: dict[str, None] = {}
        self.missing: tuple[float, str] | None = None
        self.last_holders: Sequence[Holder] = ()
        self.outcomes: dict[str, int] = {}

    def fail(self, invariant: str, detail: str) -> None:
        if self.violation is None:
            self.violation = Violation(invariant, detail)

    def forgive(self, why: str) -> None:
        if not self.lost:
            self.lost = why
            self.sched.note("monitor", f"login lost, not our bug: {why}")

    # ----- at each POST -------------------------------------------------------------------------

    def on_post(self, who: Presenter, token: str) -> None:
        self.checks += 2
        if self.lost or not self.endpoint.alive:
            return
        endpoint = self.endpoint
        first = endpoint.spent.get(token) or endpoint.in_flight.get(token)
        if first is not None:
            how = "spent" if token in endpoint.spent else "still in flight"
            if who.lockless or first == LOCKLESS:
                self.forgive(f"{who.name} and {first} raced for one refresh token")
                return
            paused = [h.name for h in self.holders if _paused_past_check(h, (who.name, first))]
            if paused:
                self.forgive(
                    f"{paused[0]} was paused past the locks' stale time after it last checked "
                    "them: no lock guards that (a fencing token would)"
                )
                return
            self.fail(
                "1-refresh-token-once",
                f"{who.name} presents refresh token ...{token[-6:]}, {how} by {first}",
            )
            return
        if isinstance(who, SimWorker):
            self._check_no_post_while_fresh(who, token)

    def _check_no_post_while_fresh(self, worker: SimWorker, token: str) -> None:
        ask, rejected = worker.ask
        seen = worker.store.read_under_lock if worker.store.holding else None
        if ask == "force" or seen is None or seen.refresh_token != self.endpoint.head:
            return
        left = (seen.expires_at if seen.expires_at is not None else float("inf")) - worker.clock()
        if left <= worker.spec.threshold or (ask == "reject" and seen.access_token == rejected):
            return
        self.fail(
            "4-no-post-while-fresh",
            f"{worker.name} ({ask}) POSTs ...{token[-6:]} though the store it just read under the "
            f"lock holds live ...{(seen.refresh_token or '')[-6:]}, fresh for {left:.1f} s more "
            f"(threshold {worker.spec.threshold:g} s)",
        )

    # ----- after each step ----------------------------------------------------------------------

    def after_step(self) -> None:
        if self.violation is None:
            self._check_login_kept()
            self._check_requests_end()
        self.fault_step = False
        if self.violation is not None:
            raise self.violation

    def _check_login_kept(self) -> None:
        self.checks += 1
        head = self.endpoint.head
        if self.lost or not self.endpoint.alive or head is None:
            return
        if self.backend.peek() == head:
            self.stored[head] = None
            self.missing, self.last_holders = None, ()
            return
        if self.missing is None:
            if self.fault_step:
                cause = "fault"
            elif head not in self.stored:
                cause = "unsaved"
            else:
                cause = f"overwritten by {self.sched.trace[-1][1]}"
            self.missing = (self.sched.now, cause)
        holders = [holder for holder in self.holders if not holder.dead and holder.holds(head)]
        if holders:
            self.last_holders = holders
            return
        since, cause = self.missing
        dropped = [holder for holder in self.last_holders if not holder.dead]
        killed = [holder for holder in self.last_holders if holder.dead]
        if dropped and all(isinstance(holder, Foreign | ClaudeCode) for holder in dropped):
            self.forgive(f"a foreign program dropped ...{head[-6:]} (its save failed)")
        elif not dropped and cause == "fault":
            self.forgive(f"the store lost ...{head[-6:]} (a fault); no live worker held it")
        elif not dropped and cause == "unsaved" and any(map(self._killed_saving, killed)):
            self.forgive(f"...{head[-6:]}'s holder was killed before its save went through")
        else:
            names = ", ".join(holder.name for holder in dropped)
            how = f"dropped by {names}" if dropped else "its holders were killed"
            self.fail(
                "2-login-kept",
                f"the newest login ...{head[-6:]} is in no store and no live worker holds it "
                f"({how}; missing from the store since {since - self.sched.start:.3f}: {cause})",
            )

    @staticmethod
    def _killed_saving(holder: Holder) -> bool:
        manager = getattr(holder, "manager", None)
        unsaved = manager is not None and manager.unsaved
        return holder.request_started is not None or unsaved or holder.fault_hit

    def _check_requests_end(self) -> None:
        self.checks += 1
        now = self.sched.now
        for holder in self.holders:
            started = holder.request_started
            if not holder.dead and started is not None and now - started > self.bound:
                self.fail(
                    "3-request-ends",
                    f"{holder.name}'s request has run {now - started:.1f} s (bound {self.bound:g})",
                )

    def request_done(self, worker: SimWorker, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def at_end(self) -> None:
        """Every live actor is done: none may be stuck in a request."""
        for actor in self.sched.actors:
            if not actor.done and not actor.dead:
                self.fail("3-request-ends", f"{actor.name} waits forever at {actor.label!r}")
        if self.violation is not None:
            raise self.violation
