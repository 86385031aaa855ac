"""The system clock: the only module of the package that reads the time or sleeps.

Objects that take ``clock=`` (the clients, ``UnifiedAuthManager``, ``OAuthTokenManager``)
fall back to these; everything else calls them, so a test can replace them in one place.
"""

from __future__ import annotations

import time

__all__ = ["monotonic", "now", "sleep"]


def now() -> float:
    """Wall-clock time, in unix seconds (token expiries are in these)."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that never goes back, to measure and schedule waits."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Wait ``seconds``."""
    time.sleep(seconds)
