"""Structured events for programs that alert on the login's life, without parsing messages.

Each event is one ``logging`` record on the logger ``claude_oauth_auth.events`` (INFO, not
propagated, so it never doubles the human messages on ``claude_oauth_auth``), with two
attributes: ``record.event`` (one of ``EVENTS``) and ``record.event_data`` (a dict of plain,
secret-free values: store locations, source names, seconds, reasons). With no handler attached
an event costs one logger check; events happen on refreshes and fallbacks, never per request.
"""

from __future__ import annotations

import logging

__all__ = ["EVENTS", "emit"]

EVENTS = ("refreshed", "adopted", "written_back", "refused", "fell_back", "recovered")

events_log = logging.getLogger("claude_oauth_auth.events")
events_log.propagate = False


def emit(event: str, message: str, **data: object) -> None:
    """Record ``event`` (``message`` is its human text) with ``data`` as ``event_data``."""
    if events_log.isEnabledFor(logging.INFO):
        events_log.info(message, extra={"event": event, "event_data": data})
