"""SDK profiles and workload identity: with only the SDK's configuration present, ClaudeClient
sends what anthropic.Anthropic sends (recorded by the loopback server), sync and async."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import Clock
from fakeapi import JWT_BEARER_GRANT, OAUTH_BETA, FakeAnthropic, RecordedRequest
from helpers import auth_file_path, write_auth_file, write_json

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient, UnifiedAuthManager, get_auth_status

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def config_dir(home: Path) -> Path:
    return home / ".config" / "anthropic"


def write_profile(
    folder: Path,
    name: str,
    server: FakeAnthropic,
    *,
    expires_in: float = 3600,
    client_id: str | None = CLIENT_ID,
    base_url: bool = True,
    **config: Any,
) -> tuple[str, str]:
    """A ``user_oauth`` profile as ``ant auth login`` writes it; returns its token pair."""
    access, refresh = server.issue_tokens(expires_in=expires_in)
    authentication: dict[str, Any] = {"type": "user_oauth"}
    if client_id is not None:
        authentication["client_id"] = client_id
    document: dict[str, Any] = {"version": "1.0", "authentication": authentication, **config}
    if base_url:
        document["base_url"] = server.base_url
    write_json(folder / "configs" / f"{name}.json", document, mode=0o644)
    credentials = {
        "version": "1.0",
        "type": "oauth_token",
        "access_token": access,
        "refresh_token": refresh,
        "expires_at": int(time.time() + expires_in),
    }
    write_json(folder / "credentials" / f"{name}.json", credentials)
    return access, refresh


def write_federation_profile(folder: Path, name: str, server: FakeAnthropic) -> Path:
    jwt_file = write_jwt(folder.parent / "jwt", server)
    document = {
        "version": "1.0",
        "base_url": server.base_url,
        "organization_id": "org-1234",
        "authentication": {
            "type": "oidc_federation",
            "federation_rule_id": "fdrl_abc",
            "identity_token": {"source": "file", "path": str(jwt_file)},
        },
    }
    write_json(folder / "configs" / f"{name}.json", document, mode=0o644)
    return jwt_file


def write_jwt(path: Path, server: FakeAnthropic) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(server.add_identity_token() + "\n")
    return path


# ----- one request from each side, as the server saw it ------------------------------------


def sent(request: RecordedRequest) -> dict[str, Any]:
    """What identifies the credential a request carried."""
    scheme = request.headers.get("authorization", "").partition(" ")[0]
    return {
        "scheme": scheme,
        "token": request.token,
        "oauth_beta": OAUTH_BETA in request.betas,
        "workspace": request.headers.get("anthropic-workspace-id"),
        "x_api_key": "x-api-key" in request.headers,
        "status": request.status,
    }


def one_request(make: Callable[[], Any], server: FakeAnthropic, *, asynchronous: bool) -> Any:
    """Build a client, send one message; the server's record of it (and of any exchange)."""
    server.reset_counters()
    if asynchronous:

        async def run() -> None:
            async with make() as client:
                await client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)

        asyncio.run(run())
    else:
        make().messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert len(server.api_requests) == 1
    exchanges = [
        {key: value for key, value in body.items() if key != "refresh_token"}
        for body in server.token_requests
    ]
    return sent(server.api_requests[0]), exchanges


Setup = Callable[[Path, FakeAnthropic, pytest.MonkeyPatch], dict[str, Any]]


def default_profile(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server)
    return {}


def profile_env(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server)
    write_profile(config_dir(home), "work", server)
    env.setenv("ANTHROPIC_PROFILE", "work")
    return {}


def active_config(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server)
    write_profile(config_dir(home), "staging", server)
    (config_dir(home) / "active_config").write_text("staging\n")
    return {}


