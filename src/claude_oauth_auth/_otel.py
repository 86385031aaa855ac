"""The OpenTelemetry instruments (imported only by ``_telemetry``, when the API is installed).

Through ``opentelemetry-api`` only: the meter and tracer are the global providers', so a
program that configured a ``MeterProvider`` / ``TracerProvider`` gets them, and without one
they are no-ops. Names follow OpenTelemetry's naming rules (``docs/observability.md`` lists
them for dashboards). No attribute holds a token: store kinds, source names, outcomes,
status codes and error types only.

Instrument                                 kind            unit         attributes
``claude_oauth_auth.refresh.duration``     histogram       s            store.kind, refresh.outcome,
                                                                        error.type, http status
``claude_oauth_auth.lock.wait_time``       histogram       s            store.kind, error.type
``claude_oauth_auth.token.time_to_expiry`` gauge (async)   s            store.kind
``claude_oauth_auth.cascade.fallbacks``    counter         {fallback}   source, fallback.source,
                                                                        fallback.temporary
``claude_oauth_auth.cascade.recoveries``   counter         {recovery}   source
``claude_oauth_auth.store.errors``         counter         {error}      store.kind, store.operation,
                                                                        error.type
``claude_oauth_auth.quota.utilization``    gauge (async)   1            source, quota.window

The span ``claude_oauth_auth.refresh`` (kind CLIENT) wraps each refresh POST.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _events
from ._errors import StoreError
from ._version import __version__

if TYPE_CHECKING:
    from ._tokens import Secret, TokenSet

__all__ = ["SCOPE", "Instruments", "store_kind"]

SCOPE = "claude_oauth_auth"
REFRESH_SPAN = "claude_oauth_auth.refresh"
REFRESH_DURATION = "claude_oauth_auth.refresh.duration"
LOCK_WAIT_TIME = "claude_oauth_auth.lock.wait_time"
TIME_TO_EXPIRY = "claude_oauth_auth.token.time_to_expiry"
FALLBACKS = "claude_oauth_auth.cascade.fallbacks"
RECOVERIES = "claude_oauth_auth.cascade.recoveries"
STORE_ERRORS = "claude_oauth_auth.store.errors"
QUOTA_UTILIZATION = "claude_oauth_auth.quota.utilization"

STORE_KIND = "claude_oauth_auth.store.kind"
STORE_OPERATION = "claude_oauth_auth.store.operation"
OUTCOME = "claude_oauth_auth.refresh.outcome"
SOURCE = "claude_oauth_auth.source"
FALLBACK_SOURCE = "claude_oauth_auth.fallback.source"
FALLBACK_TEMPORARY = "claude_oauth_auth.fallback.temporary"
QUOTA_WINDOW = "claude_oauth_auth.quota.window"
ERROR_TYPE = "error.type"  # OpenTelemetry's own attributes, as their conventions name them
STATUS_CODE = "http.response.status_code"
METHOD = "http.request.method"
SERVER = "server.address"

REFRESH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOCK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WORD = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

Grant = Callable[[str, "Secret", str], "TokenSet"]


def store_kind(store: object) -> str:
    """``file``, ``claude_code``, ``redis``, ``keyring`` …: the class name, snake case, less
    ``Store`` (a store of your own gives its own); ``none`` for a manager without a store."""
    if store is None:
        return "none"
    name = type(store).__name__
    name = name[: -len("Store")] if name.endswith("Store") and name != "Store" else name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _refusal(error: BaseException) -> tuple[int, str] | None:
    """The endpoint's status and error code when ``error`` is a refusal of the refresh token
    (``lifecycle._grant.RefreshRefused``, told by its ``status`` and ``error``: this module
    sits below ``lifecycle/`` and imports nothing from it); else None."""
    status, code = getattr(error, "status", None), getattr(error, "error", None)
    if isinstance(status, int) and isinstance(code, str):
        return status, code if WORD.fullmatch(code) else "refused"
    return None


class Instruments:
    """The package's instruments; one per process (``_telemetry`` makes it)."""

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE, __version__)
        self.tracer = trace.get_tracer(SCOPE, __version__)
        self.refresh_duration = meter.create_histogram(
            REFRESH_DURATION,
            unit="s",
            description="Refresh POSTs to the token endpoint and how long each took, by outcome",
            explicit_bucket_boundaries_advisory=REFRESH_BUCKETS,
        )
        self.lock_wait_time = meter.create_histogram(
            LOCK_WAIT_TIME,
            unit="s",
            description="How long a refresh waited for the store's cross-process lock",
            explicit_bucket_boundaries_advisory=LOCK_BUCKETS,
        )
        self.fallbacks = meter.create_counter(
            FALLBACKS,
            unit="{fallback}",
            description="Times the credential in use failed and a lower cascade source took over",
        )
        self.recoveries = meter.create_counter(
            RECOVERIES,
            unit="{recovery}",
            description="Times OAuth worked again after a temporary failure",
        )
        self.store_errors = meter.create_counter(
            STORE_ERRORS,
            unit="{error}",
            description="Failed reads, saves, lock takes and write-backs of a token store",
        )
        meter.create_observable_gauge(
            TIME_TO_EXPIRY,
            callbacks=[self._observe_expiry],
            unit="s",
            description="Seconds until the access token held expires (negative once expired)",
        )
        meter.create_observable_gauge(
            QUOTA_UTILIZATION,
            callbacks=[self._observe_quota],
            unit="1",
            description="The fraction used of each subscription window, as the API last said",
        )
        self._managers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._boards: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        _events.listen(self._on_event)

    # ----- what the hooks call ------------------------------------------------------------------

    def watch_manager(self, manager: Any, grant: Grant) -> Grant:
        """Observe ``manager``'s token expiry; time and trace each call of its ``grant``."""
        with self._lock:
            self._managers.add(manager)
        kind = store_kind(manager.store)
        clock: Callable[[], float] = manager._clock
        tracer, record = self.tracer, self.refresh_duration.record

        def traced_grant(token_url: str, refresh_token: Secret, client_id: str) -> TokenSet:
            attributes: dict[str, Any] = {STORE_KIND: kind}
            span_attributes = {**attributes, METHOD: "POST", SERVER: _host(token_url)}
            started = clock()
            with tracer.start_as_current_span(
                REFRESH_SPAN,
                kind=SpanKind.CLIENT,
                attributes=span_attributes,
                record_exception=False,  # an exception's text and stack stay out of spans
                set_status_on_exception=False,
            ) as span:
                try:
                    tokens = grant(token_url, refresh_token, client_id)
                except BaseException as error:
                    attributes.update(_failure(error))
                    span.set_attributes(attributes)
                    span.set_status(Status(StatusCode.ERROR, attributes[ERROR_TYPE]))
                    record(max(0.0, clock() - started), attributes)
                    raise
                attributes.update({OUTCOME: "success", STATUS_CODE: 200})
                span.set_attributes(attributes)
                record(max(0.0, clock() - started), attributes)
                return tokens

        return traced_grant

    def watch_quota(self, board: Any) -> None:
        """Observe the utilisation per window that ``board``'s logins last reported."""
        with self._lock:
            self._boards.add(board)

    def lock_waited(self, store: Any, seconds: float, error: BaseException | None) -> None:
        attributes = {STORE_KIND: store_kind(store)}
        if error is not None:
            attributes[ERROR_TYPE] = type(error).__name__
            if isinstance(error, StoreError):
                self.store_failed(store, "lock", error)
        self.lock_wait_time.record(max(0.0, seconds), attributes)

    def store_failed(self, store: Any, operation: str, error: BaseException) -> None:
        self.store_errors.add(
            1,
            {
                STORE_KIND: store_kind(store),
                STORE_OPERATION: operation,
                ERROR_TYPE: type(error).__name__,
            },
        )

    def _on_event(self, event: str, data: Mapping[str, object]) -> None:
        if event == "fell_back":
            self.fallbacks.add(
                1,
                {
                    SOURCE: str(data.get("source")),
                    FALLBACK_SOURCE: str(data.get("to")),
                    FALLBACK_TEMPORARY: bool(data.get("temporary")),
                },
            )
        elif event == "recovered":
            self.recoveries.add(1, {SOURCE: str(data.get("source"))})

    # ----- the observable gauges -----------------------------------------------------------------

    def _observe_expiry(self, options: CallbackOptions) -> Iterable[Observation]:
        """Per store kind, the soonest expiry among the live managers holding a token."""
        with self._lock:
            managers = list(self._managers)
        soonest: dict[str, float] = {}
        for manager in managers:
            expiry = manager.token_expiry
            if not manager.access_token or expiry is None:
                continue
            kind = store_kind(manager.store)
            left = float(expiry) - manager._clock()
            soonest[kind] = min(left, soonest.get(kind, math.inf))
        return [Observation(left, {STORE_KIND: kind}) for kind, left in soonest.items()]

    def _observe_quota(self, options: CallbackOptions) -> Iterable[Observation]:
        """Per login and window, the latest utilisation any board holds."""
        with self._lock:
            boards = list(self._boards)
        latest: dict[tuple[str, str], tuple[float, float]] = {}
        for board in boards:
            for login, quota in board.latest().items():
                for window, values in quota.windows.items():
                    if values.utilization is None:
                        continue
                    key = (login, window)
                    seen = latest.get(key)
                    if seen is None or quota.observed_at >= seen[0]:
                        latest[key] = (quota.observed_at, values.utilization)
        return [
            Observation(used, {SOURCE: login, QUOTA_WINDOW: window})
            for (login, window), (_, used) in latest.items()
        ]


def _failure(error: BaseException) -> dict[str, Any]:
    """The attributes of a failed refresh POST: refused (with the endpoint's status and error
    code, ``invalid_grant``) or failed (with the exception's class)."""
    refusal = _refusal(error)
    if refusal is not None:
        return {OUTCOME: "refused", STATUS_CODE: refusal[0], ERROR_TYPE: refusal[1]}
    return {OUTCOME: "failed", ERROR_TYPE: type(error).__name__}


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
