"""``claude-oauth-auth logout``: delete our token file or a store's tokens (never Claude Code's)."""

from __future__ import annotations

import argparse

from ._command_base import EXIT_FAILED, EXIT_USAGE, CommandError, Console, Result
from ._command_stores import previous_document, refuse_claude_code_store, target_store
from .stores._file import path_of

__all__ = ["run_logout"]


def run_logout(arguments: argparse.Namespace, console: Console) -> Result:
    store = target_store(arguments.store)
    path = path_of(store)
    if path is not None:
        refuse_claude_code_store(path, "delete it")
        if not path.exists() and not path.is_symlink():
            return Result(f"No token file at {path}; nothing to delete.")
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a token file", "remove it by hand")
        refuse_claude_code_store(path, "delete it", previous_document(path))
    elif store.version() is None:
        return Result(f"No tokens in {store.location}; nothing to delete.")
    if not arguments.yes:
        if not console.is_terminal("stdin"):
            raise CommandError(
                f"not deleting {store.location} without confirmation",
                "pass --yes to delete it without a prompt",
                EXIT_USAGE,
            )
        answer = console.ask(f"Delete {store.location}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return Result(code=EXIT_FAILED, notes=("Not deleted.",))
    with store.lock():
        store.delete()
    return Result(
        f"Deleted {store.location}. Claude Code's own login was not touched; run "
        "`claude-oauth-auth status` to see which credentials remain."
    )
