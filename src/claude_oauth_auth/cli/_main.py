"""The ``claude-oauth-auth`` command line: parsing, help, exit codes, errors and logging.

Exit codes: 0 ok, 1 no usable credential (or the request was refused), 2 usage error.
The commands themselves live in ``_commands``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from .._errors import ClaudeAuthError, StoreError, TokenFileError, TokenRefreshError
from .._version import __version__
from ._command_base import (
    EXIT_FAILED,
    EXIT_USAGE,
    LOGIN_FIX,
    CommandError,
    Result,
    is_sdk_error,
)
from ._commands import COMMAND_ARGUMENTS, COMMANDS
from ._console import TerminalConsole
from ._help import (
    COMPLETION_EPILOG,
    DESCRIPTION,
    KEEP_FRESH_EPILOG,
    LOGOUT_EPILOG,
    MOVE_EPILOG,
    REFRESH_EPILOG,
    SAVE_EPILOG,
    STATUS_EPILOG,
    STORE_HELP,
    TOKEN_EPILOG,
)

__all__ = ["build_parser", "main"]


# ----- the parser ---------------------------------------------------------------------------


class _Command(NamedTuple):
    name: str
    help: str
    description: str
    epilog: str
    switches: tuple[tuple[tuple[str, ...], str], ...]  # on/off options: (flags, help)
    store: bool = False  # whether it takes --store URL (after the switches)
    # Hold warnings until the command ends, to drop one that repeats the final error; a
    # long-running command sets this False to show them as they happen.
    hold_warnings: bool = True


_COMMANDS = (
    _Command(
        "status",
        "show which credential sources exist and which one is used",
        "Show every credential source, its state, and the one a client would use.",
        STATUS_EPILOG,
        (
            (("--json",), "print the status as JSON"),
            (("--check",), "also make one cheap API call (models list) with the credential"),
        ),
    ),
    _Command(
        "token",
        "print a valid access token (for shell scripts)",
        "Print the token a client would use, refreshing it first if needed.",
        TOKEN_EPILOG,
        (
            (("--json",), "add expiry, method and source"),
            (("--header",), "print the HTTP header line(s) to send instead of the bare token"),
            (("--show",), "allow printing to a terminal"),
        ),
    ),
    _Command(
        "refresh",
        "refresh the OAuth token now and print its new expiry",
        "Force a refresh of the OAuth credential in use.",
        REFRESH_EPILOG,
        ((("--json",), "print the result as JSON"),),
    ),
    _Command(
        "save",
        "write OAuth tokens from JSON on standard input where clients look first, or to a store",
        "Store OAuth tokens without putting them in your shell history.",
        SAVE_EPILOG,
        ((("--json",), "print the result as JSON (never a secret)"),),
        store=True,
    ),
    _Command(
        "logout",
        "delete claude-oauth-auth's login where clients look first, or a store's (not Claude "
        "Code's)",
        "Delete claude-oauth-auth's own login: its token file or store.",
        LOGOUT_EPILOG,
        (
            (("-y", "--yes"), "do not ask for confirmation"),
            (("--json",), "print the result as JSON"),
        ),
        store=True,
    ),
    _Command(
        "move",
        "move a login into a store, removing it from where it was (never Claude Code's)",
        "Copy a login to a store, then delete it from its source: one login, one place.",
        MOVE_EPILOG,
        ((("--json",), "print the result as JSON"),),
    ),
    _Command(
        "keep-fresh",
        "keep a shared login fresh, ahead of the workers (a sidecar; stops on SIGTERM)",
        "Refresh a store's login before any worker needs to, until stopped.",
        KEEP_FRESH_EPILOG,
        ((("--json",), "log one JSON object per line"),),
        store=True,
        hold_warnings=False,
    ),
    _Command(
        "completion",
        "print a shell completion script (bash, zsh or fish)",
        "Print the completion script for a shell, generated from this command line.",
        COMPLETION_EPILOG,
        (),
    ),
)


GLOBAL_SWITCHES = ("--debug", "--json")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, as ``main`` parses it (and ``completion`` describes it)."""
    parser = argparse.ArgumentParser(
        prog="claude-oauth-auth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--json", action="store_true", help="JSON output (every command but completion)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for spec in _COMMANDS:
        command = commands.add_parser(
            spec.name,
            help=spec.help,
            description=spec.description,
            epilog=spec.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # A global switch given after the command must not reset one given before it.
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        for flags, help_text in spec.switches:
            default = argparse.SUPPRESS if flags[-1] in GLOBAL_SWITCHES else False
            command.add_argument(*flags, action="store_true", default=default, help=help_text)
        if spec.store:
            command.add_argument("--store", metavar="URL", help=STORE_HELP)
        if spec.name in COMMAND_ARGUMENTS:
            COMMAND_ARGUMENTS[spec.name](command)
    parser.set_defaults(parser=parser)  # `completion` describes the whole command line
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if arguments.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    spec = next(spec for spec in _COMMANDS if spec.name == arguments.command)
    if arguments.json and not any("--json" in flags for flags, _help in spec.switches):
        print(
            f"claude-oauth-auth: error: --json does not apply to {arguments.command}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    console = TerminalConsole()
    failure: CommandError | None = None
    with _logging_to_stderr(debug=arguments.debug, hold=spec.hold_warnings) as deferred:
        try:
            result = COMMANDS[arguments.command](arguments, console)
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return _reader_went_away()
        except Exception as error:
            if arguments.debug:
                raise
            failure = error if isinstance(error, CommandError) else _explain(error)
        # Warnings that only repeat the error or the result (one cause, one message) are dropped.
        deferred.flush(skip=(failure.message,) if failure is not None else result.covered)
    if failure is not None:
        print(f"claude-oauth-auth: error: {failure.message}", file=sys.stderr)
        if failure.fix:
            print(f"  To fix: {failure.fix}.", file=sys.stderr)
        return failure.code
    try:
        _render(result, as_json=arguments.json)
    except BrokenPipeError:
        return _reader_went_away()
    return result.code


def _render(result: Result, *, as_json: bool) -> None:
    for note in result.notes:
        print(note, file=sys.stderr)
    if as_json and result.document is not None:
        print(json.dumps(result.document, indent=2))
    elif result.text:
        print(result.text)
    sys.stdout.flush()


def _reader_went_away() -> int:
    """The reader went away (`... | head`): stop quietly, without a second error at exit."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_FAILED


def _explain(error: Exception) -> CommandError:
    """Turn a library error into one sentence and a fix (never a traceback)."""
    if is_sdk_error(error, "NoCredentialsError"):
        from .._status import get_auth_status

        fix = get_auth_status()["fix"]  # names the broken source in the way, if there is one
        return CommandError(
            "no usable Claude credentials were found",
            f"{fix}; `claude-oauth-auth status` shows every source"
            if fix and " is broken;" in fix
            else "run `claude-oauth-auth status` to see what each source holds, then set "
            "ANTHROPIC_API_KEY, create an SDK profile (`ant auth login`), log in with Claude "
            "Code, or run `claude-oauth-auth save`",
        )
    if is_sdk_error(error, "OAuthRefreshError"):
        return CommandError(str(error), LOGIN_FIX)
    if isinstance(error, TokenRefreshError):
        return CommandError(str(error), "check the network connection and try again in a minute")
    if isinstance(error, TokenFileError):
        return CommandError(
            f"{error.path} {error.reason}",
            error.fix or "fix or delete that file, or replace it with `claude-oauth-auth save`",
        )
    if isinstance(error, StoreError):
        return CommandError(
            f"{error.location}: {error.reason}", error.fix or "check that the store is reachable"
        )
    if isinstance(error, ClaudeAuthError):
        return CommandError(str(error), "run `claude-oauth-auth status` for details")
    if isinstance(error, ValueError):
        return CommandError(str(error), "correct that setting and try again")
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return CommandError(
            f"{error.strerror or error}{where}", "check the file's permissions and free space"
        )
    return CommandError(
        f"an unexpected error stopped the command ({error})"
        if str(error)
        else "an unexpected error stopped the command",
        "run again with --debug to see where it happened",
    )


class _StderrHandler(logging.Handler):
    """Log lines on ``sys.stderr``; while ``deferring``, held until ``flush``."""

    def __init__(self, level: int, *, deferring: bool = False) -> None:
        super().__init__(level)
        self.deferring = deferring
        self.held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.deferring:
                self.held.append(line)
            else:
                print(line, file=sys.stderr)
        except Exception:
            self.handleError(record)

    def flush(self, skip: Sequence[str] = ()) -> None:
        """Print what was held, except lines that repeat one of ``skip``; stop deferring."""
        held, self.held, self.deferring = self.held, [], False
        for line in held:
            if not any(_repeats(line, text) for text in skip if text):
                print(line, file=sys.stderr)


def _repeats(line: str, text: str) -> bool:
    """Whether a warning line says ``text``, or its cause (after the last ": ") is in it."""
    cause = line.rsplit(": ", 1)[-1]
    return text in line or (len(cause) >= 20 and cause in text)


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"claude-oauth-auth: {record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def _logging_to_stderr(*, debug: bool, hold: bool = True) -> Iterator[_StderrHandler]:
    """Show our warnings (every debug line with --debug) while a command runs, then undo it.

    Warnings are held until the command ends, so one that only repeats the final error is
    not printed twice. When the caller has configured logging already (``main`` run
    in-process), only --debug adds a handler; nothing is left behind either way.
    """
    root = logging.getLogger()
    if debug:
        handler = _StderrHandler(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        target, level = root, logging.DEBUG
    elif root.handlers or logging.getLogger("claude_oauth_auth").handlers:
        yield _StderrHandler(logging.WARNING)  # not attached: nothing to hold
        return
    else:
        handler = _StderrHandler(logging.WARNING, deferring=hold)
        handler.setFormatter(_CliFormatter())
        target, level = logging.getLogger("claude_oauth_auth"), logging.NOTSET
    saved_level = target.level
    target.addHandler(handler)
    if level != logging.NOTSET:
        target.setLevel(level)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(saved_level)
        handler.flush()
