"""What every command shares: exit codes, ``CommandError`` and small terminal and time helpers."""

from __future__ import annotations

import sys
import time
from datetime import datetime

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOGIN_FIX",
    "CommandError",
    "describe_expiry",
    "is_sdk_error",
    "stderr_is_terminal",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOGIN_FIX = (
    "log in again with Claude Code (run `claude`, then /login) or store new tokens with "
    "`claude-oauth-auth save`"
)


class CommandError(Exception):
    """A failure explained to the user: one sentence, how to fix it, and the exit code."""

    def __init__(self, message: str, fix: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code


def is_sdk_error(error: Exception, name: str) -> bool:
    # The SDK-derived errors live in a module that imports anthropic; if it is not loaded,
    # the error cannot be one of them (and `status` must never import anthropic).
    module = sys.modules.get("claude_oauth_auth._sdk_errors")
    return module is not None and isinstance(error, getattr(module, name))


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def describe_expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "the new token has no recorded expiry"
    minutes = max(0, round((expires_at - time.time()) / 60))
    when = datetime.fromtimestamp(expires_at).astimezone().isoformat(timespec="seconds")
    return f"it expires in {minutes} min, at {when}"
