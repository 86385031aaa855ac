"""mitmproxy addon for ``claude_code_race.py``: send every request to the loopback fake API.

Claude Code is pointed at mitmproxy with ``HTTPS_PROXY`` and trusts its CA through
``NODE_EXTRA_CA_CERTS``. Whatever host it asks for (``api.anthropic.com`` for the Messages API
and the profile, ``platform.claude.com`` for ``/v1/oauth/token``), the request goes to the fake
over plain HTTP on 127.0.0.1 (``FAKE_UPSTREAM=127.0.0.1:PORT``), so nothing leaves the machine.
Each request is logged as one JSON line to ``PROXY_LOG`` when that is set (no secrets: the
time, the method, the URL asked for and the User-Agent only).
"""

from __future__ import annotations

import json
import os
import time

from mitmproxy import http

_HOST, _, _PORT = os.environ["FAKE_UPSTREAM"].rpartition(":")
_LOG = os.environ.get("PROXY_LOG")


def request(flow: http.HTTPFlow) -> None:
    asked = f"{flow.request.scheme}://{flow.request.pretty_host}{flow.request.path}"
    if _LOG:
        line = {
            "time": time.time(),
            "method": flow.request.method,
            "url": asked.split("?", 1)[0],
            "user_agent": flow.request.headers.get("user-agent", ""),
        }
        with open(_LOG, "a") as log:
            log.write(json.dumps(line) + "\n")
    flow.request.scheme = "http"
    flow.request.host = _HOST
    flow.request.port = int(_PORT)
