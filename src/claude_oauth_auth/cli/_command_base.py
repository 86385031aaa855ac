"""What every command shares: exit codes, ``Result``, ``Console``, ``CommandError``, time text.

A command is ``run_<name>(arguments, console) -> Result``: it prints nothing itself. ``cli``
renders the result (text, or JSON with ``--json``) and supplies the console, the only way a
command talks to the person at the terminal while it runs (prompts, "Refreshing…").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .._status import expiry_text

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOGIN_FIX",
    "Command",
    "CommandError",
    "Console",
    "Result",
    "describe_expiry",
    "is_sdk_error",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOGIN_FIX = (
    "log in again with Claude Code (run `claude`, then /login) or store new tokens with "
    "`claude-oauth-auth save`"
)


@dataclass
class Result:
    """What a command did: the exit code, text for people, and the document ``--json`` prints.

    ``text`` is printed as it is on standard output (nothing when empty); ``notes`` go to
    standard error, one per line; a logged warning that repeats one of ``covered`` (a reason
    the result already gives) is not printed.
    """

    text: str = ""
    document: dict[str, Any] | None = None
    code: int = EXIT_OK
    notes: tuple[str, ...] = ()
    covered: tuple[str, ...] = ()


class Console(Protocol):
    """The terminal, as a command may use it while it runs."""

    def notice(self, message: str) -> None:
        """Say something on standard error now (progress, a prompt)."""

    def log_line(self, line: str) -> None:
        """Write one line on standard output now (a long-running command's log)."""

    def is_terminal(self, stream: str) -> bool:
        """Whether ``"stdin"``, ``"stdout"`` or ``"stderr"`` is a terminal."""

    def ask(self, question: str) -> str:
        """Ask on standard error and read one answer line from standard input."""

    def read_input(self, prompt: str, limit: int) -> bytes:
        """Read standard input (up to ``limit`` bytes); on a terminal, prompt and hide it."""


Command = Callable[[argparse.Namespace, Console], Result]
"""A command: its parsed arguments and the console in, a ``Result`` out."""


class CommandError(Exception):
    """A failure explained to the user: one sentence, how to fix it, and the exit code."""

    def __init__(self, message: str, fix: str | None = None, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code


def is_sdk_error(error: Exception, name: str) -> bool:
    """Whether ``error`` is our SDK-derived error class ``name`` (without importing the SDK)."""
    # The SDK-derived errors live in a module that imports anthropic; if it is not loaded,
    # the error cannot be one of them (and `status` must never import anthropic).
    module = sys.modules.get("claude_oauth_auth._sdk_errors")
    return module is not None and isinstance(error, getattr(module, name))


def describe_expiry(expires_at: float | None) -> str:
    """``2026-11-27 20:30:00 CET (in 8 h)``: the same words and units ``status`` uses."""
    return expiry_text(expires_at)
