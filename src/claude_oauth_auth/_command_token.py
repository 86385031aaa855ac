"""``claude-oauth-auth token``: print the credential a client would use (refreshed if due)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._command_base import EXIT_OK, EXIT_USAGE, CommandError, is_sdk_error, stderr_is_terminal
from ._errors import ClaudeAuthError

if TYPE_CHECKING:
    from ._cascade import UnifiedAuthManager

__all__ = ["run_token"]

SLOW_NOTICE_SECONDS = 0.3


def run_token(arguments: argparse.Namespace) -> int:
    if sys.stdout.isatty() and not arguments.show:
        raise CommandError(
            "refusing to print a token to a terminal, where it would stay in the scrollback",
            "pipe or capture the output (`$(claude-oauth-auth token)`), or pass --show",
            EXIT_USAGE,
        )
    from ._cascade import UnifiedAuthManager

    with _slow_notice("Refreshing the OAuth token…"):
        auth = UnifiedAuthManager()
        token = _current_token(auth)
    credential = auth.active_credential
    if not arguments.json:
        print(token)
        return EXIT_OK
    manager = auth.token_manager if credential.kind == "oauth" else None
    expires_at = manager.token_expiry if manager is not None else None
    document = {
        "token": token,
        "auth_method": credential.auth_method,
        "kind": credential.kind,
        "source": credential.source,
        "expires_at": None if expires_at is None else int(expires_at),
        "expires_in": None if expires_at is None else max(0, int(expires_at - time.time())),
    }
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _current_token(auth: UnifiedAuthManager) -> str:
    """The secret the active credential sends; an OAuth token is refreshed when due."""
    credential = auth.active_credential
    if credential.kind != "oauth":
        assert credential.secret is not None
        return credential.secret
    source = auth.active_token_source
    try:
        token: str = source.token() if hasattr(source, "token") else source().token
    except ClaudeAuthError as error:
        if not is_sdk_error(error, "OAuthRefreshError"):
            raise
        key = auth.switch_to_fallback(str(error))
        if key is None:
            raise
        return key
    return token


@contextlib.contextmanager
def _slow_notice(message: str) -> Iterator[None]:
    """On a terminal, say what is happening when a step takes longer than a moment."""
    if not stderr_is_terminal():
        yield
        return
    timer = threading.Timer(SLOW_NOTICE_SECONDS, lambda: print(message, file=sys.stderr))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
