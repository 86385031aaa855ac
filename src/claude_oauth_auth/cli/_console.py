"""The real terminal, as commands see it: notices and prompts on standard error, answers and
pasted input from standard input (not echoed)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = ["TerminalConsole"]


class TerminalConsole:
    """The real terminal: notices and prompts on standard error, answers from standard input."""

    def notice(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def log_line(self, line: str) -> None:
        print(line, flush=True)

    def is_terminal(self, stream: str) -> bool:
        try:
            return bool(getattr(sys, stream).isatty())
        except (AttributeError, ValueError):
            return False

    def ask(self, question: str) -> str:
        print(question, end="", file=sys.stderr, flush=True)
        return sys.stdin.readline()

    def read_input(self, prompt: str, limit: int) -> bytes:
        with _terminal_echo_off(prompt):
            return sys.stdin.buffer.read(limit)


@contextlib.contextmanager
def _terminal_echo_off(prompt: str) -> Iterator[None]:
    """On a terminal: stop echoing, then prompt, so pasted tokens stay out of the scrollback."""
    try:
        import termios
    except ImportError:  # not POSIX
        yield
        return
    try:
        descriptor = sys.stdin.fileno()
        saved = termios.tcgetattr(descriptor)
    except (termios.error, OSError, ValueError, AttributeError):
        yield  # not a terminal
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(descriptor, termios.TCSADRAIN, quiet)
    print(prompt, file=sys.stderr, flush=True)
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)
        print(file=sys.stderr)
