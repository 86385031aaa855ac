"""``claude-oauth-auth token``: the credential a client would use (refreshed if due), as the
bare token, as JSON, or as the exact header lines the SDK sends (``--header``)."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import _clock
from .._errors import ClaudeAuthError
from ._command_base import EXIT_USAGE, CommandError, Console, Result, is_sdk_error

if TYPE_CHECKING:
    from ..cascade._cascade import UnifiedAuthManager
    from ..cascade._sources import Credential

__all__ = ["run_token"]

SLOW_NOTICE_SECONDS = 0.3


def run_token(arguments: argparse.Namespace, console: Console) -> Result:
    if arguments.json and arguments.header:
        raise CommandError("--json and --header cannot be combined", None, EXIT_USAGE)
    if console.is_terminal("stdout") and not arguments.show:
        raise CommandError(
            "refusing to print a token to a terminal, where it would stay in the scrollback",
            "pipe or capture the output (`$(claude-oauth-auth token)`), or pass --show",
            EXIT_USAGE,
        )
    from ..cascade._cascade import UnifiedAuthManager

    with _slow_notice(console, "Refreshing the OAuth token…"):
        auth = UnifiedAuthManager()
        token = _current_token(auth)
    credential = auth.active_credential
    if arguments.header:
        return Result(
            "\n".join(f"{name}: {value}" for name, value in headers_for(credential, token))
        )
    manager = auth.token_manager if credential.kind == "oauth" else None
    expires_at = manager.token_expiry if manager is not None else None
    document = {
        "token": token,
        "auth_method": credential.auth_method,
        "kind": credential.kind,
        "source": credential.source,
        "expires_at": None if expires_at is None else int(expires_at),
        "expires_in": None if expires_at is None else max(0, int(expires_at - _clock.now())),
    }
    return Result(token, document)


def headers_for(credential: Credential, token: str) -> list[tuple[str, str]]:
    """The authentication headers the SDK client sends for this credential, in its spelling.

    OAuth: a bearer token and the OAuth beta flag (what the client's auth flow adds to each
    request); an API key or a static bearer token: the ``auth_headers`` of a client built with
    ``api_key=`` or ``auth_token=``, so the spelling is always the installed SDK's.
    """
    if credential.kind == "oauth":
        from .._flow import OAUTH_BETA

        return [("Authorization", f"Bearer {token}"), ("anthropic-beta", OAUTH_BETA)]
    from .._client import ClaudeClient

    local = "http://127.0.0.1"  # no request is made
    if credential.kind == "api_key":
        client = ClaudeClient(api_key=token, base_url=local)
    else:
        client = ClaudeClient(auth_token=token, base_url=local)
    return list(client.auth_headers.items())


def _current_token(auth: UnifiedAuthManager) -> str:
    """The secret the active credential sends; an OAuth token is refreshed when due."""
    credential = auth.active_credential
    if credential.kind != "oauth":
        assert credential.secret is not None
        return credential.secret
    source = auth.active_token_source
    try:
        token: str = (
            source.get_valid_token() if hasattr(source, "get_valid_token") else source().token
        )
    except ClaudeAuthError as error:
        if not is_sdk_error(error, "OAuthRefreshError"):
            raise
        key = auth.switch_to_fallback(str(error))
        if key is None:
            raise
        return key
    return token


@contextlib.contextmanager
def _slow_notice(console: Console, message: str) -> Iterator[None]:
    """On a terminal, say what is happening when a step takes longer than a moment."""
    if not console.is_terminal("stderr"):
        yield
        return
    timer = threading.Timer(SLOW_NOTICE_SECONDS, lambda: console.notice(message))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
