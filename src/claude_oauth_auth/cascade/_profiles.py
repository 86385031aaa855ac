"""The SDK's own configuration: profiles (``ant auth login``) and workload identity.

Discovery follows ``anthropic.lib.credentials`` (config folder, ``active_config`` pointer,
profile-name checks, ``configs/<name>.json`` with the same refusals and the same environment
fill) without importing the SDK, so ``status`` stays light. Only building a provider imports
it: ``oidc_federation`` profiles and workload identity use the SDK's own providers; a
``user_oauth`` profile refreshes through our manager and its lock.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._config import ENV, validate_token_url
from .._errors import StoreError
from ._credential import (
    DEFAULT_BASE_URL,
    OIDC_FEDERATION,
    TOKEN_ENDPOINT,
    USER_OAUTH,
    Credential,
    SdkProfile,
    SourceReport,
)
from ._store_check import check_store

__all__ = [
    "DEFAULT_BASE_URL",
    "OIDC_FEDERATION",
    "SDK_STEPS",
    "TOKEN_ENDPOINT",
    "USER_OAUTH",
    "SdkProfile",
    "active_config_pointer",
    "check_active_profile",
    "check_loaded_profile",
    "check_profile",
    "check_profile_env",
    "check_profile_name",
    "check_workload_identity",
    "explicit_selection",
    "load_profile",
    "note_shadowed",
    "profile_from_config",
    "profile_of_credentials",
    "sdk_config_dir",
]

DEFAULT_PROFILE = "default"
LOGIN_ADVICE = "run `ant auth login`"


def sdk_config_dir() -> Path:
    """``ANTHROPIC_CONFIG_DIR``, else ``~/.config/anthropic`` (``%APPDATA%\\Anthropic``)."""
    configured = os.environ.get(ENV.SDK_CONFIG_DIR)
    if configured:
        return Path(configured)
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / "Anthropic"
    return Path.home() / ".config" / "anthropic"


def active_config_pointer() -> str | None:
    """The profile named by ``<config>/active_config``, or None when there is none."""
    try:
        name = (sdk_config_dir() / "active_config").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name or None


def check_profile_name(name: str, where: str) -> None:
    """The SDK's rule: a profile name is a plain file name under the config folder."""
    problem = None
    if name != name.strip():
        problem = "has leading or trailing whitespace"
    elif name.startswith("."):
        problem = "must not start with a dot"
    elif any(sep and sep in name for sep in ("/", "\\", os.sep)) or "\x00" in name:
        problem = "must not contain path separators"
    if problem:
        raise StoreError(where, f"profile name {name!r} {problem}", "pick a plain file name")


def load_profile(name: str, selected_by: str) -> SdkProfile:
    """Read ``configs/<name>.json``; StoreError (with what to run) when it cannot be used."""
    check_profile_name(name, selected_by)
    base = sdk_config_dir()
    path = base / "configs" / f"{name}.json"
    where = str(path)
    try:
        with path.open(encoding="utf-8") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if os.name == "posix" and mode & 0o022:
                reason = f"is writable by group or others (mode {mode:#o}), which the SDK refuses"
                raise StoreError(where, reason, f"run chmod go-w {where}")
            raw = handle.read()
    except FileNotFoundError:
        fix = f"run `ant auth login --profile {name}`, or set {ENV.PROFILE} to another profile"
        if selected_by == "active_config":
            fix = f"{LOGIN_ADVICE}, or point {base / 'active_config'} at an existing profile"
        raise StoreError(where, f"does not exist (profile {name!r}, {selected_by})", fix) from None
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(where, f"cannot be read ({error})") from None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StoreError(where, f"is not valid JSON ({error.msg} at line {error.lineno})") from None
    credentials = base / "credentials" / f"{name}.json"
    return _profile(config, name, selected_by, path, credentials, fill_from_env=True)


def profile_of_credentials(path: Path) -> SdkProfile | None:
    """The profile whose ``credentials/<name>.json`` is ``path`` (its ``configs/<name>.json``
    beside the folder), or None when ``path`` is not an SDK profile's credentials file.
    StoreError when that config exists but cannot be used."""
    config_path = path.parent.parent / "configs" / f"{path.stem}.json"
    if path.parent.name != "credentials" or not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise StoreError(str(config_path), f"cannot be read ({error})") from None
    selected_by = "the credentials file named"
    return _profile(config, path.stem, selected_by, config_path, path, fill_from_env=True)


def profile_from_config(config: Mapping[str, Any]) -> SdkProfile:
    """The ``config=`` argument: a profile held in memory (no environment fill, as the SDK)."""
    if not isinstance(config, Mapping):
        raise TypeError("config= takes a mapping shaped like an SDK profile's configs/<name>.json")
    profile = _profile(dict(config), "<in-memory>", "config= argument", None, None, False)
    if profile.auth_type == USER_OAUTH and profile.credentials_path is None:
        raise ValueError(
            f"config= with authentication.type {USER_OAUTH!r} needs "
            "'authentication.credentials_path' (where its tokens live)"
        )
    return profile


