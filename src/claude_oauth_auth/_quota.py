"""The subscription quota a login's responses report, from ``anthropic-ratelimit-unified-*``.

The API sends these headers on Messages responses to OAuth (subscription) requests; API keys
get the per-minute ``anthropic-ratelimit-*`` headers instead. The client's auth flow hands
each response's headers to the login's ``QuotaBoard`` (nothing is fetched for it): a response
without ``anthropic-ratelimit-unified-status`` costs one header lookup, one with it a copy of
its unified header pairs, parsed on first read. Parsing is lenient: a value that does not
parse is left out, never raised.

Names (as Claude Code reads them): ``-status``, ``-reset``, ``-representative-claim``,
``-fallback``, ``-fallback-percentage``, ``-overage-status``, ``-overage-disabled-reason``,
and per window ``5h``, ``7d``, ``7d_oi``, ``overage``: ``-{window}-utilization`` (a fraction),
``-{window}-reset`` (unix seconds), ``-{window}-status``, ``-{window}-surpassed-threshold``.
Only standard-library imports: the package imports this module without the SDK.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from . import _clock, _telemetry

__all__ = [
    "STATUS_HEADER",
    "WINDOWS",
    "Quota",
    "QuotaBoard",
    "QuotaWindow",
    "parse_quota",
    "quota_line",
]

PREFIX = "anthropic-ratelimit-unified-"
PREFIX_BYTES = PREFIX.encode()
STATUS_HEADER = PREFIX + "status"
# The windows' header names, and the representative claim that names each one.
WINDOWS = {
    "5h": "five_hour",
    "7d": "seven_day",
    "7d_oi": "seven_day_overage_included",
    "overage": "overage",
}
LABELS = {
    "5h": "5-hour window",
    "7d": "7-day",
    "7d_oi": "7-day (one model)",
    "overage": "extra usage",
}
DAY_SECONDS = 86400.0
MAX_TEXT = 64  # a status or reason longer than this is not one the API sends


class _Headers(Protocol):
    """What the flow gives: an ``httpx2.Headers`` (case-insensitive ``in``, raw byte pairs)."""

    def __contains__(self, key: Any, /) -> bool: ...

    @property
    def raw(self) -> list[tuple[bytes, bytes]]: ...


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """One window of the subscription's allowance, as the last response reported it."""

    utilization: float | None
    """The fraction used, 0 to 1 (above 1 when overdrawn); None if not reported."""
    resets_at: float | None
    """When the window resets, in unix seconds; None if not reported."""
    status: str | None = None
    """``allowed``, ``allowed_warning`` or ``rejected``, when the API says."""
    surpassed_threshold: float | None = None
    """The warning threshold the usage passed (a fraction), when the API says."""


