"""``keep-fresh --health-port``: whether the sidecar's login is alive and fresh, and why not.

``judge`` reads what the refresh loop last saw (no store read, no refresh: a probe costs
nothing and changes nothing). Unhealthy, in this order: the login was refused; the store was
never read; the loop has not passed for ``stall_after`` seconds; the last attempt could not
use the store; there is no login; the access token has expired. A token still valid while
refreshes fail is healthy (the workers still have a token), with the failure in the reason.
Reasons hold store locations and error text, never a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .._errors import StoreError

if TYPE_CHECKING:
    from ..lifecycle._manager import OAuthTokenManager

__all__ = ["STALL_GRACE_SECONDS", "Health", "Watched", "judge"]

STALL_GRACE_SECONDS = 120.0
"""Beyond ``--check-every``, how long one pass of the loop may take before it counts as
stalled: a lock wait (up to 60 s) and a refresh POST (up to 30 s) fit within it."""


@dataclass(frozen=True)
class Health:
    """The answer of ``/healthz``: 200 when ``healthy``, else 503; ``reason`` says why."""

    healthy: bool
    reason: str

    @property
    def status(self) -> int:
        return 200 if self.healthy else 503


class Watched(Protocol):
    """What the refresh loop (``KeepFresh``) records for the probe."""

    manager: OAuthTokenManager | None
    problem: Exception | None
    dead: str | None
    heartbeat: float
    stall_after: float
    clock: Callable[[], float]


def judge(keeper: Watched) -> Health:
    """The sidecar's health now, from what its loop last recorded."""
    now = keeper.clock()
    manager, problem = keeper.manager, keeper.problem
    refused = keeper.dead or (manager.permanent_failure if manager is not None else None)
    if refused:
        return Health(False, f"refused: {refused}; log in again")
    if manager is None:
        why = f": {problem}" if problem is not None else ""
        return Health(False, f"starting: the store has not been read yet{why}")
    quiet = now - keeper.heartbeat
    if quiet > keeper.stall_after:
        return Health(False, f"stalled: the refresh loop has not run for {quiet:.0f} s")
    if isinstance(problem, StoreError):
        return Health(False, f"store unreadable: {problem}")
    expiry = manager.token_expiry
    if not manager.access_token:
        return Health(False, "no login: the store holds no OAuth login")
    failing = f"; the last refresh failed ({problem}), retrying" if problem is not None else ""
    if expiry is None:
        return Health(True, "fresh: the access token has no expiry" + failing)
    if expiry <= now:
        return Health(False, f"expired: the access token expired {now - expiry:.0f} s ago{failing}")
    return Health(True, f"fresh: the access token expires in {expiry - now:.0f} s{failing}")
