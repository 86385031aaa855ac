"""Structured events for programs that alert on the login's life, without parsing messages.

Each event is one ``logging`` record on the logger ``claude_oauth_auth.events`` (INFO, not
propagated, so it never doubles the human messages on ``claude_oauth_auth``), with two
attributes: ``record.event`` (one of ``EVENTS``) and ``record.event_data`` (a dict of plain,
secret-free values: store locations, source names, seconds, reasons). With no handler attached
an event costs one logger check; events happen on refreshes and fallbacks, never per request.

Inside the package, ``listen`` subscribes a callback to every event (the OpenTelemetry
instruments of ``_otel`` count fallbacks and recoveries this way); a failing listener is
logged at DEBUG and never fails the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

__all__ = ["EVENTS", "Listener", "emit", "listen"]

EVENTS = ("refreshed", "adopted", "written_back", "refused", "fell_back", "recovered")

events_log = logging.getLogger("claude_oauth_auth.events")
events_log.propagate = False

Listener = Callable[[str, Mapping[str, object]], None]
"""``listener(event, data)``: called for every event, in the thread that emits it."""

_listeners: tuple[Listener, ...] = ()


def listen(listener: Listener) -> None:
    """Call ``listener`` for every event from now on (internal: ``_otel``)."""
    global _listeners
    _listeners = (*_listeners, listener)


def emit(event: str, message: str, **data: object) -> None:
    """Record ``event`` (``message`` is its human text) with ``data`` as ``event_data``."""
    for listener in _listeners:
        try:
            listener(event, data)
        except Exception as error:  # telemetry never fails a refresh or a fallback
            logging.getLogger("claude_oauth_auth").debug("An event listener failed: %r", error)
    if events_log.isEnabledFor(logging.INFO):
        events_log.info(message, extra={"event": event, "event_data": data})
