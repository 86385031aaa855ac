"""The system clock: the only module of the package that reads the time or sleeps.

Objects that take ``clock=`` (the clients, ``UnifiedAuthManager``, ``OAuthTokenManager``)
fall back to these; everything else calls them, so a test can replace them in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["every", "monotonic", "now", "sleep"]


def now() -> float:
    """Wall-clock time, in unix seconds (token expiries are in these)."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that never goes back, to measure and schedule waits."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Wait ``seconds``."""
    time.sleep(seconds)


def every(seconds: float, action: Callable[[], None], name: str) -> Callable[[], None]:
    """Call ``action`` every ``seconds`` in a daemon thread named ``name``; returns ``stop``,
    which ends the calls and waits for one in progress."""
    stopped = threading.Event()

    def repeat() -> None:
        while not stopped.wait(seconds):
            action()

    thread = threading.Thread(target=repeat, name=name, daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        if thread is not threading.current_thread():
            thread.join()

    return stop
