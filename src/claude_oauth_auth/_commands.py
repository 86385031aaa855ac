"""What each ``claude-oauth-auth`` command does; ``cli`` parses and presents the results.

Each command lives in its own ``_command_<name>`` module as ``run_<name>(arguments, console)
-> Result`` and prints nothing; what they share is in ``_command_base`` and ``_command_stores``.
Adding a command is one line here and one ``_Command`` entry in ``cli``. Secrets go to
standard output only from ``token``; every other line shows at most the last 4 characters.
"""

from __future__ import annotations

from ._command_base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    LOGIN_FIX,
    Command,
    CommandError,
    Console,
    Result,
    is_sdk_error,
)
from ._command_logout import run_logout
from ._command_refresh import run_refresh
from ._command_save import run_save
from ._command_status import run_status
from ._command_token import run_token

__all__ = [
    "COMMANDS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOGIN_FIX",
    "Command",
    "CommandError",
    "Console",
    "Result",
    "is_sdk_error",
]

COMMANDS: dict[str, Command] = {
    "status": run_status,
    "token": run_token,
    "refresh": run_refresh,
    "save": run_save,
    "logout": run_logout,
}
