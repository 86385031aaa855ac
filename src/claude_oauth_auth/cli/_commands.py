"""What each ``claude-oauth-auth`` command does; ``cli`` parses and presents the results.

Each command lives in its own ``_command_<name>`` module as ``run_<name>(arguments, console)
-> Result`` and prints nothing; what they share is in ``_command_base`` and ``_command_stores``.
Adding a command is one line here and one ``_Command`` entry in ``cli``. Secrets go to
standard output only from ``token``; every other line shows at most the last 4 characters.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._command_base import Command
from ._command_completion import add_completion_arguments, run_completion
from ._command_keep_fresh import add_keep_fresh_arguments, run_keep_fresh
from ._command_logout import run_logout
from ._command_move import add_move_arguments, run_move
from ._command_refresh import run_refresh
from ._command_save import run_save
from ._command_status import run_status
from ._command_token import run_token

__all__ = ["COMMANDS", "COMMAND_ARGUMENTS"]

COMMANDS: dict[str, Command] = {
    "status": run_status,
    "token": run_token,
    "refresh": run_refresh,
    "save": run_save,
    "logout": run_logout,
    "move": run_move,
    "keep-fresh": run_keep_fresh,
    "completion": run_completion,
}

COMMAND_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "move": add_move_arguments,
    "keep-fresh": add_keep_fresh_arguments,
    "completion": add_completion_arguments,
}
"""Commands with options of their own: each adds them to its subparser."""