@dataclass(frozen=True, slots=True)
class Quota:
    """The last ``anthropic-ratelimit-unified-*`` headers a login's responses carried.

    ``client.quota`` gives it (None until a response carried them). Times are unix seconds.

    Example:
        >>> quota = client.quota
        >>> quota.five_hour.utilization, quota.representative_claim
        (0.62, 'five_hour')
    """

    status: str | None
    """The overall verdict: ``allowed``, ``allowed_warning`` or ``rejected``."""
    resets_at: float | None
    """When the binding window resets (``-reset``)."""
    representative_claim: str | None
    """The binding window: ``five_hour``, ``seven_day``, ``seven_day_overage_included`` …"""
    five_hour: QuotaWindow | None
    """The 5-hour window (``-5h-*``)."""
    seven_day: QuotaWindow | None
    """The 7-day window (``-7d-*``)."""
    seven_day_overage_included: QuotaWindow | None
    """The model-scoped 7-day window (``-7d_oi-*``)."""
    overage: QuotaWindow | None
    """Extra usage beyond the plan (``-overage-*``)."""
    fallback: str | None
    """``-fallback``: ``available`` when a fallback model may be used."""
    fallback_percentage: float | None
    """``-fallback-percentage``, a fraction."""
    overage_status: str | None
    """``-overage-status``: whether extra usage is ``allowed`` or ``rejected``."""
    overage_disabled_reason: str | None
    """``-overage-disabled-reason``, e.g. ``org_level_disabled``."""
    observed_at: float
    """When the response arrived."""

    @property
    def windows(self) -> dict[str, QuotaWindow]:
        """The reported windows by header name (``5h``, ``7d``, ``7d_oi``, ``overage``)."""
        found = {
            "5h": self.five_hour,
            "7d": self.seven_day,
            "7d_oi": self.seven_day_overage_included,
            "overage": self.overage,
        }
        return {name: window for name, window in found.items() if window is not None}

    @property
    def binding(self) -> QuotaWindow | None:
        """The window ``representative_claim`` names, if it is reported."""
        for name, claim in WINDOWS.items():
            if claim == self.representative_claim:
                return self.windows.get(name)
        return None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (``status --json``'s ``quota``)."""
        windows = {
            name: {
                "utilization": window.utilization,
                "resets_at": window.resets_at,
                "status": window.status,
                "surpassed_threshold": window.surpassed_threshold,
            }
            for name, window in self.windows.items()
        }
        names = (
            "status",
            "resets_at",
            "representative_claim",
            "fallback",
            "fallback_percentage",
            "overage_status",
            "overage_disabled_reason",
        )
        document: dict[str, Any] = {name: getattr(self, name) for name in names}
        document["windows"] = windows
        document["observed_at"] = self.observed_at
        return document


def parse_quota(items: Iterable[tuple[str, str]], observed_at: float) -> Quota | None:
    """A ``Quota`` from response header items; None when none is a unified header."""
    unified: dict[str, str] = {}
    for name, value in items:
        lowered = name.lower()
        if lowered.startswith(PREFIX):
            unified[lowered[len(PREFIX) :]] = value
    if not unified:
        return None
    windows = [_window(unified, name) for name in WINDOWS]
    return Quota(
        status=_text(unified.get("status")),
        resets_at=_seconds(unified.get("reset")),
        representative_claim=_text(unified.get("representative-claim")),
        five_hour=windows[0],
        seven_day=windows[1],
        seven_day_overage_included=windows[2],
        overage=windows[3],
        fallback=_text(unified.get("fallback")),
        fallback_percentage=_fraction(unified.get("fallback-percentage")),
        overage_status=_text(unified.get("overage-status")),
        overage_disabled_reason=_text(unified.get("overage-disabled-reason")),
        observed_at=observed_at,
    )


class QuotaBoard:
    """The last ``Quota`` of each login (by cascade source) of one ``UnifiedAuthManager``.

    Shared by the manager's clients and their copies. On the request path ``note`` only keeps
    the unified header pairs (a few microseconds); ``get`` parses them, once. One assignment
    per update: readers see the previous value or the new one, without a lock.
    """

    def __init__(self) -> None:
        self._by_login: dict[str, _Seen] = {}
        _telemetry.watch_quota(self)  # its utilisation, observed with OpenTelemetry installed

    def note(self, login: str, headers: _Headers) -> None:
        """Keep the unified headers of a response for ``login``; nothing when it has none."""
        if STATUS_HEADER not in headers:
            return
        size = len(PREFIX_BYTES)
        pairs = tuple(pair for pair in headers.raw if pair[0][:size].lower() == PREFIX_BYTES)
        self._by_login = {**self._by_login, login: _Seen(pairs, _clock.now())}

    def get(self, login: str) -> Quota | None:
        """The last quota reported for ``login``, or None."""
        seen = self._by_login.get(login)
        return seen.quota() if seen is not None else None

    def latest(self) -> dict[str, Quota]:
        """The last quota of every login that reported one."""
        found = {login: seen.quota() for login, seen in self._by_login.items()}
        return {login: quota for login, quota in found.items() if quota is not None}


class _Seen:
    """One response's unified header pairs, parsed on first use."""

    __slots__ = ("_observed_at", "_pairs", "_quota")

    def __init__(self, pairs: tuple[tuple[bytes, bytes], ...], observed_at: float) -> None:
        self._pairs = pairs
        self._observed_at = observed_at
        self._quota: Quota | None = None

    def quota(self) -> Quota | None:
        if self._quota is None:
            items = (
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._pairs
            )
            self._quota = parse_quota(items, self._observed_at)
        return self._quota


def quota_line(document: Mapping[str, Any]) -> str:
    """``Quota: 5-hour window: 62 % used, resets 14:05 UTC (binding); 7-day: 18 % used, …``

    From ``Quota.as_dict()``; local times, as ``status`` prints the token's expiry.
    """
    binding = next(
        (name for name, claim in WINDOWS.items() if claim == document.get("representative_claim")),
        None,
    )
    parts = []
    for name, window in document.get("windows", {}).items():
        facts = []
        if window["utilization"] is not None:
            facts.append(f"{round(window['utilization'] * 100)} % used")
        if window["resets_at"] is not None:
            facts.append(f"resets {_when(window['resets_at'])}")
        notes = [window["status"]] if window["status"] not in (None, "allowed") else []
        notes += ["binding"] if name == binding else []
        text = f"{LABELS.get(name, name)}: {', '.join(facts) or 'reported'}"
        parts.append(text + (f" ({', '.join(notes)})" if notes else ""))
    status = document.get("status")
    if status not in (None, "allowed"):
        parts.append(f"status: {status}")
    return "Quota: " + ("; ".join(parts) if parts else "reported, with no window")


def _when(unix_seconds: float) -> str:
    """``14:05 UTC`` within a day, else ``Jun 12 09:00 UTC`` (local time)."""
    moment = datetime.fromtimestamp(unix_seconds).astimezone()
    within_a_day = abs(unix_seconds - _clock.now()) < DAY_SECONDS
    return moment.strftime("%H:%M %Z" if within_a_day else "%b %d %H:%M %Z")


def _window(unified: dict[str, str], name: str) -> QuotaWindow | None:
    utilization = _fraction(unified.get(f"{name}-utilization"))
    resets_at = _seconds(unified.get(f"{name}-reset"))
    if utilization is None and resets_at is None:
        return None  # a status alone is no window: -overage-status is sent without one
    status = _text(unified.get(f"{name}-status"))
    threshold = _fraction(unified.get(f"{name}-surpassed-threshold"))
    return QuotaWindow(utilization, resets_at, status, threshold)


def _number(value: str | None) -> float | None:
    if value is None or len(value) > MAX_TEXT:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _fraction(value: str | None) -> float | None:
    """A utilisation: a fraction, up to a little above 1 when overdrawn (else not one)."""
    number = _number(value)
    return number if number is not None and number <= 10 else None


def _seconds(value: str | None) -> float | None:
    """Unix seconds; a value in milliseconds or before 2001 is not one the API sends."""
    number = _number(value)
    return number if number is not None and 1e9 <= number < 1e11 else None


def _text(value: str | None) -> str | None:
    """A short printable token (``allowed``, ``five_hour``), else None."""
    value = value.strip() if value is not None else None
    if not value or len(value) > MAX_TEXT or not value.isprintable():
        return None
    return value
