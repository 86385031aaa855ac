"""``keep-fresh --to-profile NAME``: the access token it keeps fresh, published as an SDK profile.

Plain ``anthropic.Anthropic(profile=NAME)`` processes (any SDK that reads profiles) then use
the sidecar's login and never refresh it: for a ``user_oauth`` profile without a
``client_id`` the SDK re-reads ``credentials/NAME.json`` instead of refreshing (a file "rotated
by someone else"). That file gets the access token and its expiry, never a refresh token;
``configs/NAME.json`` is created once, when missing. A profile that is someone's own login (a
``client_id``, a refresh token) is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config import ENV, env_value, validate_token_url
from .._errors import StoreError
from ..cascade._profiles import (
    DEFAULT_BASE_URL,
    TOKEN_ENDPOINT,
    USER_OAUTH,
    check_profile_name,
    load_profile,
    sdk_config_dir,
)
from ..stores._files import write_json_atomic
from ..stores._sdk_profile import CREDENTIALS_TYPE, SdkProfileStore
from ._command_base import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from .._tokens import TokenSet

__all__ = ["SDK_MANDATORY_SECONDS", "SDK_REFRESH_LEAD_SECONDS", "PublishedProfile"]

SDK_REFRESH_LEAD_SECONDS = 120.0
"""The SDK's ``TokenCache`` serves a cached profile token until it is this close to expiry,
then re-reads the credentials file before every request until it finds a later token
(``ADVISORY_REFRESH_SECONDS`` in ``anthropic.lib.credentials._constants``, SDK 2.14-2.17). So
``--ahead`` less ``--jitter`` must be above it for the SDK to read the file once per token."""

SDK_MANDATORY_SECONDS = 30.0
"""Within this of expiry (``MANDATORY_REFRESH_SECONDS``) each request also waits for that read."""

FORMAT_VERSION = "1.0"
OPTION = "--to-profile"


class PublishedProfile:
    """One SDK profile that ``keep-fresh`` writes its current access token to."""

    def __init__(self, name: str, *, base_url: str | None = None) -> None:
        """``base_url`` goes into a config file created here: else ``ANTHROPIC_BASE_URL``,
        else the API's own host."""
        self.name = name
        folder = sdk_config_dir()
        self.config_path = folder / "configs" / f"{name}.json"
        self.credentials_path = folder / "credentials" / f"{name}.json"
        self.base_url = (base_url or env_value(ENV.BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        self._create_config = False
        self._published: tuple[str, int] | None = None  # (digest of the token, expires_at)

    def __repr__(self) -> str:
        return f"PublishedProfile({self.name!r}, config={str(self.config_path)!r})"

    def describe(self) -> str:
        return f"SDK profile {self.name!r} ({self.credentials_path})"

    def prepare(self) -> None:
        """Check, before any token is spent, that the profile may be written: CommandError
        when its name is not a plain file name or it is someone's own login."""
        try:
            check_profile_name(self.name, OPTION)
        except StoreError as error:
            raise CommandError(f"{OPTION}: {error.reason}", error.fix, EXIT_USAGE) from None
        if self.config_path.exists() or self.config_path.is_symlink():
            self._check_config()
        else:
            try:
                validate_token_url(self.base_url + TOKEN_ENDPOINT)
            except ValueError:
                raise CommandError(
                    f"{OPTION} would write base_url {self.base_url!r} ({ENV.BASE_URL}), which "
                    "the SDK refuses: it must use https:// (http:// only for loopback)",
                    f"set {ENV.BASE_URL} to the https:// address of the API",
                    EXIT_USAGE,
                ) from None
            self._create_config = True
        try:
            self._current()
        except StoreError as error:
            raise CommandError(f"{OPTION}: {error.location} {error.reason}", error.fix) from None

    def publish(self, access_token: str, expires_at: float | None) -> bool:
        """Write the token and its expiry when they changed; True when written. A token
        without an expiry is not written (the SDK would keep it forever). StoreError (or
        OSError) when the file cannot be written or has become someone's own login."""
        if expires_at is None or not access_token:
            return False
        published = (hashlib.sha256(access_token.encode()).hexdigest(), int(expires_at))
        if published == self._published:
            return False
        self._current()  # someone's own login since: never overwritten
        document = {
            "version": FORMAT_VERSION,
            "type": CREDENTIALS_TYPE,
            "access_token": access_token,
            "expires_at": published[1],  # whole seconds, rounded down, as the SDK reads them
        }
        _make_private_folder(self.credentials_path.parent)
        write_json_atomic(self.credentials_path, document)
        if self._create_config and not self.config_path.exists():
            config: dict[str, Any] = {
                "version": FORMAT_VERSION,
                "base_url": self.base_url,
                "authentication": {"type": USER_OAUTH},  # no client_id: never refreshed by it
            }
            _make_private_folder(self.config_path.parent)
            write_json_atomic(self.config_path, config)
        self._published = published
        return True

    def _check_config(self) -> None:
        try:
            profile = load_profile(self.name, OPTION)
        except StoreError as error:
            raise CommandError(f"{OPTION}: {error}", error.fix) from None
        where = str(self.config_path)
        if profile.auth_type != USER_OAUTH:
            raise CommandError(
                f"{OPTION}: {where} is an {profile.auth_type} profile, not one keep-fresh may "
                "write to",
                f"choose another profile name, or delete {where} if it is not used",
            )
        if profile.client_id is not None:
            raise CommandError(
                f"{OPTION}: {where} has a client_id: it is a login of its own (`ant auth "
                "login`), which keep-fresh will not overwrite",
                "choose another profile name (keep-fresh creates it)",
            )
        if profile.credentials_path is not None:
            self.credentials_path = profile.credentials_path

    def _current(self) -> TokenSet | None:
        """What the credentials file holds (None when absent). StoreError when it cannot be
        read, or holds a refresh token (someone's own login, never overwritten)."""
        held = SdkProfileStore(self.credentials_path, profile=self.name).load()
        if held is not None and held.refresh_token is not None:
            raise StoreError(
                str(self.credentials_path),
                "holds a refresh token: it is a login of its own, which keep-fresh will not "
                "overwrite",
                "choose another profile name (keep-fresh creates it)",
            )
        return held


def _make_private_folder(folder: Path) -> None:
    """The config folder and its ``configs``/``credentials`` folders, 0700 when created here."""
    for missing in reversed([folder, *folder.parents]):
        if not missing.exists():
            with contextlib.suppress(FileExistsError):
                os.mkdir(missing, 0o700)
