"""The token store ``save``, ``logout`` and ``keep-fresh`` act on, kept away from Claude Code's
own file, and how a login is deleted from it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ClaudeAuthError
from ..stores._file import path_of
from ._command_base import CommandError

if TYPE_CHECKING:
    from ..stores._base import TokenStore

__all__ = [
    "Target",
    "delete_login",
    "previous_document",
    "refuse_claude_code_store",
    "same_place",
    "target_store",
]


@dataclass(frozen=True)
class Target:
    """A store a command acts on, and what chose it: ``"--store"``, ``"CLAUDE_AUTH_FILE"``,
    ``"CLAUDE_TOKEN_STORE"`` or ``"default"`` (our ``auth.json``)."""

    store: TokenStore
    chosen_by: str

    @property
    def where(self) -> str:
        """The store's location, and the variable that named it (``… (CLAUDE_TOKEN_STORE)``)."""
        named = self.chosen_by.startswith("CLAUDE_")
        return f"{self.store.location} ({self.chosen_by})" if named else self.store.location


def target_store(url: str | None) -> Target:
    """``--store URL`` when given: an explicit choice wins over the environment. Else the first
    of our own places a client reads, in the cascade's order, so that what ``save`` writes is
    the login clients use and what ``logout`` deletes is the one they would have used:
    ``$CLAUDE_AUTH_FILE``, then ``$CLAUDE_TOKEN_STORE``, then the default ``auth.json``."""
    from .._config import ENV, default_auth_file, env_value, expand_path
    from ..stores._file import FileStore
    from ..stores._url import store_from_url

    if url is not None:
        return Target(store_from_url(url), "--store")
    named_file = env_value(ENV.AUTH_FILE)
    if named_file is not None:
        return Target(FileStore(expand_path(named_file)), ENV.AUTH_FILE)
    named_store = env_value(ENV.TOKEN_STORE)
    if named_store is not None:
        return Target(store_from_url(named_store), ENV.TOKEN_STORE)
    return Target(FileStore(default_auth_file()), "default")


def same_place(first: TokenStore, second: TokenStore) -> bool:
    """Whether two stores hold the same login (one file by two paths counts as one, and one
    Redis key by two names of its host, ``localhost`` and ``127.0.0.1``)."""
    first_path, second_path = path_of(first), path_of(second)
    if first_path is not None and second_path is not None:
        return first_path.resolve() == second_path.resolve()
    if first.location == second.location:
        return True
    one, other = _network_place(first.location), _network_place(second.location)
    return one is not None and other is not None and one[0] == other[0] and bool(one[1] & other[1])


def _network_place(location: str) -> tuple[tuple[str, int | None, str], frozenset[str]] | None:
    """``(scheme, port, the rest), addresses of the host`` of a network store's location."""
    import socket
    from urllib.parse import urlsplit

    address, _, rest = location.partition(" ")
    parts = urlsplit(address)
    if not parts.hostname or parts.scheme not in ("redis", "rediss"):
        return None
    try:
        port = parts.port or 6379
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return None
    addresses = frozenset(str(entry[4][0]) for entry in found)
    return (parts.scheme, port, f"{parts.path} {rest}"), addresses


def delete_login(store: TokenStore) -> None:
    """Call under the store's lock: delete the login and, beside a token file, the refresh
    state and the lock file that only served it (nothing of the login is left behind)."""
    from ..lifecycle._backoff import state_path
    from ..stores._files import lock_path

    path = path_of(store)
    companions = () if path is None else (state_path(path), lock_path(path))
    store.delete()
    for companion in companions:
        # The lock is still ours while its file is unlinked; a process waiting for it opens the
        # path again and takes a new one. Windows cannot unlink an open lock file: it stays.
        with contextlib.suppress(OSError):
            os.unlink(companion)


def refuse_claude_code_store(
    path: Path, action: str, document: dict[str, Any] | None = None
) -> None:
    """Stop before writing or deleting Claude Code's own credentials."""
    from .._config import claude_code_file

    theirs = claude_code_file()
    same = path.resolve() == theirs.resolve()
    if not same and path.exists() and theirs.exists():
        with contextlib.suppress(OSError):
            same = os.path.samefile(path, theirs)
    if same or (document is not None and "claudeAiOauth" in document):
        raise CommandError(
            f"{path} is Claude Code's credentials file, and claude-oauth-auth will not {action}",
            "name a file of its own (with CLAUDE_AUTH_FILE, CLAUDE_TOKEN_STORE or --store), or "
            "use `claude` to log in or out",
        )


def previous_document(path: Path) -> dict[str, Any] | None:
    """The current file, if it is a readable, trustworthy JSON object."""
    from ..stores._files import read_json_file

    try:
        document = read_json_file(path)
    except (OSError, ClaudeAuthError):
        return None
    return document if isinstance(document, dict) else None