def _profile(
    config: Any,
    name: str,
    selected_by: str,
    path: Path | None,
    default_credentials: Path | None,
    fill_from_env: bool,
) -> SdkProfile:
    where = str(path) if path else "config="
    if not isinstance(config, dict):
        raise StoreError(where, f"must hold a JSON object, not {type(config).__name__}")
    auth = config.get("authentication")
    if not isinstance(auth, dict):
        expected = f'{{"authentication": {{"type": "{USER_OAUTH}"|"{OIDC_FEDERATION}", ...}}}}'
        raise StoreError(where, f"has no 'authentication' object (expected {expected})")
    config, auth = dict(config), dict(auth)
    if fill_from_env:
        _fill_from_env(config, auth)
    auth_type = auth.get("type")
    if auth_type not in (USER_OAUTH, OIDC_FEDERATION):
        expected = f"{USER_OAUTH!r} or {OIDC_FEDERATION!r}"
        raise StoreError(where, f"has authentication.type {auth_type!r}; expected {expected}")
    if config.get("base_url"):
        try:
            validate_token_url(str(config["base_url"]).rstrip("/") + TOKEN_ENDPOINT)
        except ValueError:
            reason = f"has base_url {config['base_url']!r}, which must use https://"
            raise StoreError(where, reason + " (http:// only for loopback)") from None
    override = auth.get("credentials_path")
    credentials = Path(str(override)).expanduser() if override else default_credentials
    config["authentication"] = auth
    return SdkProfile(
        name=name,
        selected_by=selected_by,
        auth_type=auth_type,
        config_path=path,
        credentials_path=credentials,
        client_id=str(auth["client_id"]) if auth.get("client_id") else None,
        base_url=str(config["base_url"]).rstrip("/") if config.get("base_url") else None,
        workspace_id=str(config["workspace_id"]) if config.get("workspace_id") else None,
        config=config,
    )


def _fill_from_env(config: dict[str, Any], auth: dict[str, Any]) -> None:
    """As the SDK: environment variables fill only what the profile leaves empty."""

    def fill(target: dict[str, Any], key: str, variable: str) -> None:
        if not target.get(key) and os.environ.get(variable):
            target[key] = os.environ[variable]

    fill(config, "base_url", ENV.BASE_URL)
    fill(config, "organization_id", ENV.ORGANIZATION_ID)
    fill(config, "workspace_id", ENV.WORKSPACE_ID)
    if auth.get("type") == OIDC_FEDERATION:
        fill(auth, "federation_rule_id", ENV.FEDERATION_RULE_ID)
        fill(auth, "service_account_id", ENV.SERVICE_ACCOUNT_ID)
        fill(auth, "scope", ENV.SCOPE)
        if not auth.get("identity_token") and os.environ.get(ENV.IDENTITY_TOKEN_FILE):
            auth["identity_token"] = {"source": "file", "path": os.environ[ENV.IDENTITY_TOKEN_FILE]}
    elif auth.get("type") == USER_OAUTH:
        fill(auth, "scope", ENV.SCOPE)


# ----- cascade steps ---------------------------------------------------------------------------

Found = tuple[SourceReport, Credential | None]


def check_profile_env() -> Found:
    """``anthropic_profile``: the profile ``ANTHROPIC_PROFILE`` names. As in the SDK, a profile
    it names that cannot be loaded ends the cascade (``final``): no later source is tried."""
    name = os.environ.get(ENV.PROFILE)
    if not name:
        return SourceReport("anthropic_profile", "absent", f"{ENV.PROFILE} is not set"), None
    try:
        profile = load_profile(name, ENV.PROFILE)
    except StoreError as error:
        report = SourceReport("anthropic_profile", "invalid", str(error), error.location)
        report.configuration_error = report.final = True
        report.fix = error.fix
        return report, None
    return check_loaded_profile("anthropic_profile", profile)


def check_active_profile() -> Found:
    """``anthropic_profile_active``: the ``active_config`` profile, else ``default``."""
    pointer = active_config_pointer()
    name = pointer or DEFAULT_PROFILE
    selected_by = "active_config" if pointer else "the default profile"
    configured = pointer is not None or bool(os.environ.get(ENV.SDK_CONFIG_DIR))
    path = sdk_config_dir() / "configs" / f"{name}.json"
    if not configured and not path.is_file():
        detail = f"no SDK profile ({path} does not exist; {LOGIN_ADVICE} to create one)"
        return SourceReport("anthropic_profile_active", "absent", detail, str(path)), None
    return check_profile("anthropic_profile_active", name, selected_by)


def check_profile(source: str, name: str, selected_by: str) -> Found:
    """One named profile as a report and a credential."""
    try:
        profile = load_profile(name, selected_by)
    except StoreError as error:
        return SourceReport(source, "invalid", str(error), error.location), None
    return check_loaded_profile(source, profile)


