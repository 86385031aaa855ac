"""Every script in examples/ runs against the loopback API (Flask and FastAPI via test clients)."""

from __future__ import annotations

import importlib.util
import io
import json
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest
from fakeapi import REPLY_TEXT, FakeAnthropic, Fault
from helpers import auth_file_path, write_auth_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEY = "sk-ant-api03-" + "k" * 40 + "KEY8"


def load(name: str) -> ModuleType:
    """Import examples/<name>.py as a fresh module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(
    name: str, arguments: list[str], monkeypatch: pytest.MonkeyPatch
) -> int | str | None:
    """Run examples/<name>.py as `python examples/<name>.py ARGS` would, in this process."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / f"{name}.py"), *arguments])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    code = exit_.value.code
    return code if isinstance(code, (int, str)) or code is None else str(code)


@pytest.fixture
def expired_oauth(oauth_env: FakeAnthropic, home: Path) -> str:
    """An expired OAuth token pair in our token file: the first request must refresh it."""
    access, refresh = oauth_env.issue_tokens(expires_in=-10)
    write_auth_file(auth_file_path(home), access, refresh, expires_in=-10)
    return access


def test_flask_app(oauth_env: FakeAnthropic, expired_oauth: str) -> None:
    app = load("flask_app").create_app()
    http = app.test_client()
    answer = http.post("/chat", json={"prompt": "Hello!"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["response"] == REPLY_TEXT
    assert http.post("/chat", json={"nothing": 1}).status_code == 400
    health = http.get("/health").get_json()
    assert health == {"status": "ok", "auth_method": "oauth", "source": "auth_file"}
    assert oauth_env.token_posts == 1
    assert [request.auth_kind for request in oauth_env.api_requests] == ["oauth"]


def test_flask_app_reports_refused_credentials(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # not known to the server
    answer = load("flask_app").create_app().test_client().post("/chat", json={"prompt": "Hi"})
    assert answer.status_code == 401 and "refused" in answer.get_json()["error"]


def test_fastapi_app_with_async_client(oauth_env: FakeAnthropic, expired_oauth: str) -> None:
    from fastapi.testclient import TestClient

    module = load("fastapi_app")
    with TestClient(module.app) as http:
        assert http.get("/health").json()["auth_method"] == "oauth"
        answer = http.post("/chat", json={"prompt": "Hello!"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"] == REPLY_TEXT
        streamed = http.post("/chat/stream", json={"prompt": "Hello!"})
        assert streamed.status_code == 200 and streamed.text == REPLY_TEXT
        assert http.post("/chat", json={"prompt": ""}).status_code == 422
        assert type(module.app.state.claude).__name__ == "AsyncClaudeClient"
    assert oauth_env.token_posts == 1
    assert {request.auth_kind for request in oauth_env.api_requests} == {"oauth"}


def test_batch_script_shares_one_refresh_across_threads(
    oauth_env: FakeAnthropic,
    expired_oauth: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts = [f"prompt {number}" for number in range(12)]
    code = run_script("batch", [*prompts, "--workers", "6"], monkeypatch)
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["prompt"] for line in lines] == prompts
    assert all(line["answer"] == REPLY_TEXT for line in lines)
    assert oauth_env.token_posts == 1 and oauth_env.invalid_grants == 0
    assert oauth_env.api_requests_count() == len(prompts)


def test_batch_script_reports_failures_and_exits_1(
    oauth_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = oauth_env.add_api_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\n\ntwo\n"))
    refusal = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    oauth_env.api_faults.append(Fault(400, refusal))
    code = run_script("batch", ["--workers", "1"], monkeypatch)
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["prompt"] for line in lines] == ["one", "two"]
    assert "error" in lines[0] and lines[1]["answer"] == REPLY_TEXT


def test_status_script(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_script("status", [], monkeypatch) == 1
    assert "No usable" in capsys.readouterr().out
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert run_script("status", [], monkeypatch) == 0
    report = capsys.readouterr().out
    assert "api_key_env" in report and "API key available: yes" in report
    assert KEY[:-4] not in report
    assert run_script("status", ["--json"], monkeypatch) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "api_key_env"
