"""Install hints that work from where this copy came from (there is no release on PyPI yet)."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote, urlsplit

__all__ = ["install_hint"]

DISTRIBUTION = "claude-oauth-auth"


def install_hint(extra: str) -> str:
    """The command that adds ``extra``: its packages as pinned in our metadata, and our own
    install line with the extra, from the clone or git URL this copy was installed from."""
    from importlib import metadata

    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return f"install the [{extra}] extra of {DISTRIBUTION} from its repository"
    marker = re.compile(r";\s*extra\s*==\s*[\"']" + re.escape(extra) + r"[\"']\s*$")
    packages = [
        requirement.split(";")[0].strip()
        for requirement in distribution.requires or ()
        if marker.search(requirement)
    ]
    hint = "pip install " + " ".join(f"'{package}'" for package in packages)
    origin = _reinstall_with(distribution.read_text("direct_url.json"), extra)
    if not packages:
        return origin or f"install the [{extra}] extra of {DISTRIBUTION} from its repository"
    return f"{hint}, or {origin}" if origin else hint


def _reinstall_with(direct_url: str | None, extra: str) -> str | None:
    """Our install line with ``extra`` added, from PEP 610's ``direct_url.json``."""
    try:
        origin = json.loads(direct_url or "")
    except ValueError:
        return None
    url = origin.get("url") if isinstance(origin, dict) else None
    if not isinstance(url, str):
        return None
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        return f"pip install '{DISTRIBUTION}[{extra}] @ {vcs['vcs']}+{url}'"
    parts = urlsplit(url)
    directory = origin.get("dir_info")
    if parts.scheme == "file" and isinstance(directory, dict):
        editable = "-e " if directory.get("editable") else ""
        return f"pip install {editable}'{unquote(parts.path)}[{extra}]'"
    return None
