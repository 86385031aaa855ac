"""A fake Anthropic API server for tests.

`FakeAnthropic` runs a real HTTP/1.1 server on ``127.0.0.1`` (random free port) that behaves
like the Anthropic Messages API plus the OAuth token endpoint, closely enough for the real
``anthropic`` SDK and for the OAuth refresh logic of this library to be exercised end to end.

Only the standard library is used.

Typical use::

    with FakeAnthropic() as fake:
        access, refresh = fake.issue_tokens()
        client = anthropic.Anthropic(
            auth_token=access,
            base_url=fake.base_url,
            default_headers={"anthropic-beta": OAUTH_BETA},
        )
        client.messages.create(...)

All mutable state (credentials, counters, records, fault queues) is guarded by ``fake.lock``,
a non-reentrant :class:`threading.Lock`. Tests should take it when reading records while
requests may still be in flight. The public methods of ``FakeAnthropic`` take the lock
themselves, so do not call them while holding it. Records and counters are updated *before*
the response is written, so once a client has received a response its request is visible.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

__all__ = [
    "CLAUDE_CODE_ONLY_MESSAGE",
    "FAKE_MODEL",
    "JWT_BEARER_GRANT",
    "OAUTH_BETA",
    "TOKEN_PATH",
    "AuthKind",
    "FakeAnthropic",
    "Fault",
    "RecordedRequest",
    "UnifiedLimits",
]

OAUTH_BETA = "oauth-2025-04-20"
TOKEN_PATH = "/v1/oauth/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLAUDE_CODE_ONLY_MESSAGE = (
    "This credential is only authorized for use with Claude Code and cannot be used for "
    "other API requests."
)
OAUTH_NOT_SUPPORTED_MESSAGE = "OAuth authentication is currently not supported."
OAUTH_EXPIRED_MESSAGE = (
    "OAuth token has expired. Please obtain a new token or refresh your existing token."
)
INVALID_KEY_MESSAGE = "invalid x-api-key"
MISSING_KEY_MESSAGE = "x-api-key header is required"
INVALID_GRANT_BODY: dict[str, str] = {
    "error": "invalid_grant",
    "error_description": "Refresh token not found or invalid",
}
UNIFIED_PREFIX = "anthropic-ratelimit-unified-"
UNIFIED_CLAIMS = {  # window header name -> representative claim naming it
    "5h": "five_hour",
    "7d": "seven_day",
    "7d_oi": "seven_day_overage_included",
    "overage": "overage",
}
REPLY_TEXT = "Hello from fake API"
_REPLY_CHUNKS = ("Hello", " from", " fake API")

FAKE_MODEL: dict[str, Any] = {
    "type": "model",
    "id": "claude-test-1",
    "display_name": "Claude Test",
    "created_at": "2025-01-01T00:00:00Z",
    "lifecycle": "active",
}

AuthKind: TypeAlias = Literal["api_key", "oauth", "unknown", "none"]
FaultBody: TypeAlias = bytes | str | dict[str, Any] | list[Any]
_Headers: TypeAlias = dict[str, str]


@dataclass
class Fault:
    """A canned answer queued in ``token_faults`` or ``api_faults``.

    ``body``: ``dict``/``list`` is sent as JSON (``application/json``), ``str``/``bytes`` as is
    (``text/plain`` unless ``headers`` sets a content type). ``headers`` are added to (and
    override) the defaults; ``Content-Length`` is always computed. ``delay`` seconds are slept
    before answering (without holding the lock). ``close=True`` closes the connection without
    sending any response (after ``delay``).
    """

    status: int
    body: FaultBody = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False


@dataclass
class UnifiedLimits:
    """The ``anthropic-ratelimit-unified-*`` headers sent on Messages responses to OAuth requests.

    The names are the ones Claude Code reads and the API was seen sending (see
    ``docs/observability.md``). Per window (``5h``, ``7d``, ``7d_oi``, ``overage``):
    ``-{window}-utilization`` (a fraction), ``-{window}-reset`` (unix seconds: ``resets_in``
    seconds after the fake's clock) and ``-{window}-status``; a window missing from
    ``utilization`` is not sent. ``None`` leaves a header out; ``extra`` adds or overrides
    headers by full name (malformed values, tests), and an empty value there removes one.
    """

    status: str | None = "allowed"
    representative_claim: str | None = "five_hour"
    fallback: str | None = "available"
    fallback_percentage: float | None = 0.5
    overage_status: str | None = "rejected"
    overage_disabled_reason: str | None = "org_level_disabled"
    utilization: dict[str, float] = field(default_factory=lambda: {"5h": 0.62, "7d": 0.18})
    resets_in: dict[str, float] = field(
        default_factory=lambda: {"5h": 3 * 3600.0, "7d": 4 * 86400.0, "7d_oi": 4 * 86400.0}
    )
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self, now: float) -> dict[str, str]:
        """The headers of one response at ``now`` (unix seconds)."""
        prefix = UNIFIED_PREFIX
        out: dict[str, str] = {}
        for window, used in self.utilization.items():
            out[f"{prefix}{window}-utilization"] = f"{used:g}"
            out[f"{prefix}{window}-reset"] = str(int(now + self.resets_in.get(window, 3600.0)))
            if window != "overage":  # the overage window's status is -overage-status
                out[f"{prefix}{window}-status"] = "rejected" if used >= 1 else "allowed"
        claim_window = {v: k for k, v in UNIFIED_CLAIMS.items()}.get(self.representative_claim)
        simple = {
            "status": self.status,
            "representative-claim": self.representative_claim,
            "reset": out.get(f"{prefix}{claim_window}-reset"),
            "fallback": self.fallback,
            "fallback-percentage": None
            if self.fallback_percentage is None
            else f"{self.fallback_percentage:g}",
            "overage-status": self.overage_status,
            "overage-disabled-reason": self.overage_disabled_reason,
        }
        out.update({prefix + name: value for name, value in simple.items() if value is not None})
        for name, value in self.extra.items():
            if value:
                out[name] = value
            else:
                out.pop(name, None)
        return out


@dataclass
class RecordedRequest:
    """One request received on a non-token path.

    ``path`` excludes the query string (kept in ``query``). ``headers`` has lower-cased keys;
    repeated headers are joined with ``", "``. ``token`` is the bearer / ``X-Api-Key`` value
    that was checked. ``status`` is the status answered (``0`` when a fault closed the
    connection without answering). ``json`` is the parsed JSON body, or ``None``.
    """

    method: str
    path: str
    headers: dict[str, str]
    auth_kind: AuthKind
    token: str | None
    betas: list[str]
    status: int
    json: Any
    query: str = ""

    @property
    def has_both_auth_headers(self) -> bool:
        """True if both ``Authorization`` and ``X-Api-Key`` were sent."""
        return "authorization" in self.headers and "x-api-key" in self.headers


@dataclass
class _AccessToken:
    expires_at: float
    claude_code_only: bool
    revoked: bool = False


@dataclass
class _RefreshToken:
    claude_code_only: bool
    used: bool = False
    revoked: bool = False


@dataclass
class _Response:
    status: int
    body: bytes
    headers: _Headers
    close: bool = False


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(status: int, obj: Any, headers: _Headers | None = None) -> _Response:
    hdrs: _Headers = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return _Response(status, _json_bytes(obj), hdrs)


def _api_error(status: int, error_type: str, message: str) -> _Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return _json_response(status, body)


def _fault_response(fault: Fault) -> _Response:
    body = fault.body
    if isinstance(body, (dict, list)):
        data = _json_bytes(body)
        content_type = "application/json"
    elif isinstance(body, str):
        data = body.encode()
        content_type = "text/plain; charset=utf-8"
    else:
        data = bytes(body)
        content_type = "text/plain; charset=utf-8"
    headers: _Headers = {"Content-Type": content_type}
    for name, value in fault.headers.items():
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if name.lower() != "content-length":
            headers[name] = value
    return _Response(fault.status, data, headers, close=fault.close)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _rand(prefix: str, nbytes: int = 24) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def _count_tokens(body: dict[str, Any]) -> int:
    """A deterministic, roughly plausible token estimate (about 4 characters per token)."""
    parts = [body.get("messages"), body.get("system"), body.get("tools")]
    size = sum(len(json.dumps(p)) for p in parts if p is not None)
    return max(1, size // 4)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, fake: FakeAnthropic) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection resets from clients going away are normal; record anything else.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.fake._record_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAnthropic/1.0"
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeAnthropic:
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track_connection(self.connection, add=False)

    # -- plumbing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _lower_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in {k.lower() for k in self.headers}:
            values = self.headers.get_all(name) or []
            out[name] = ", ".join(values)
        return out

    def _send(self, resp: _Response) -> None:
        if resp.close:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        if not any(k.lower() == "request-id" for k in resp.headers):
            self.send_header("request-id", _rand("req_", 12))
        self.end_headers()
        if resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    def _dispatch(self) -> None:
        try:
            raw = self._read_body()
            split = urllib.parse.urlsplit(self.path)
            path, query = split.path, split.query
            if path.rstrip("/") == TOKEN_PATH:
                resp = self.fake._handle_token(self.command, self._lower_headers(), raw)
            else:
                resp = self.fake._handle_api(self.command, path, query, self._lower_headers(), raw)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            self.fake._record_error(traceback.format_exc())
            resp = _api_error(500, "api_error", "Internal server error (fake)")
        try:
            self._send(resp)
        except (ConnectionError, TimeoutError):
            self.close_connection = True


class FakeAnthropic:
    """A fake Anthropic Messages API + OAuth token endpoint on a real local HTTP server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

        # knobs
        self.refresh_latency: float = 0.0
        self.access_token_lifetime: float = 3600.0
        self.clock: Callable[[], float] = time.time  # when access tokens expire (unix seconds)
        self.rotate_refresh_tokens: bool = True
        self.token_faults: list[Fault] = []
        self.api_faults: list[Fault] = []
        # The unified rate-limit headers of OAuth responses (None: not sent), on these paths.
        self.unified_limits: UnifiedLimits | None = UnifiedLimits()
        self.unified_paths: tuple[str, ...] = ("/v1/messages",)

        # counters / records
        self.token_posts: int = 0
        self.invalid_grants: int = 0
        self.token_requests: list[dict[str, Any]] = []
        self.token_headers: list[dict[str, str]] = []  # lower-cased, one per token POST
        self.token_post_times: list[float] = []  # time.monotonic() of each token POST
        self.api_requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks of unexpected server-side exceptions

        # credentials
        self._api_keys: set[str] = set()
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._identity_tokens: set[str] = set()  # JWTs the jwt-bearer grant accepts
        self._batches: dict[str, dict[str, Any]] = {}

        self._connections: set[socket.socket] = set()
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url: str = f"http://127.0.0.1:{port}"
        self.token_url: str = self.base_url + TOKEN_PATH
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        if self._stopped:
            raise RuntimeError("FakeAnthropic cannot be restarted once stopped")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"FakeAnthropic:{self._server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and drop open keep-alive connections."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        with self.lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- credentials ------------------------------------------------------------------------

    def add_api_key(self, key: str | None = None) -> str:
        if key is None:
            key = _rand("sk-ant-api03-", 48)
        with self.lock:
            self._api_keys.add(key)
        return key

    def issue_tokens(
        self, *, expires_in: float = 3600, claude_code_only: bool = False
    ) -> tuple[str, str]:
        """Mint an (access, refresh) pair; the access token is valid for ``expires_in`` s."""
        with self.lock:
            return self._mint_locked(expires_in, claude_code_only, with_refresh=True)

    def add_identity_token(self, jwt: str | None = None) -> str:
        """An identity token (a workload's JWT) the jwt-bearer grant will exchange."""
        if jwt is None:
            jwt = "eyJ" + _rand("", 24) + "." + _rand("", 24) + "." + _rand("", 16)
        with self.lock:
            self._identity_tokens.add(jwt)
        return jwt

    def revoke_access_token(self, token: str) -> None:
        with self.lock:
            entry = self._access_tokens.get(token)
            if entry is not None:
                entry.revoked = True

    def revoke_refresh_token(self, token: str) -> None:
        with self.lock:
            entry = self._refresh_tokens.get(token)
            if entry is not None:
                entry.revoked = True

    def refresh_token_usable(self, token: str | None) -> bool:
        """True when ``token`` is a refresh token this server issued and would still accept."""
        with self.lock:
            entry = self._refresh_tokens.get(token) if token else None
            return entry is not None and not entry.used and not entry.revoked

    def _mint_locked(
        self, expires_in: float, claude_code_only: bool, *, with_refresh: bool
    ) -> tuple[str, str]:
        access = _rand("sk-ant-oat01-", 48)
        self._access_tokens[access] = _AccessToken(self.clock() + expires_in, claude_code_only)
        refresh = ""
        if with_refresh:
            refresh = _rand("sk-ant-ort01-", 48)
            self._refresh_tokens[refresh] = _RefreshToken(claude_code_only)
        return access, refresh

    # -- records ----------------------------------------------------------------------------

    def api_requests_count(self) -> int:
        with self.lock:
            return len(self.api_requests)

    def reset_counters(self) -> None:
        """Reset counters and records (not credentials, knobs or queued faults)."""
        with self.lock:
            self.token_posts = 0
            self.invalid_grants = 0
            self.token_requests.clear()
            self.token_headers.clear()
            self.token_post_times.clear()
            self.api_requests.clear()

    def _record_error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self.lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- token endpoint ---------------------------------------------------------------------

    def _handle_token(self, method: str, headers: dict[str, str], raw: bytes) -> _Response:
        if method != "POST":
            return _json_response(
                405, {"error": "invalid_request", "error_description": "Method not allowed"}
            )
        body = self._parse_token_body(headers.get("content-type", ""), raw)
        with self.lock:
            self.token_posts += 1
            self.token_requests.append(body if body is not None else {})
            self.token_headers.append(dict(headers))
            self.token_post_times.append(time.monotonic())
            fault = self.token_faults.pop(0) if self.token_faults else None
            latency = self.refresh_latency

        if latency > 0:
            time.sleep(latency)
        if fault is not None:
            if fault.delay > 0:
                time.sleep(fault.delay)
            return _fault_response(fault)

        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if body is None:
            return _json_response(
                400,
                {"error": "invalid_request", "error_description": "Malformed request body"},
                no_store,
            )
        if body.get("grant_type") == JWT_BEARER_GRANT:
            return self._exchange_identity_token(body, no_store)
        if body.get("grant_type") != "refresh_token":
            return _json_response(400, {"error": "unsupported_grant_type"}, no_store)
        refresh = body.get("refresh_token")

        # Atomic check-and-consume.
        with self.lock:
            entry = self._refresh_tokens.get(refresh) if isinstance(refresh, str) else None
            if entry is None or entry.used or entry.revoked:
                self.invalid_grants += 1
                return _json_response(400, dict(INVALID_GRANT_BODY), no_store)
            rotate = self.rotate_refresh_tokens
            lifetime = self.access_token_lifetime
            if rotate:
                entry.used = True
            access, new_refresh = self._mint_locked(
                lifetime, entry.claude_code_only, with_refresh=rotate
            )

        out: dict[str, Any] = {"access_token": access}
        if rotate:
            out["refresh_token"] = new_refresh
        out.update({"expires_in": int(lifetime), "token_type": "Bearer", "scope": "user:inference"})
        return _json_response(200, out, no_store)

    def _exchange_identity_token(self, body: dict[str, Any], no_store: _Headers) -> _Response:
        """RFC 7523 jwt-bearer, as workload identity federation uses it."""
        if not body.get("federation_rule_id") or not body.get("organization_id"):
            return _json_response(400, {"error": "invalid_request"}, no_store)
        with self.lock:
            if body.get("assertion") not in self._identity_tokens:
                self.invalid_grants += 1
                return _json_response(401, dict(INVALID_GRANT_BODY), no_store)
            access, _ = self._mint_locked(self.access_token_lifetime, False, with_refresh=False)
            lifetime = int(self.access_token_lifetime)
        out = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime}
        return _json_response(200, out, no_store)

    @staticmethod
    def _parse_token_body(content_type: str, raw: bytes) -> dict[str, Any] | None:
        """JSON object first (whatever the content type), else form-encoded unless JSON."""
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return cast(dict[str, Any], parsed)
        if "json" in content_type.lower():
            return None
        try:
            form = urllib.parse.parse_qs(text, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            return None
        return {k: v[0] for k, v in form.items()}

    # -- Messages API -----------------------------------------------------------------------

    def _authenticate(
        self, headers: dict[str, str]
    ) -> tuple[AuthKind, str | None, _Response | None]:
        """Returns (auth_kind, token, error response or None)."""
        token: str | None = None
        authz = headers.get("authorization")
        if authz:
            scheme, _, value = authz.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else authz.strip()
        elif headers.get("x-api-key"):
            token = headers["x-api-key"].strip()
        if not token:
            return "none", None, _api_error(401, "authentication_error", MISSING_KEY_MESSAGE)

        betas = _parse_betas(headers)
        with self.lock:
            if token in self._api_keys:
                return "api_key", token, None
            entry = self._access_tokens.get(token)
            if entry is None:
                return (
                    "unknown",
                    token,
                    _api_error(401, "authentication_error", INVALID_KEY_MESSAGE),
                )
            expired = self.clock() >= entry.expires_at
            revoked = entry.revoked
            cc_only = entry.claude_code_only
        if OAUTH_BETA not in betas:
            return (
                "oauth",
                token,
                _api_error(401, "authentication_error", OAUTH_NOT_SUPPORTED_MESSAGE),
            )
        if revoked:
            return "oauth", token, _api_error(401, "authentication_error", INVALID_KEY_MESSAGE)
        if expired:
            return "oauth", token, _api_error(401, "authentication_error", OAUTH_EXPIRED_MESSAGE)
        if cc_only:
            return (
                "oauth",
                token,
                _api_error(400, "invalid_request_error", CLAUDE_CODE_ONLY_MESSAGE),
            )
        return "oauth", token, None

    def _handle_api(
        self, method: str, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> _Response:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        betas = _parse_betas(headers)

        fault: Fault | None = None
        if path.startswith("/v1/"):
            auth_kind, token, resp = self._authenticate(headers)
            if resp is None:
                with self.lock:
                    fault = self.api_faults.pop(0) if self.api_faults else None
                if fault is not None:
                    resp = _fault_response(fault)
                else:
                    resp = self._route(method, path, body, raw)
                if auth_kind == "oauth":
                    self._add_unified_limits(path, resp, fault)
        else:
            auth_kind, token = "none", None
            resp = _api_error(404, "not_found_error", f"Not found: {method} {path}")

        record = RecordedRequest(
            method=method,
            path=path,
            headers=headers,
            auth_kind=auth_kind,
            token=token,
            betas=betas,
            status=0 if resp.close else resp.status,
            json=body,
            query=query,
        )
        with self.lock:
            self.api_requests.append(record)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        return resp

    def _add_unified_limits(self, path: str, resp: _Response, fault: Fault | None) -> None:
        """An accepted OAuth request's answer carries the unified headers (a fault's own win)."""
        with self.lock:
            limits, paths, now = self.unified_limits, self.unified_paths, self.clock()
        if limits is None or path.rstrip("/") not in paths:
            return
        own = {name.lower() for name in fault.headers} if fault is not None else set()
        for name, value in limits.headers(now).items():
            if name not in own:
                resp.headers[name] = value

    def _route(self, method: str, path: str, body: Any, raw: bytes) -> _Response:
        p = path.rstrip("/")
        if method == "POST" and p in (
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/messages/batches",
        ):
            if not isinstance(body, dict):
                msg = "Request body must be a JSON object" if raw else "Request body is required"
                return _api_error(400, "invalid_request_error", msg)
            body = cast(dict[str, Any], body)
            if p == "/v1/messages":
                return self._messages(body)
            if p == "/v1/messages/count_tokens":
                err = _validate_message_params(body, need_max_tokens=False)
                if err is not None:
                    return err
                return _json_response(200, {"input_tokens": _count_tokens(body)})
            return self._create_batch(body)
        if method == "GET" and p == "/v1/models":
            page = {
                "data": [dict(FAKE_MODEL)],
                "has_more": False,
                "first_id": FAKE_MODEL["id"],
                "last_id": FAKE_MODEL["id"],
            }
            return _json_response(200, page)
        if method == "GET" and p.startswith("/v1/models/"):
            model_id = urllib.parse.unquote(p[len("/v1/models/") :])
            if model_id == FAKE_MODEL["id"]:
                return _json_response(200, dict(FAKE_MODEL))
            return _api_error(404, "not_found_error", f"model: {model_id}")
        if method == "GET" and p.startswith("/v1/messages/batches/"):
            batch_id = urllib.parse.unquote(p[len("/v1/messages/batches/") :])
            with self.lock:
                batch = self._batches.get(batch_id)
            if batch is None:
                return _api_error(404, "not_found_error", f"message batch: {batch_id}")
            return _json_response(200, batch)
        return _api_error(404, "not_found_error", f"Not found: {method} {path}")

    def _messages(self, body: dict[str, Any]) -> _Response:
        err = _validate_message_params(body, need_max_tokens=True)
        if err is not None:
            return err
        input_tokens = _count_tokens(body)
        output_tokens = len(_REPLY_CHUNKS)
        msg_id = _rand("msg_", 18)
        model = body["model"]
        if body.get("stream") is True:
            return self._stream_messages(msg_id, model, input_tokens, output_tokens)
        content: list[dict[str, Any]] = [{"type": "text", "text": REPLY_TEXT}]
        stop_reason = "end_turn"
        tool = _forced_tool(body)
        if tool is not None:
            content = [_tool_use(tool)]
            stop_reason = "tool_use"
        message = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        return _json_response(200, message)

    @staticmethod
    def _stream_messages(
        msg_id: str, model: str, input_tokens: int, output_tokens: int
    ) -> _Response:
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for chunk in _REPLY_CHUNKS:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        data = b"".join(
            b"event: " + name.encode() + b"\ndata: " + _json_bytes(payload) + b"\n\n"
            for name, payload in events
        )
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        return _Response(200, data, headers)

    def _create_batch(self, body: dict[str, Any]) -> _Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return _api_error(400, "invalid_request_error", "requests: Field required")
        now = time.time()
        batch_id = _rand("msgbatch_", 18)
        batch: dict[str, Any] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _iso(now),
            "expires_at": _iso(now + 86400),
            "ended_at": None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        with self.lock:
            self._batches[batch_id] = batch
        return _json_response(200, batch)


def _parse_betas(headers: dict[str, str]) -> list[str]:
    raw = headers.get("anthropic-beta", "")
    return [b.strip() for b in raw.split(",") if b.strip()]


def _validate_message_params(body: dict[str, Any], *, need_max_tokens: bool) -> _Response | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _api_error(400, "invalid_request_error", "model: Field required")
    if not isinstance(body.get("messages"), list):
        return _api_error(400, "invalid_request_error", "messages: Field required")
    if need_max_tokens:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _api_error(400, "invalid_request_error", "max_tokens: Field required")
    return None


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a request forces (``tool_choice`` ``tool`` or ``any``), else None."""
    choice = body.get("tool_choice")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    if not isinstance(choice, dict) or not tools:
        return None
    if choice.get("type") == "any":
        return cast(dict[str, Any], tools[0])
    if choice.get("type") == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    return None


def _tool_use(tool: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block whose input is a placeholder value matching the tool's schema."""
    schema = tool.get("input_schema") or {}
    return {
        "type": "tool_use",
        "id": _rand("toolu_", 12),
        "name": tool["name"],
        "input": _example(schema, schema),
    }


def _example(schema: Any, root: dict[str, Any]) -> Any:
    """A value valid for a simple JSON schema: strings are REPLY_TEXT, numbers 1, and so on."""
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _example(target, root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for union in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(union, []) if o.get("type") != "null"]
        if options:
            return _example(options[0], root)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _example(sub, root) for name, sub in properties.items()}
    if kind == "array":
        return [_example(schema.get("items") or {}, root)]
    simple = {"string": REPLY_TEXT, "integer": 1, "number": 1.0, "boolean": True, "null": None}
    return simple.get(kind) if isinstance(kind, str) else None
