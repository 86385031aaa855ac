"""The Redis lease's renewer: a daemon thread that keeps a held lease alive."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .. import _clock
from ._redis_text import failure_reason

if TYPE_CHECKING:
    from redis.lock import Lock

__all__ = ["LeaseRenewer"]

log = logging.getLogger("claude_oauth_auth")


class LeaseRenewer:
    """A daemon thread that pushes a held lease's expiry back every ``lease / 3`` seconds."""

    def __init__(self, lease: Lock, lease_seconds: float, location: str, key: str) -> None:
        self._lease = lease
        self._key = key
        self._interval = lease_seconds / 3
        self._lease_seconds = lease_seconds
        self._location = location
        self._stopped = threading.Event()
        self._hold_until = 0.0
        self._thread = threading.Thread(
            target=self._run, name="claude-oauth-auth-redis-lease", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def hold_for(self, seconds: float) -> None:
        """Renew to at least ``seconds`` from now, not back down to the plain lease."""
        self._hold_until = _clock.monotonic() + seconds

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(self._lease_seconds)

    def _run(self) -> None:
        import redis.exceptions

        while not self._stopped.wait(self._interval):
            try:
                left = self._hold_until - _clock.monotonic()
                if left > self._lease_seconds:
                    self._lease.extend(left, replace_ttl=True)
                else:
                    self._lease.reacquire()
            except redis.exceptions.LockError:
                if not self._stopped.is_set():
                    log.warning(
                        "%s: lost the refresh lease while holding it; "
                        "another worker may refresh at the same time",
                        self._location,
                    )
                return
            except (redis.exceptions.RedisError, OSError) as error:
                if not self._stopped.is_set():
                    log.warning(
                        "%s: could not renew the refresh lease (%s); trying again",
                        self._location,
                        failure_reason(error, self._key),
                    )
