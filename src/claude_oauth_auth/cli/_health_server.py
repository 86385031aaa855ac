"""The sidecar's probe endpoints: ``/healthz`` and ``/metrics`` over plain HTTP, stdlib only.

A ``ThreadingHTTPServer`` in a daemon thread, on loopback unless ``--health-host`` says
otherwise. ``/healthz`` answers 200 or 503 with a one-line JSON reason (``_health.judge``);
``/metrics`` the Prometheus text of ``_prometheus`` (501 without the ``health`` extra).
Requests are not logged: a probe every few seconds would drown the refresh lines.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._command_base import EXIT_USAGE, CommandError
from ._health import Health
from ._prometheus import Exposition, prometheus_exposition

__all__ = ["HealthServer", "serving_health"]

TEXT = "text/plain; charset=utf-8"


@contextlib.contextmanager
def serving_health(
    judge: Callable[[], Health], say: Callable[[str], None], host: str, port: int | None
) -> Iterator[None]:
    """With ``--health-port``: ``/healthz`` and ``/metrics`` while the loop runs. Called before
    the first manager is built, so that its instruments report to the Prometheus reader."""
    if port is None:
        yield
        return
    exposition = prometheus_exposition()
    try:
        server = HealthServer(judge, exposition, host, port)
    except (OSError, OverflowError) as error:
        why = getattr(error, "strerror", None) or error
        raise CommandError(
            f"cannot serve --health-port on {host}:{port} ({why})",
            "pick a free port (0 to 65535), or an address of this machine for --health-host",
            EXIT_USAGE,
        ) from None
    server.start()
    say(f"keep-fresh: serving /healthz and /metrics on {server.url}")
    if exposition.unavailable:
        say(f"keep-fresh: note: {exposition.unavailable}")
    try:
        yield
    finally:
        server.close()


class HealthServer:
    """Serves ``/healthz`` from ``judge()`` and ``/metrics`` from ``exposition``."""

    def __init__(
        self, judge: Callable[[], Health], exposition: Exposition, host: str, port: int
    ) -> None:
        """Bind now (an ``OSError`` if the port is taken); serve from ``start()``."""
        self._server = _Server((host, port), judge, exposition)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="keep-fresh health", daemon=True
        )

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, with the port actually bound (``--health-port 0``: a free one)."""
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], judge: Callable[[], Health], exposition: Exposition
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.judge = judge
        self.exposition = exposition
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "claude-oauth-auth"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            health = self.server.judge()
            body = {"healthy": health.healthy, "reason": health.reason}
            self._answer(health.status, json.dumps(body).encode() + b"\n", "application/json")
        elif path == "/metrics":
            exposition = self.server.exposition
            if exposition.render is None:
                self._answer(501, exposition.unavailable.encode() + b"\n", TEXT)
            else:
                page, content_type = exposition.render()
                self._answer(200, page, content_type)
        else:
            self._answer(404, b"not found: try /healthz or /metrics\n", TEXT)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the probes are not worth a line each."""
