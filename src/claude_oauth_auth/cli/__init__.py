"""The ``claude-oauth-auth`` command line (also ``python -m claude_oauth_auth``).

``_main`` parses, renders results, maps errors to exit codes and sets up logging; each
command is a ``_command_<name>`` module (registered in ``_commands``) that returns a result
and prints nothing; ``_help`` holds the help texts and ``_console`` the terminal.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
