"""The hooks the slow paths call for OpenTelemetry: no-ops unless ``opentelemetry-api`` is here.

Whether it is installed is decided once per process, on the first ``watch_manager`` or
``watch_quota`` (building a token manager or a cascade), never at import and never on a
request: without the package nothing of it is imported, and each hook costs one global read.
With it, ``_otel`` makes the instruments (through the API only, so a program's own
``MeterProvider`` and ``TracerProvider`` receive them; without one they are the API's no-ops).
Only standard-library imports here.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._otel import Instruments
    from ._tokens import Secret, TokenSet

__all__ = ["active", "store_failed", "timed_enter", "watch_manager", "watch_quota"]

log = logging.getLogger("claude_oauth_auth")

Grant = Callable[[str, "Secret", str], "TokenSet"]

_decided = False
_instruments: Instruments | None = None
_deciding = threading.Lock()


def active() -> Instruments | None:
    """The instruments, once ``opentelemetry-api`` was found installed; else None."""
    return _instruments


def _decide() -> Instruments | None:
    """Look for ``opentelemetry-api`` once per process; make the instruments if it is there."""
    global _decided, _instruments
    if _decided:
        return _instruments
    with _deciding:
        if not _decided:
            try:
                if _installed():
                    from ._otel import Instruments

                    _instruments = Instruments()
            except Exception as error:  # an API older than 1.30, say: no metrics, same login
                log.debug("OpenTelemetry is installed but unusable: %r", error)
            _decided = True
    return _instruments


def _installed() -> bool:
    """``opentelemetry-api`` can be imported (looked up, not imported)."""
    try:
        return importlib.util.find_spec("opentelemetry.metrics") is not None
    except ImportError:  # no ``opentelemetry`` package at all
        return False


def watch_manager(manager: Any, grant: Grant) -> Grant:
    """A new token manager: its token's expiry is observed, and ``grant`` timed and traced
    (returned as it is without OpenTelemetry)."""
    instruments = _decide()
    if instruments is None:
        return grant
    return instruments.watch_manager(manager, grant)


def watch_quota(board: Any) -> None:
    """A new ``QuotaBoard``: its logins' utilisation per window is observed."""
    instruments = _decide()
    if instruments is not None:
        instruments.watch_quota(board)


def timed_enter(held: AbstractContextManager[None], store: Any, clock: Callable[[], float]) -> None:
    """``held.__enter__()`` (the refresh lock), its wait recorded when OpenTelemetry is on."""
    instruments = _instruments
    if instruments is None:
        held.__enter__()
        return
    started = clock()
    try:
        held.__enter__()
    except BaseException as error:
        instruments.lock_waited(store, clock() - started, error)
        raise
    instruments.lock_waited(store, clock() - started, None)


def store_failed(store: Any, operation: str, error: BaseException) -> None:
    """A ``read``, ``save``, ``lock`` or ``write_back`` of ``store`` failed with ``error``."""
    instruments = _instruments
    if instruments is not None:
        instruments.store_failed(store, operation, error)
