"""The ``claude-oauth-auth`` command line.

Exit codes: 0 ok, 1 no usable credential (or the request was refused), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Find, check and maintain the credentials claude-oauth-auth uses to call the Claude API.

exit codes:
  0  ok
  1  no usable credential, or the token endpoint refused the request
  2  usage error
"""

STATUS_EPILOG = """\
examples:
  claude-oauth-auth status          a table of every credential source and the summary
  claude-oauth-auth status --json   the same as JSON (never a secret)

Exits 0 when a usable credential exists, 1 when none does.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-oauth-auth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="show which credential sources exist and which one is used",
        description="Show every credential source, its state, and the one a client would use.",
        epilog=STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if arguments.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    if arguments.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(_COMMANDS[arguments.command](arguments))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if arguments.debug:
            raise
        print(f"claude-oauth-auth: {error}", file=sys.stderr)
        return EXIT_FAILED


def _status(arguments: argparse.Namespace) -> int:
    from ._status import get_auth_status

    status = get_auth_status()
    if arguments.json:
        print(json.dumps(status, indent=2))
    else:
        print(_status_table(status))
    return EXIT_OK if status["source"] is not None else EXIT_FAILED


def _status_table(status: dict[str, Any]) -> str:
    rows = [(entry["name"], entry["state"], entry["detail"]) for entry in status["sources"]]
    name_width = max(len("source"), *(len(row[0]) for row in rows))
    state_width = max(len("state"), *(len(row[1]) for row in rows))
    lines = [f"{'source':<{name_width}}  {'state':<{state_width}}  detail"]
    lines.append(f"{'-' * name_width}  {'-' * state_width}  {'-' * 6}")
    for name, state, detail in rows:
        lines.append(f"{name:<{name_width}}  {state:<{state_width}}  {detail}")
    lines.append("")
    lines.append(status["summary"])
    if status["recommendation"]:
        lines.append(status["recommendation"])
    return "\n".join(lines)


_COMMANDS = {"status": _status}
