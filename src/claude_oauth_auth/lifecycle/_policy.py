"""The refresh policy: one pure decision, ``next_step(view, ask) -> action``.

No I/O, no clock, no store: the driver (``_driver``) builds the ``View`` and carries the
action out; the simulator in the tests runs the same driver on virtual time. Read top to
bottom, this answers "what happens to a request that arrives with an expired token".
"""

from __future__ import annotations

from ._state import (
    Action,
    Ask,
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

__all__ = [
    "FORCED_REFRESH_DEBOUNCE_SECONDS",
    "INVALID_GRANT_RECHECK_SECONDS",
    "LOCK_ATTEMPTS",
    "WRITTEN_BACK_POLL_SECONDS",
    "next_step",
]

FORCED_REFRESH_DEBOUNCE_SECONDS = 5.0
"""A burst of forced calls right after a refresh is served the new token, not refreshed again."""
INVALID_GRANT_RECHECK_SECONDS = 0.5
"""After ``invalid_grant``, the store is read once more this much later (lock released): a
program that ignores our lock may have rotated the tokens and not written them yet."""
WRITTEN_BACK_POLL_SECONDS = 0.25
"""How often a worker waiting out a written-back login looks for a newer one."""
MAX_WRITTEN_BACK_WAITS = 480
"""A bound on those looks (two minutes of them) even if the clock stands still."""
LOCK_ATTEMPTS = 3


def next_step(view: View, ask: Ask) -> Action:
    """What to do next for ``ask``, given ``view``."""
    if ask.failed:
        return _after_failure(view, ask)
    if ask.locked:
        return _under_lock(view, ask)
    if ask.kind == "refresh":
        return TakeLock()
    return _before_lock(view, ask)


def _before_lock(view: View, ask: Ask) -> Action:
    """Without the lock: serve from memory or the store when we may, else take the lock."""
    plain, now = ask.plain, view.now
    if view.unsaved_retry_due and not ask.save_tried:
        return RetrySave()
    if ask.kind == "rejected" and view.has_token and view.differs_from_rejected and not ask.read:
        return Serve()  # already replaced
    debounce = now - view.last_refresh_at < FORCED_REFRESH_DEBOUNCE_SECONDS
    if ask.kind == "forced" and view.has_token and debounce:
        return Serve()  # a burst of forced calls after one refresh
    if not ask.read and (ask.kind == "rejected" or now >= view.next_poll or not view.fresh):
        return ReadStore()
    if ask.kind == "rejected" and view.differs_from_rejected and view.fresh:
        return Serve()  # another program rotated it
    if view.refused:
        return Fail(FailKind.REFUSED)
    if plain and view.fresh:
        return Serve()
    if plain and view.valid and _written_back(view, ask):
        return Serve()  # a worker holding a newer login may still replace it
    if now < view.retry_not_before:  # one failure scheduled the next attempt for all
        return Serve() if plain and view.valid else Fail(FailKind.BACKING_OFF)
    return TakeLock()


def _under_lock(view: View, ask: Ask) -> Action:
    """Holding the lock, the store and the shared state just re-read: adopt, wait or spend."""
    adopt = ask.kind != "refresh"
    usable = view.valid and (ask.kind != "rejected" or view.differs_from_rejected)
    if ask.spent:
        return Serve()
    if _written_back(view, ask):  # forced and explicit refreshes wait too: nothing spends it
        if adopt and ask.kind != "forced" and usable:
            return Serve()
        # Give a worker holding a newer login the rest of the wait to put it back; the lock
        # is released meanwhile.
        return WaitUntil(
            min(view.written_back_until, view.now + WRITTEN_BACK_POLL_SECONDS),
            "a login written back after lost data may be older than one a worker holds",
        )
    wanted = view.replaced or (ask.plain and view.fresh)
    if adopt and wanted and not view.refused and view.valid:
        return Serve(adopted=True)
    if view.refused:
        if ask.refused_now and not ask.rechecked:
            return WaitUntil(
                view.now + INVALID_GRANT_RECHECK_SECONDS,
                "another program may have rotated the tokens without our lock",
            )
        return Fail(FailKind.REFUSED)
    if adopt and view.now < view.retry_not_before:  # another worker failed just now
        return Serve() if ask.plain and view.valid else Fail(FailKind.BACKING_OFF)
    if view.superseded:  # spending it would be a reuse, which revokes the newer login too
        return Fail(FailKind.SUPERSEDED)
    if ask.lock_lost:
        return RetakeLock() if ask.lock_attempts < LOCK_ATTEMPTS else Fail(FailKind.LOCK_LOST)
    return Spend()


def _after_failure(view: View, ask: Ask) -> Action:
    """The attempt raised: a plain request keeps a still-valid token; the rest get the error."""
    if ask.plain and view.valid:
        return Serve(warn=True)
    return Fail(FailKind.ATTEMPT_FAILED)


def _written_back(view: View, ask: Ask) -> bool:
    return view.now < view.written_back_until and ask.waits < MAX_WRITTEN_BACK_WAITS
