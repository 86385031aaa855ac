"""The token store ``save`` and ``logout`` act on, kept away from Claude Code's own file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._command_base import CommandError
from ._errors import ClaudeAuthError

if TYPE_CHECKING:
    from .stores._base import TokenStore

__all__ = ["previous_document", "refuse_claude_code_store", "target_store"]


def target_store(url: str | None) -> TokenStore:
    """``--store URL``, else our token file (``$CLAUDE_AUTH_FILE`` or ``auth.json``)."""
    if url is not None:
        from .stores._url import store_from_url

        return store_from_url(url)
    from .stores._file import FileStore

    return FileStore(_our_token_file())


def _our_token_file() -> Path:
    """Our token file: ``$CLAUDE_AUTH_FILE``, else the default ``auth.json``."""
    from ._config import ENV, default_auth_file, env_value, expand_path

    named = env_value(ENV.AUTH_FILE)
    return expand_path(named) if named else default_auth_file()


def refuse_claude_code_store(
    path: Path, action: str, document: dict[str, Any] | None = None
) -> None:
    """Stop before writing or deleting Claude Code's own credentials."""
    from ._config import claude_code_file

    theirs = claude_code_file()
    same = path.resolve() == theirs.resolve()
    if not same and path.exists() and theirs.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(path, theirs)
    if same or (document is not None and "claudeAiOauth" in document):
        raise CommandError(
            f"{path} is Claude Code's credentials file, and claude-oauth-auth will not {action}",
            "point CLAUDE_AUTH_FILE at a file of its own, or use `claude` to log in or out",
        )


def previous_document(path: Path) -> dict[str, Any] | None:
    """The current file, if it is a readable, trustworthy JSON object."""
    from .stores._files import read_json_file

    try:
        document = read_json_file(path)
    except (OSError, ClaudeAuthError):
        return None
    return document if isinstance(document, dict) else None