def check_loaded_profile(source: str, profile: SdkProfile) -> Found:
    """A parsed profile: its credentials file (``user_oauth``) or its federation settings."""
    if profile.auth_type == OIDC_FEDERATION:
        return _check_federation_profile(source, profile)
    assert profile.credentials_path is not None
    from ..stores._sdk_profile import SdkProfileStore

    store = SdkProfileStore(
        profile.credentials_path, profile=profile.name, refreshable=profile.client_id is not None
    )
    report, credential = check_store(source, store)
    if report.state == "absent":
        report.state = "invalid"
        report.detail = f"{store.location} does not exist ({LOGIN_ADVICE})"
    report.detail = f"{profile.describe()}: {report.detail}"
    if profile.client_id is None:
        report.detail += " (no client_id: re-read when it changes, never refreshed here)"
    if credential is not None:
        credential = dataclasses.replace(credential, profile=profile)
    return report, credential


def _check_federation_profile(source: str, profile: SdkProfile) -> Found:
    auth = profile.config["authentication"]
    missing = [
        name
        for name, value in (
            ("authentication.federation_rule_id", auth.get("federation_rule_id")),
            ("organization_id", profile.config.get("organization_id")),
        )
        if not value
    ]
    where = str(profile.config_path) if profile.config_path else None
    if missing:
        detail = f"{profile.describe()} lacks {' and '.join(missing)}"
        return SourceReport(source, "invalid", detail, where), None
    identity = auth.get("identity_token")
    token_file = identity.get("path") if isinstance(identity, dict) else None
    detail = (
        f"{profile.describe()}: federation rule {auth['federation_rule_id']}, "
        f"organization {profile.config['organization_id']}, identity token from "
        f"{token_file or ENV.IDENTITY_TOKEN_FILE}"
    )
    report = SourceReport(source, "available", detail, where)
    return report, Credential("oauth", source, path=profile.config_path, profile=profile)


def check_workload_identity() -> Found:
    """``workload_identity``: the federation variables, exchanged by the SDK's provider."""
    rule = os.environ.get(ENV.FEDERATION_RULE_ID)
    organization = os.environ.get(ENV.ORGANIZATION_ID)
    literal = os.environ.get(ENV.IDENTITY_TOKEN)
    token_file = os.environ.get(ENV.IDENTITY_TOKEN_FILE)
    names = (ENV.FEDERATION_RULE_ID, ENV.ORGANIZATION_ID, f"{ENV.IDENTITY_TOKEN}[_FILE]")
    values = (rule, organization, literal or token_file)
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if len(missing) == len(names):
        return SourceReport("workload_identity", "absent", f"{', '.join(names)} are not set"), None
    if missing:
        # The SDK skips an incomplete set silently; say what is missing. Only the rule id
        # signals intent (the organization id alone also serves profiles).
        detail = f"{', '.join(missing)} not set, so workload identity is not configured"
        report = SourceReport("workload_identity", "invalid" if rule else "absent", detail)
        return report, None
    if token_file:
        where = Path(token_file)
        if not where.is_file() or not os.access(where, os.R_OK):
            detail = f"{ENV.IDENTITY_TOKEN_FILE} names {where}, which is not a readable file"
            return SourceReport("workload_identity", "invalid", detail, str(where)), None
    origin = token_file or ENV.IDENTITY_TOKEN
    detail = (
        f"workload identity: federation rule {rule}, organization {organization}, "
        f"identity token from {origin}"
    )
    report = SourceReport("workload_identity", "available", detail, token_file)
    return report, Credential("oauth", "workload_identity")


# ----- shadowing ---------------------------------------------------------------------------

SDK_STEPS = ("anthropic_profile", "workload_identity", "anthropic_profile_active")


def explicit_selection(step: str) -> str | None:
    """What the user set to choose this SDK step on purpose, or None (a default on disk)."""
    if step == "anthropic_profile" and os.environ.get(ENV.PROFILE):
        return f"{ENV.PROFILE}={os.environ[ENV.PROFILE]}"
    if step == "workload_identity" and os.environ.get(ENV.FEDERATION_RULE_ID):
        return ENV.FEDERATION_RULE_ID
    if step == "anthropic_profile_active":
        if active_config_pointer() is not None:
            return f"the active_config pointer in {sdk_config_dir()}"
        if os.environ.get(ENV.SDK_CONFIG_DIR):
            return ENV.SDK_CONFIG_DIR
    return None


def note_shadowed(reports: list[SourceReport], used: str) -> list[str]:
    """Append to each explicitly selected, usable SDK step that ``used`` hides; the notes."""
    notes = []
    for report in reports:
        if report.name not in SDK_STEPS or report.state != "available":
            continue
        selection = explicit_selection(report.name)
        if selection is None:
            continue
        note = (
            f"shadowed by {used}, which comes first although {selection} is set; "
            f"remove that credential, or pass profile= or sources= to use {report.name}"
        )
        report.detail = f"{report.detail} ({note})"
        notes.append(f"{report.name}: {note}")
    return notes
