"""The cascade: every source, every state, every bad input; order and custom sources."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anthropic
import pytest
from helpers import (
    auth_file_path,
    claude_code_path,
    write_auth_file,
    write_claude_code_file,
    write_json,
)

from claude_oauth_auth import (
    ClaudeAuthError,
    NoCredentialsError,
    OAuthTokenManager,
    TokenFileError,
    UnifiedAuthManager,
)
from claude_oauth_auth.cascade._sources import SOURCE_NAMES, check_source

ACCESS = "sk-ant-oat01-" + "a" * 40 + "WXYZ"
REFRESH = "sk-ant-ort01-" + "r" * 40 + "RRRR"
KEY = "sk-ant-api03-" + "k" * 40 + "KKKK"


def test_source_names_are_the_documented_order() -> None:
    assert SOURCE_NAMES == (
        "explicit",
        "auth_file_env",
        "token_store_env",
        "auth_file",
        "claude_code",
        "claude_code_env",
        "api_key_env",
        "auth_token_env",
        "anthropic_profile",
        "workload_identity",
        "anthropic_profile_active",
    )


def test_nothing_found_raises_an_sdk_authentication_error_listing_every_source() -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        UnifiedAuthManager()
    error = caught.value
    assert isinstance(error, NoCredentialsError)
    assert isinstance(error, ClaudeAuthError)
    message = str(error)
    for name in SOURCE_NAMES:
        assert name in message
    assert "ANTHROPIC_API_KEY" in message
    assert "Claude Code" in message
    assert "claude-oauth-auth save" in message


def test_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    auth = UnifiedAuthManager()
    assert auth.auth_method == "api_key"
    assert auth.source == "api_key_env"
    assert KEY not in repr(auth) and KEY not in repr(auth.credential)
    assert "KKKK" in repr(auth.credential)


def test_auth_token_env_is_a_static_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "gateway-token-123456")
    auth = UnifiedAuthManager()
    assert auth.source == "auth_token_env"
    assert auth.credential.kind == "auth_token"


def test_claude_code_env_is_oauth_without_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", ACCESS)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    auth = UnifiedAuthManager()
    assert (auth.auth_method, auth.source) == ("oauth", "claude_code_env")
    assert auth.token_manager is None
    assert auth.token_source.get_valid_token() == ACCESS


def test_our_auth_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    auth = UnifiedAuthManager()
    assert (auth.auth_method, auth.source) == ("oauth", "auth_file")
    assert auth.token_manager is not None
    assert auth.token_manager.token_file == auth_file_path(home)
    assert auth.token_manager.access_token == ACCESS


def test_auth_file_env_wins_over_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_auth_file(auth_file_path(home), "sk-ant-oat01-default-token-0000", REFRESH)
    custom = write_auth_file(home / "custom" / "tokens.json", ACCESS, REFRESH)
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(custom))
    auth = UnifiedAuthManager()
    assert auth.source == "auth_file_env"
    assert auth.token_manager is not None and auth.token_manager.access_token == ACCESS


def test_claude_code_store_milliseconds(home: Path) -> None:
    write_claude_code_file(claude_code_path(home), ACCESS, REFRESH, expires_in=7200)
    auth = UnifiedAuthManager()
    assert auth.source == "claude_code"
    manager = auth.token_manager
    assert manager is not None
    assert manager.token_expiry is not None
    assert 7000 < manager.token_expiry - __import__("time").time() < 7300


def test_claude_config_dir(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = home / "elsewhere"
    write_claude_code_file(folder / ".credentials.json", ACCESS, REFRESH)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(folder))
    report, credential = check_source("claude_code")
    assert report.state == "available"
    assert credential is not None and credential.path == folder / ".credentials.json"


def test_explicit_api_key_ignores_everything_else(home: Path) -> None:
    write_json(auth_file_path(home), "not json at all", mode=0o600)
    auth = UnifiedAuthManager(api_key=KEY)
    assert (auth.auth_method, auth.source) == ("api_key", "explicit")
    assert [r.state for r in auth.reports if r.name != "explicit"] == ["not_checked"] * 10


def test_explicit_arguments_are_exclusive() -> None:
    with pytest.raises(ValueError, match="at most one"):
        UnifiedAuthManager(api_key=KEY, auth_token="abc")


def test_explicit_oauth_manager_and_token_file(home: Path) -> None:
    path = write_auth_file(home / "t.json", ACCESS, REFRESH)
    manager = OAuthTokenManager(token_file=path)
    assert UnifiedAuthManager(oauth_manager=manager).token_manager is manager
    auth = UnifiedAuthManager(token_file=path)
    assert (auth.auth_method, auth.source) == ("oauth", "explicit")


def test_explicit_broken_token_file_raises_naming_the_file(home: Path) -> None:
    path = write_json(home / "t.json", [1, 2])
    with pytest.raises(TokenFileError, match=r"t\.json") as caught:
        UnifiedAuthManager(token_file=path)
    assert "JSON array" in str(caught.value)


def test_sources_reorders_and_restricts(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert UnifiedAuthManager(sources=["api_key_env", "auth_file"]).source == "api_key_env"
    assert UnifiedAuthManager(sources=["auth_file"]).source == "auth_file"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(NoCredentialsError):
        UnifiedAuthManager(sources=["api_key_env"])
    with pytest.raises(ValueError, match="unknown source"):
        UnifiedAuthManager(sources=["nope"])


def test_subclass_adds_a_source_like_the_faq(monkeypatch: pytest.MonkeyPatch) -> None:
    class CustomAuth(UnifiedAuthManager):
        def load_from_somewhere(self) -> str | None:
            return os.environ.get("MY_SECRET_STORE_KEY")

        def _discover_credentials(self):  # type: ignore[no-untyped-def]
            custom_creds = self.load_from_somewhere()
            if custom_creds:
                return custom_creds
            return super()._discover_credentials()

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert CustomAuth().source == "api_key_env"
    monkeypatch.setenv("MY_SECRET_STORE_KEY", "sk-ant-api03-custom-store-key-9999")
    auth = CustomAuth()
    assert (auth.auth_method, auth.source) == ("api_key", "custom")
    assert auth.reports[0].name == "custom" and auth.reports[0].state == "used"


def test_info_line_names_the_source_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with caplog.at_level(logging.DEBUG, logger="claude_oauth_auth"):
        UnifiedAuthManager()
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("api_key_env" in line for line in info)
    assert all(KEY[:12] not in r.getMessage() or KEY not in r.getMessage() for r in caplog.records)
    assert not any(KEY in r.getMessage() for r in caplog.records)


# ----- bad input: reported invalid with a reason naming the file, cascade continues ----------

BAD_DOCUMENTS = {
    "malformed": ("{not json", "not valid JSON"),
    "empty": ("", "is empty"),
    "list": ("[1, 2, 3]", "JSON array"),
    "expiry_string": (json.dumps({"access_token": ACCESS, "token_expiry": "soon"}), "number"),
    "access_number": (json.dumps({"access_token": 5}), "must be a string"),
    "missing_access": (json.dumps({"refresh_token": REFRESH}), 'missing "access_token"'),
    "claude_code_not_object": (json.dumps({"claudeAiOauth": "x"}), "must be an object"),
    "claude_code_missing": (json.dumps({"claudeAiOauth": {}}), 'missing "accessToken"'),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_bad_auth_file_is_invalid_and_cascade_continues(
    case: str, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    text, reason = BAD_DOCUMENTS[case]
    path = auth_file_path(home)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with caplog.at_level(logging.WARNING, logger="claude_oauth_auth"):
        auth = UnifiedAuthManager()
    assert auth.source == "api_key_env"
    report = next(r for r in auth.reports if r.name == "auth_file")
    assert report.state == "invalid"
    assert str(path) in report.detail
    assert reason in report.detail
    assert any("auth_file" in r.getMessage() for r in caplog.records)
    assert ACCESS not in report.detail and REFRESH not in report.detail


def test_directory_instead_of_file(home: Path) -> None:
    auth_file_path(home).mkdir(parents=True)
    report, credential = check_source("auth_file")
    assert (report.state, credential) == ("invalid", None)
    assert "directory" in report.detail and str(auth_file_path(home)) in report.detail


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(home: Path) -> None:
    write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    os.chmod(auth_file_path(home), 0o000)
    report, _ = check_source("auth_file")
    assert report.state == "invalid" and "permission denied" in report.detail


def test_unreadable_file_as_root_uses_a_fifo_free_check(home: Path) -> None:
    # Root can read a 0000 file, so use a file we cannot open for another reason: a dangling
    # symlink reports "does not exist" (absent), which is also the honest answer.
    path = auth_file_path(home)
    path.parent.mkdir(parents=True)
    path.symlink_to(home / "missing-target.json")
    report, _ = check_source("auth_file")
    assert report.state == "absent"


def test_file_over_one_mebibyte(home: Path) -> None:
    path = auth_file_path(home)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"access_token": ACCESS, "pad": "x" * (1024 * 1024)}))
    os.chmod(path, 0o600)
    report, _ = check_source("auth_file")
    assert report.state == "invalid" and "larger than" in report.detail


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_file_writable_by_others_is_refused_with_the_chmod_fix(home: Path, mode: int) -> None:
    path = write_auth_file(auth_file_path(home), ACCESS, REFRESH)
    os.chmod(path, mode)
    report, credential = check_source("auth_file")
    assert credential is None and report.state == "invalid"
    assert f"chmod 600 {path}" in report.detail


@pytest.mark.parametrize(
    "variable",
    ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_AUTH_FILE"],
)
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_or_blank_env_vars_are_invalid(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(NoCredentialsError) as caught:
        UnifiedAuthManager()
    assert "set but empty" in str(caught.value)
    assert variable in str(caught.value)


def test_auth_file_env_naming_a_missing_file_is_invalid(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(home / "nope.json"))
    report, _ = check_source("auth_file_env")
    assert report.state == "invalid" and "nope.json" in report.detail


def test_expired_token_without_refresh_token_is_invalid(home: Path) -> None:
    write_auth_file(auth_file_path(home), ACCESS, None, expires_in=-60)
    report, credential = check_source("auth_file")
    assert credential is None and report.state == "invalid" and "log in again" in report.detail


def test_keeps_going_past_every_broken_source(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_AUTH_FILE", str(write_json(home / "a.json", [])))
    write_json(auth_file_path(home), {"access_token": 5})
    write_json(claude_code_path(home), {"claudeAiOauth": {}})
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", " ")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "two words")
    # (A broken ANTHROPIC_PROFILE ends the cascade, as in the SDK: see test_profiles.)
    monkeypatch.setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_only")
    sdk = home / ".config" / "anthropic"
    config = {"authentication": {"type": "user_oauth"}}
    write_json(sdk / "configs" / "default.json", config, mode=0o644)
    credentials = {"access_token": ACCESS, "expires_at": 4102444800}
    write_json(sdk / "credentials" / "default.json", credentials)
    auth = UnifiedAuthManager()
    assert auth.source == "anthropic_profile_active"
    states = {r.name: r.state for r in auth.reports}
    assert states == {
        "explicit": "absent",
        "auth_file_env": "invalid",
        "token_store_env": "absent",
        "auth_file": "invalid",
        "claude_code": "invalid",
        "claude_code_env": "invalid",
        "api_key_env": "invalid",
        "auth_token_env": "invalid",
        "anthropic_profile": "absent",
        "workload_identity": "invalid",
        "anthropic_profile_active": "used",
    }


# ----- the SDK's own steps ---------------------------------------------------------------------


def sdk_profile(home: Path, name: str = "default", **auth: object) -> Path:
    folder = home / ".config" / "anthropic"
    authentication = {"type": "user_oauth", "client_id": "cid", **auth}
    write_json(folder / "configs" / f"{name}.json", {"authentication": authentication}, 0o644)
    credentials = {"access_token": ACCESS, "refresh_token": REFRESH, "expires_at": 4102444800}
    write_json(folder / "credentials" / f"{name}.json", credentials)
    return folder


def test_no_sdk_configuration_is_absent_everywhere(home: Path) -> None:
    for name in ("anthropic_profile", "workload_identity", "anthropic_profile_active"):
        report, credential = check_source(name)
        assert (report.state, credential) == ("absent", None), report


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("config_mode", "chmod go-w"),
        ("credentials_mode", "chmod 600"),
        ("no_credentials", "ant auth login"),
        ("bad_type", "authentication.type 'password'"),
        ("not_json", "not valid JSON"),
        ("no_authentication", "no 'authentication' object"),
        ("plain_http", "must use https://"),
    ],
)
def test_a_broken_profile_is_invalid_with_the_fix(home: Path, breakage: str, reason: str) -> None:
    folder = sdk_profile(home)
    config, secret = folder / "configs" / "default.json", folder / "credentials" / "default.json"
    if breakage == "config_mode":
        os.chmod(config, 0o666)
    elif breakage == "credentials_mode":
        os.chmod(secret, 0o644)
    elif breakage == "no_credentials":
        secret.unlink()
    elif breakage == "bad_type":
        write_json(config, {"authentication": {"type": "password"}}, 0o644)
    elif breakage == "not_json":
        config.write_text("{")
    elif breakage == "plain_http":
        plain = {"base_url": "http://api.example.com", "authentication": {"type": "user_oauth"}}
        write_json(config, plain, 0o644)
    else:
        write_json(config, {"base_url": "https://x"}, 0o644)
    report, credential = check_source("anthropic_profile_active")
    assert credential is None and report.state == "invalid"
    assert reason in report.detail and REFRESH not in report.detail


def test_profile_steps_name_profile_and_path(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = sdk_profile(home, "work")
    monkeypatch.setenv("ANTHROPIC_PROFILE", "work")
    report, credential = check_source("anthropic_profile")
    assert report.state == "available" and credential is not None
    assert "'work' (ANTHROPIC_PROFILE)" in report.detail
    assert report.path == str(folder / "credentials" / "work.json")
    assert ACCESS not in report.detail and "WXYZ" in report.detail
    active, _ = check_source("anthropic_profile_active")
    assert active.state == "absent"  # no default profile: nothing is configured there


def test_a_pointer_or_config_dir_to_nothing_is_invalid(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = sdk_profile(home)
    (folder / "active_config").write_text("gone\n")
    report, _ = check_source("anthropic_profile_active")
    assert report.state == "invalid" and "'gone', active_config" in report.detail
    (folder / "active_config").unlink()
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(home / "empty"))
    report, _ = check_source("anthropic_profile_active")
    assert report.state == "invalid" and str(home / "empty") in report.detail


def test_workload_identity_states(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_ORGANIZATION_ID", "org-1")  # profiles use it too: not intent
    assert check_source("workload_identity")[0].state == "absent"
    monkeypatch.setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_1")
    report, _ = check_source("workload_identity")
    assert report.state == "invalid" and "ANTHROPIC_IDENTITY_TOKEN[_FILE]" in report.detail
    monkeypatch.setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", str(home / "missing.jwt"))
    report, _ = check_source("workload_identity")
    assert report.state == "invalid" and "not a readable file" in report.detail
    (home / "missing.jwt").write_text("eyJ.x.y")
    report, credential = check_source("workload_identity")
    assert report.state == "available" and credential is not None
    assert "fdrl_1" in report.detail and "eyJ" not in report.detail


def test_an_oidc_profile_without_its_rule_is_invalid(home: Path) -> None:
    folder = home / ".config" / "anthropic"
    config = {"organization_id": "org-1", "authentication": {"type": "oidc_federation"}}
    write_json(folder / "configs" / "default.json", config, 0o644)
    report, credential = check_source("anthropic_profile_active")
    assert credential is None and report.state == "invalid"
    assert "authentication.federation_rule_id" in report.detail


def test_status_reads_profiles_without_importing_anthropic(home: Path) -> None:
    sdk_profile(home)
    code = (
        "import sys, claude_oauth_auth as c; s = c.get_auth_status(); "
        "assert s['source'] == 'anthropic_profile_active', s; "
        "assert 'anthropic' not in sys.modules, 'imported anthropic'"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]


def test_the_no_credentials_message_lists_every_source_in_aligned_columns() -> None:
    from claude_oauth_auth import NoCredentialsError, UnifiedAuthManager

    with pytest.raises(NoCredentialsError) as caught:
        UnifiedAuthManager()
    rows = [line for line in str(caught.value).splitlines() if line.startswith("  ")]
    names = [row.split()[0] for row in rows]
    assert names == ["explicit", *SOURCE_NAMES[1:]]
    pairs = zip(rows, names, strict=True)
    columns = {row.index(" absent ", len("  " + name)) for row, name in pairs}
    assert len(columns) == 1, rows
