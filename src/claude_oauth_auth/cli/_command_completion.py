"""``claude-oauth-auth completion SHELL``: a completion script for bash, zsh or fish.

The script is generated from the command line's own parser by shtab, so it never falls behind
the commands and their options. shtab is imported here only: importing the package and
running any other command stay as light as they were.
"""

from __future__ import annotations

import argparse

from ._command_base import Console, Result

__all__ = ["SHELLS", "add_completion_arguments", "run_completion"]

SHELLS = ("bash", "zsh", "fish")


def add_completion_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("shell", choices=SHELLS, help="the shell to print the script for")


def run_completion(arguments: argparse.Namespace, console: Console) -> Result:
    import shtab

    parser: argparse.ArgumentParser = arguments.parser  # the whole command line's (cli)
    return Result(shtab.complete(parser, shell=arguments.shell).rstrip("\n"))