def config_dir_env(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    folder = home / "elsewhere"
    write_profile(folder, "default", server)
    env.setenv("ANTHROPIC_CONFIG_DIR", str(folder))
    return {}


def workspace(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server, workspace_id="wrkspc_01abc")
    return {}


def no_client_id(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server, client_id=None)
    return {}


def federation(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_federation_profile(config_dir(home), "default", server)
    return {}


def workload(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    env.setenv("ANTHROPIC_BASE_URL", server.base_url)
    env.setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_abc")
    env.setenv("ANTHROPIC_ORGANIZATION_ID", "org-1234")
    env.setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", str(write_jwt(home / "jwt", server)))
    env.setenv("ANTHROPIC_WORKSPACE_ID", "wrkspc_fed")
    return {}


def workload_literal(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    env.setenv("ANTHROPIC_BASE_URL", server.base_url)
    env.setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_abc")
    env.setenv("ANTHROPIC_ORGANIZATION_ID", "org-1234")
    env.setenv("ANTHROPIC_IDENTITY_TOKEN", server.add_identity_token())
    return {}


def profile_argument(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(config_dir(home), "default", server)
    write_profile(config_dir(home), "ci", server, workspace_id="wrkspc_ci")
    env.setenv("ANTHROPIC_API_KEY", server.add_api_key())  # must not collide with profile=
    return {"profile": "ci"}


def config_argument(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    write_profile(home / "kept", "mine", server)
    env.setenv("ANTHROPIC_API_KEY", server.add_api_key())
    credentials = home / "kept" / "credentials" / "mine.json"
    authentication = {"type": "user_oauth", "client_id": CLIENT_ID}
    authentication["credentials_path"] = str(credentials)
    return {"config": {"base_url": server.base_url, "authentication": authentication}}


def federation_config(home: Path, server: FakeAnthropic, env: pytest.MonkeyPatch) -> dict[str, Any]:
    jwt_file = write_jwt(home / "jwt", server)
    authentication = {
        "type": "oidc_federation",
        "federation_rule_id": "fdrl_abc",
        "identity_token": {"source": "file", "path": str(jwt_file)},
    }
    config = {
        "base_url": server.base_url,
        "organization_id": "org-9",
        "authentication": authentication,
    }
    return {"config": config}


SETUPS: dict[str, Setup] = {
    "user_oauth default profile": default_profile,
    "ANTHROPIC_PROFILE": profile_env,
    "active_config pointer": active_config,
    "ANTHROPIC_CONFIG_DIR": config_dir_env,
    "profile with base_url + workspace_id": workspace,
    "user_oauth without client_id": no_client_id,
    "oidc_federation profile": federation,
    "workload identity (token file)": workload,
    "workload identity (literal token)": workload_literal,
    "profile= with ANTHROPIC_API_KEY set": profile_argument,
    "config= user_oauth with ANTHROPIC_API_KEY set": config_argument,
    "config= oidc_federation": federation_config,
}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(SETUPS))
def test_claude_client_sends_what_the_sdk_sends(
    name: str,
    asynchronous: bool,
    home: Path,
    server: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arguments = SETUPS[name](home, server, monkeypatch)
    ours_class: Any = AsyncClaudeClient if asynchronous else ClaudeClient
    sdk_class: Any = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic

    ours, our_exchanges = one_request(
        lambda: ours_class(max_retries=0, **arguments), server, asynchronous=asynchronous
    )
    theirs, sdk_exchanges = one_request(
        lambda: sdk_class(max_retries=0, **arguments), server, asynchronous=asynchronous
    )

    assert ours["status"] == 200, ours
    jwt_bearer = [body["grant_type"] == JWT_BEARER_GRANT for body in our_exchanges + sdk_exchanges]
    if jwt_bearer == [True, True]:  # both sides exchanged (no disk cache): compare the exchanges
        assert our_exchanges == sdk_exchanges
        ours.pop("token"), theirs.pop("token")
    else:
        assert not any(jwt_bearer) or our_exchanges  # else the SDK used the token we cached
    assert ours == theirs
    assert ours["scheme"] == "Bearer" and ours["oauth_beta"] and not ours["x_api_key"]


def test_workspace_header_and_host_come_from_the_profile(home: Path, server: FakeAnthropic) -> None:
    access, _ = write_profile(config_dir(home), "default", server, workspace_id="wrkspc_01abc")
    client = ClaudeClient()
    assert str(client.base_url).rstrip("/") == server.base_url
    assert client.auth_source == "anthropic_profile_active"
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    request = server.api_requests[-1]
    assert request.token == access and request.headers["anthropic-workspace-id"] == "wrkspc_01abc"
    copied = client.with_options(timeout=20, max_retries=0)  # a copy keeps host and workspace
    copied.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    request = server.api_requests[-1]
    assert request.token == access and request.headers["anthropic-workspace-id"] == "wrkspc_01abc"


def test_a_base_url_argument_wins_over_the_profile(home: Path, server: FakeAnthropic) -> None:
    write_profile(config_dir(home), "default", server, base_url=False)
    client = ClaudeClient(base_url=server.base_url)
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert server.api_requests[-1].status == 200


# ----- refresh through our manager --------------------------------------------------------


def test_expired_profile_is_refreshed_with_the_sdks_request_and_the_sdk_reads_our_file(
    home: Path, server: FakeAnthropic
) -> None:
    folder = config_dir(home)
    access, refresh = write_profile(folder, "default", server, expires_in=-5, extra="kept")
    credentials = folder / "credentials" / "default.json"
    document = json.loads(credentials.read_text())
    document["custom_key"] = {"nested": True}
    write_json(credentials, document)

    client = ClaudeClient(max_retries=0)
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)

    assert server.token_posts == 1
    assert server.token_requests[0] == {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": CLIENT_ID,
    }
    assert server.token_headers[0]["anthropic-beta"] == OAUTH_BETA
    assert server.token_headers[0]["content-type"] == "application/json"
    written = json.loads(credentials.read_text())
    assert written["access_token"] != access and written["refresh_token"] != refresh
    assert isinstance(written["expires_at"], int) and written["expires_at"] > time.time() + 3000
    assert written["type"] == "oauth_token" and written["custom_key"] == {"nested": True}
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert (folder / "credentials" / "default.json.oauth.lock").exists()

    server.reset_counters()
    sdk = anthropic.Anthropic(max_retries=0)
    sdk.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert server.token_posts == 0  # the SDK used the token we wrote, without a refresh
    assert server.api_requests[-1].token == written["access_token"]


def test_profile_without_client_id_is_re_read_never_refreshed(
    home: Path, server: FakeAnthropic, clock: Clock
) -> None:
    folder = config_dir(home)
    write_profile(folder, "default", server, client_id=None, expires_in=3600)
    client = ClaudeClient(max_retries=0, clock=clock)
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert client.auth_manager.token_manager is not None
    assert not client.auth_manager.token_manager.can_refresh

    rotated, _ = server.issue_tokens()  # a sidecar rotates the file
    credentials = folder / "credentials" / "default.json"
    document = json.loads(credentials.read_text())
    document["access_token"] = rotated
    write_json(credentials, document)
    os.utime(credentials, (time.time() + 5, time.time() + 5))
    clock.advance(1.05)  # the file is looked at again at most once a second
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert server.api_requests[-1].token == rotated and server.token_posts == 0


def test_refresh_goes_to_the_client_host_when_the_profile_names_none(
    home: Path, server: FakeAnthropic
) -> None:
    write_profile(config_dir(home), "default", server, expires_in=-5, base_url=False)
    client = ClaudeClient(base_url=server.base_url, max_retries=0)
    client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert server.token_posts == 1 and server.api_requests[-1].status == 200


# ----- order and explicit arguments -------------------------------------------------------


def test_api_key_comes_before_an_auth_token_and_both_before_profiles(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(config_dir(home), "default", server)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "gateway-token-123456")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "k" * 40)
    assert UnifiedAuthManager().source == "api_key_env"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert UnifiedAuthManager().source == "auth_token_env"
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN")
    assert UnifiedAuthManager().source == "anthropic_profile_active"


def test_workload_identity_comes_before_the_active_profile_not_before_anthropic_profile(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(config_dir(home), "default", server)
    write_profile(config_dir(home), "named", server)
    workload(home, server, monkeypatch)
    assert UnifiedAuthManager().source == "workload_identity"
    monkeypatch.setenv("ANTHROPIC_PROFILE", "named")
    assert UnifiedAuthManager().source == "anthropic_profile"


def test_claude_sources_come_first_and_status_says_the_profile_is_shadowed(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, refresh = server.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    write_profile(config_dir(home), "work", server)
    monkeypatch.setenv("ANTHROPIC_PROFILE", "work")
    assert UnifiedAuthManager().source == "auth_file"
    status = get_auth_status()
    report = next(r for r in status["sources"] if r["name"] == "anthropic_profile")
    assert report["state"] == "available"
    assert "shadowed by auth_file" in report["detail"]
    assert "'work'" in report["detail"] and str(config_dir(home)) in report["detail"]


def test_explicit_profile_argument_errors_are_raised(home: Path, server: FakeAnthropic) -> None:
    with pytest.raises(Exception, match=r"configs/nope\.json.*does not exist"):
        ClaudeClient(profile="nope")
    with pytest.raises(Exception, match="path separators"):
        UnifiedAuthManager(profile="a/b")
    with pytest.raises(ValueError, match="credentials_path"):
        UnifiedAuthManager(config={"authentication": {"type": "user_oauth"}})
    with pytest.raises(ValueError, match="at most one"):
        UnifiedAuthManager(profile="a", api_key="sk-ant-api03-xxxxxxxxxxxxxxxxx")


def test_status_names_each_step_with_profile_and_path(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(config_dir(home), "default", server)
    status = get_auth_status()
    assert status["source"] == "anthropic_profile_active"
    reports = {r["name"]: r for r in status["sources"]}
    assert reports["anthropic_profile"]["state"] == "absent"
    assert reports["workload_identity"]["state"] == "absent"
    active = reports["anthropic_profile_active"]
    assert active["state"] == "used" and "'default'" in active["detail"]
    assert active["path"] == str(config_dir(home) / "credentials" / "default.json")


def test_token_and_status_commands_on_sdk_configuration(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    workload(home, server, monkeypatch)
    command = [sys.executable, "-m", "claude_oauth_auth"]
    done = subprocess.run([*command, "token", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-800:]
    document = json.loads(done.stdout)
    assert document["source"] == "workload_identity" and document["kind"] == "oauth"
    assert server.token_requests[-1]["grant_type"] == JWT_BEARER_GRANT
    done = subprocess.run([*command, "status"], capture_output=True, text=True)
    assert done.returncode == 0 and "workload_identity" in done.stdout
    assert "fdrl_abc" in done.stdout and document["token"] not in done.stdout


def test_a_refused_exchange_is_an_authentication_error_naming_the_step(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload(home, server, monkeypatch)
    (home / "jwt").write_text("eyJ.not.known")
    client = ClaudeClient(max_retries=0)
    with pytest.raises(anthropic.AuthenticationError, match="workload identity") as caught:
        client.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
    assert "eyJ.not.known" not in str(caught.value)
    assert server.token_posts == 1


# ----- as the SDK sees them (issue 23) ---------------------------------------------------------


@pytest.mark.parametrize("broken", ["missing", "not_json", "bad_name"])
def test_a_profile_named_by_the_variable_that_cannot_be_loaded_stops_the_cascade_as_in_the_sdk(
    broken: str, home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ANTHROPIC_PROFILE=work`` without a usable ``work`` profile: the SDK raises, so do we,
    rather than falling through to the default profile; status exits 1 naming the file."""
    write_profile(config_dir(home), "default", server)
    monkeypatch.setenv("ANTHROPIC_PROFILE", ".work" if broken == "bad_name" else "work")
    path = config_dir(home) / "configs" / "work.json"
    if broken == "not_json":
        path.write_text("{bad")
        path.chmod(0o644)
    with pytest.raises(anthropic.AnthropicError):
        anthropic.Anthropic()
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ClaudeClient()
    named = "'.work'" if broken == "bad_name" else str(path)
    assert named in str(caught.value)
    status = get_auth_status()
    assert status["source"] is None and status["fix"]
    assert named in status["fix"] or named in status["sources"][-3]["detail"]
    if broken == "missing":
        assert "ant auth login --profile work" in status["fix"]
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "claude_oauth_auth", "status"], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout
    assert named in done.stdout
    assert server.token_posts == 0 and server.api_requests == []


def test_status_shows_the_profiles_host_and_token_url(
    home: Path, server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``user_oauth`` profile whose ``base_url`` points elsewhere: status shows the host the
    client, the refresh and ``--check`` use, not the API's default."""
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    write_profile(config_dir(home), "default", server)
    status = get_auth_status()
    assert status["source"] == "anthropic_profile_active"
    assert status["api_base_url"] == server.base_url
    assert status["token_url"] == server.token_url
