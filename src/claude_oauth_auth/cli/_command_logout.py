"""``claude-oauth-auth logout``: delete our token file or a store's tokens (never Claude Code's)."""

from __future__ import annotations

import argparse

from ..stores._file import path_of
from ._command_base import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, Console, Result
from ._command_stores import (
    Target,
    delete_login,
    previous_document,
    refuse_claude_code_store,
    target_store,
)

__all__ = ["run_logout"]


def run_logout(arguments: argparse.Namespace, console: Console) -> Result:
    target = target_store(arguments.store)
    store = target.store
    path = path_of(store)
    if path is not None:
        refuse_claude_code_store(path, "delete it")
        if not path.exists() and not path.is_symlink():
            return _outcome(target, f"No token file at {target.where}; nothing to delete.")
        if path.is_dir():
            raise CommandError(f"{path} is a directory, not a token file", "remove it by hand")
        refuse_claude_code_store(path, "delete it", previous_document(path))
    elif store.version() is None:
        return _outcome(target, f"No tokens in {target.where}; nothing to delete.")
    if not arguments.yes:
        if not console.is_terminal("stdin"):
            raise CommandError(
                f"not deleting {target.where} without confirmation",
                "pass --yes to delete it without a prompt",
                EXIT_USAGE,
            )
        answer = console.ask(f"Delete {target.where}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return _outcome(target, "", code=EXIT_FAILED, notes=("Not deleted.",))
    with store.lock():
        delete_login(store)
    text = (
        f"Deleted {target.where}. Claude Code's own login was not touched; run "
        "`claude-oauth-auth status` to see which credentials remain."
    )
    return _outcome(target, text, deleted=True)


def _outcome(
    target: Target,
    text: str,
    *,
    deleted: bool = False,
    code: int = EXIT_OK,
    notes: tuple[str, ...] = (),
) -> Result:
    document = {
        "deleted": deleted,
        "location": target.store.location,
        "chosen_by": target.chosen_by,
    }
    return Result(text, document, code, notes)
