"""``claude-oauth-auth logout``: delete our token file or a store's tokens (never Claude Code's)."""

from __future__ import annotations

import argparse
import sys

from ._command_base import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from ._command_stores import previous_document, refuse_claude_code_store, target_store
from .stores._file import path_of

__all__ = ["run_logout"]


def run_logout(arguments: argparse.Namespace) -> int:
    store = target_store(arguments.store)
    path = path_of(store)
    if path is not None:
        refuse_claude_code_store(path, "delete it")
        if not path.exists() and not path.is_symlink():
            print(f"No token file at {path}; nothing to delete.")
            return EXIT_OK
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a token file", "remove it by hand")
        refuse_claude_code_store(path, "delete it", previous_document(path))
    elif store.version() is None:
        print(f"No tokens in {store.location}; nothing to delete.")
        return EXIT_OK
    if not arguments.yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"not deleting {store.location} without confirmation",
                "pass --yes to delete it without a prompt",
                EXIT_USAGE,
            )
        print(f"Delete {store.location}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("Not deleted.", file=sys.stderr)
            return EXIT_FAILED
    with store.lock():
        store.delete()
    print(
        f"Deleted {store.location}. Claude Code's own login was not touched; run "
        "`claude-oauth-auth status` to see which credentials remain."
    )
    return EXIT_OK
