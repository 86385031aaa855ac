"""What a source of the cascade yields: a report, maybe a credential, and its SDK profile.

Plain values shared by the cascade's steps (``_sources``, ``_profiles``), the failover and the
clients; this module imports only ground modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._config import validate_token_url
from .._tokens import TokenSet, mask
from ..stores._base import TokenStore

__all__ = [
    "DEFAULT_BASE_URL",
    "OIDC_FEDERATION",
    "TOKEN_ENDPOINT",
    "USER_OAUTH",
    "Credential",
    "Kind",
    "SdkProfile",
    "SourceReport",
    "SourceReports",
    "State",
]

USER_OAUTH = "user_oauth"
OIDC_FEDERATION = "oidc_federation"
DEFAULT_BASE_URL = "https://api.anthropic.com"
TOKEN_ENDPOINT = "/v1/oauth/token"

State = Literal["used", "available", "absent", "invalid", "not_checked"]
Kind = Literal["oauth", "api_key", "auth_token"]


@dataclass
class SourceReport:
    """What one source of the cascade held: its state, why, and where."""

    name: str
    state: State = "not_checked"
    detail: str = ""
    path: str | None = None
    configuration_error: bool = False  # invalid because of a setting, not the stored tokens
    fix: str | None = None  # what the store's own error says to run, when it says
    refused: str | None = None  # the endpoint's verdict on the stored refresh token, if any
    final: bool = False  # as in the SDK, the cascade stops here: no later source is tried

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "detail": self.detail, "path": self.path}


class SourceReports:
    """The cascade's reports by source name, in cascade order; shared with its failover."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_name = {name: SourceReport(name) for name in names}

    def __iter__(self) -> Iterator[SourceReport]:
        return iter(list(self._by_name.values()))

    def for_source(self, name: str) -> SourceReport:
        """The report of ``name``; one outside the cascade's list is created, first."""
        if name not in self._by_name:
            self._by_name = {name: SourceReport(name), **self._by_name}
        return self._by_name[name]

    def record(self, name: str, report: SourceReport) -> None:
        """What checking ``name`` found, in place of what was known before."""
        self._by_name[name] = report

    def record_if_unchecked(self, name: str, report: SourceReport) -> None:
        """What checking ``name`` found, unless the cascade already checked it."""
        if self._by_name.get(name, report).state == "not_checked":
            self._by_name[name] = report


@dataclass(repr=False, frozen=True)
class Credential:
    """A credential found by a source. ``repr`` masks every secret."""

    kind: Kind
    source: str
    secret: str | None = None
    tokens: TokenSet | None = None
    path: Path | None = None
    provider: Callable[..., Any] | None = None
    store: TokenStore | None = None
    profile: SdkProfile | None = None  # an SDK profile (``anthropic_profile*`` steps)

    @property
    def auth_method(self) -> str:
        return "oauth" if self.kind == "oauth" else "api_key"

    def __repr__(self) -> str:
        parts = [f"kind={self.kind!r}", f"source={self.source!r}"]
        if self.secret is not None:
            parts.append(f"secret={mask(self.secret)!r}")
        if self.tokens is not None:
            parts.append(f"tokens={self.tokens!r}")
        if self.path is not None:
            parts.append(f"path={str(self.path)!r}")
        return f"Credential({', '.join(parts)})"


@dataclass(frozen=True)
class SdkProfile:
    """One SDK profile as the SDK would use it (``config_path`` None for ``config=``)."""

    name: str
    selected_by: str
    auth_type: str
    config_path: Path | None
    credentials_path: Path | None
    client_id: str | None
    base_url: str | None
    workspace_id: str | None
    config: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """What the SDK adds to every request: the workspace, except for federation tokens."""
        if self.auth_type != OIDC_FEDERATION and self.workspace_id:
            return {"anthropic-workspace-id": self.workspace_id}
        return {}

    def token_url(self, client_base_url: str | None = None) -> str:
        """``{base_url}/v1/oauth/token``: the profile's host, else the client's, else the API."""
        base = self.base_url or (client_base_url or "").rstrip("/") or DEFAULT_BASE_URL
        return validate_token_url(base + TOKEN_ENDPOINT)

    def describe(self) -> str:
        where = f" at {self.config_path}" if self.config_path else ""
        return f"{self.auth_type} profile {self.name!r} ({self.selected_by}){where}"
