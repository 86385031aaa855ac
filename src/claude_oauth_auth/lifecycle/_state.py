"""What the policy decides on (a worker's view and the ask) and what it can decide (actions).

Plain values: no I/O, no clock. The driver builds a ``View`` before each step from what the
worker holds and what the store last showed, asks ``next_step`` and carries out the action.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal

from .._tokens import Generation, TokenSet

__all__ = [
    "Action",
    "Ask",
    "Backoff",
    "Fail",
    "FailKind",
    "Failure",
    "Known",
    "ReadStore",
    "Refusal",
    "RetakeLock",
    "RetrySave",
    "Serve",
    "Spend",
    "TakeLock",
    "View",
    "WaitUntil",
    "WorkerState",
    "WrittenBack",
]

Failure = tuple[str, str | None, int | None]
"""Why OAuth stopped (the endpoint's words), the refresh token it refused, its HTTP status."""


@dataclass(frozen=True)
class Refusal:
    """The endpoint refused a refresh token (``key``: ``refusal_key``) for good: its words."""

    key: str
    reason: str
    status: int | None


@dataclass(slots=True)
class Backoff:
    """The next refresh attempt after failures, shared by every worker of a store."""

    retry_not_before: float = -math.inf
    failures: int = 0
    last_error: str = ""


@dataclass(slots=True)
class Known:
    """What the workers sharing a store learned about refresh tokens (digests, never text)."""

    spent: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    newest: Generation | None = None
    """The generation last saved to the store (for a file: by any process)."""


@dataclass(slots=True)
class WrittenBack:
    """A login written back after the store lost its data: when first seen, and which."""

    at: float = -math.inf
    digest: str = ""


@dataclass(slots=True)
class WorkerState:
    """Everything one worker holds between asks: one value, read by the driver into a
    ``View`` and changed only by the driver's actions."""

    tokens: TokenSet | None = None
    version: Hashable = None
    """The store's version when ``tokens`` were read or saved."""
    next_poll: float = -math.inf
    watch: tuple[float, float] = (-math.inf, -math.inf)
    """The refresh window of the login just replaced: its holders come to the store then."""
    failure: Failure | None = None
    unsaved: TokenSet | None = None
    last_save_attempt: float = -math.inf
    last_refresh_at: float = -math.inf
    granted_lifetime: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    known: Known = field(default_factory=Known)
    written_back: WrittenBack = field(default_factory=WrittenBack)


AskKind = Literal["plain", "forced", "rejected", "refresh"]
"""``plain``: a token for a request; ``forced``: the SDK asked for a new one; ``rejected``: the
API refused the token we sent (a 401); ``refresh``: an explicit ``refresh()`` (always spends)."""


@dataclass(frozen=True, slots=True)
class View:
    """What a worker holds and what its store last showed, at ``now`` (``clock()`` seconds).

    Tokens appear only as facts about them (present, expiry, equal to the rejected one), never
    as text: the policy cannot leak what it never sees.
    """

    now: float
    has_token: bool
    expires_at: float | None
    threshold: float
    replaced: bool
    """The access token differs from the one held when the lock was taken, and from the
    rejected one."""
    differs_from_rejected: bool
    """A ``rejected`` ask: the token held is no longer the one the API refused."""
    next_poll: float
    refused: bool
    unsaved_retry_due: bool
    retry_not_before: float
    last_refresh_at: float
    written_back_until: float
    """A login written back after lost data is not spent before this moment."""
    superseded: bool = False
    """The login held is an older copy of one saved to the store before (a backup put back):
    its refresh token was spent."""

    @property
    def valid(self) -> bool:
        """There is an access token and it has not expired."""
        return self.has_token and (self.expires_at is None or self.expires_at > self.now)

    @property
    def fresh(self) -> bool:
        """Valid and more than the threshold away from expiry: serve without a refresh."""
        return self.has_token and (
            self.expires_at is None or self.expires_at - self.now > self.threshold
        )


@dataclass(frozen=True, slots=True)
class Ask:
    """One call for a token and how far it got (the driver's progress, as plain facts)."""

    kind: AskKind = "plain"
    read: bool = False
    """The store was consulted in this round (outside the lock)."""
    save_tried: bool = False
    locked: bool = False
    lock_attempts: int = 0
    lock_lost: bool = False
    """The store's lock was lost while held (a lease that ran out, a flushed Redis)."""
    spent: bool = False
    """This ask spent the refresh token and the answer was saved (or kept in memory)."""
    refused_now: bool = False
    """This ask's spend was refused (``invalid_grant``…): re-read once after a short wait."""
    rechecked: bool = False
    waits: int = 0
    """Waits for a written-back login to be replaced (bounded even if the clock stands still)."""
    failed: bool = False
    """The refresh attempt (the lock, the spend, the save check) raised an error."""

    @property
    def plain(self) -> bool:
        return self.kind == "plain"

    def but(self, **changes: object) -> Ask:
        return replace(self, **changes)  # type: ignore[arg-type]


class FailKind(Enum):
    REFUSED = "refused"
    """The endpoint refused the refresh token for good (or there is none): log in again."""
    BACKING_OFF = "backing off"
    """A failure scheduled the next attempt for every worker; none is made before it."""
    LOCK_LOST = "lock lost"
    """The store's lock was lost while held, again and again."""
    ATTEMPT_FAILED = "attempt failed"
    """The refresh attempt's own error, raised as it is."""
    SUPERSEDED = "superseded"
    """The store holds an older copy of its login: its refresh token is not sent again."""


@dataclass(frozen=True, slots=True)
class Serve:
    """Hand out the access token held; ``adopted``: one another worker refreshed; ``warn``:
    the refresh failed but the token is still valid."""

    adopted: bool = False
    warn: bool = False


@dataclass(frozen=True, slots=True)
class RetrySave:
    """Retry saving tokens a failed save left only in memory."""


@dataclass(frozen=True, slots=True)
class ReadStore:
    """Consult the store: re-read it if its version changed (adopt, or write ours back)."""


@dataclass(frozen=True, slots=True)
class TakeLock:
    """Take the store's lock, then re-read the store and the shared state under it."""


@dataclass(frozen=True, slots=True)
class RetakeLock:
    """The lock was lost while held: let it go and take it again before spending."""


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Release the lock (if held), wait until ``at``, then consult the store again."""

    at: float
    why: str = field(default="")


@dataclass(frozen=True, slots=True)
class Spend:
    """Spend the refresh token (one POST) and save the answer before it is used."""


@dataclass(frozen=True, slots=True)
class Fail:
    kind: FailKind


Action = Serve | RetrySave | ReadStore | TakeLock | RetakeLock | WaitUntil | Spend | Fail
