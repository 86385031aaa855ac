"""The commands return results and `cli` renders them: no printing, no private reads.

Commands are called here with a recording console (the terminal, as a command sees it) and
their `Result` is checked; how the installed script shows results is in `test_cli.py`.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file

from claude_oauth_auth.cascade._sources import format_duration
from claude_oauth_auth.cli import _commands
from claude_oauth_auth.cli._command_base import EXIT_FAILED, EXIT_OK, Result

SOURCE = Path(_commands.__file__).parent
COMMAND_MODULES = sorted([SOURCE / "_commands.py", *SOURCE.glob("_command_*.py")])
KEY = "sk-ant-api03-" + "c" * 40 + "KEY3"


class RecordingConsole:
    """A terminal that records what a command said to it; nothing is a terminal."""

    def __init__(self, typed: bytes = b"") -> None:
        self.said: list[str] = []
        self.typed = typed

    def notice(self, message: str) -> None:
        self.said.append(message)

    def is_terminal(self, stream: str) -> bool:
        return False

    def ask(self, question: str) -> str:
        self.said.append(question)
        return ""

    def read_input(self, prompt: str, limit: int) -> bytes:
        return self.typed[:limit]


def namespace(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "json": False,
        "debug": False,
        "check": False,
        "header": False,
        "show": False,
        "store": None,
        "yes": False,
    }
    return argparse.Namespace(**{**defaults, **values})


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda path: path.name)
def test_commands_print_nothing_and_read_no_private_attributes(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("print", "input"), f"{path.name}:{node.lineno} prints"
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("stdout", "stderr", "stdin"), (
                f"{path.name}:{node.lineno} uses sys.{node.attr}; use the console"
            )
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            assert not private or owner == "self", (
                f"{path.name}:{node.lineno} reads the private attribute {node.attr}"
            )


def test_every_command_is_registered_with_a_result_returning_function() -> None:
    from claude_oauth_auth.cli import _main

    assert set(_commands.COMMANDS) == {spec.name for spec in _main._COMMANDS}


def test_status_returns_a_result_with_text_and_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    console = RecordingConsole()
    result = _commands.COMMANDS["status"](namespace(), console)
    assert isinstance(result, Result) and result.code == EXIT_OK
    assert result.document is not None and result.document["source"] == "api_key_env"
    assert "Credential in use: API key (...KEY3)" in result.text
    assert KEY not in result.text + json.dumps(result.document)
    assert console.said == []


def test_status_without_credentials_is_exit_1() -> None:
    result = _commands.COMMANDS["status"](namespace(), RecordingConsole())
    assert result.code == EXIT_FAILED and "No usable" in result.text


def test_token_returns_the_token_and_the_header_lines(oauth_env: FakeAnthropic, home: Path) -> None:
    access, refresh = oauth_env.issue_tokens()
    write_auth_file(auth_file_path(home), access, refresh)
    plain = _commands.COMMANDS["token"](namespace(), RecordingConsole())
    assert plain.text == access and plain.document is not None
    assert plain.document["source"] == "auth_file"
    header = _commands.COMMANDS["token"](namespace(header=True), RecordingConsole())
    assert header.text.splitlines() == [
        f"Authorization: Bearer {access}",
        "anthropic-beta: oauth-2025-04-20",
    ]


def test_save_reads_through_the_console_and_reports_ignored_fields(home: Path) -> None:
    typed = json.dumps({"access_token": "a" * 20, "expires_in": 3600, "color": "blue"})
    result = _commands.COMMANDS["save"](namespace(), RecordingConsole(typed.encode()))
    assert result.code == EXIT_OK and "(in 60 min)" in result.text
    assert result.notes == ("claude-oauth-auth: ignored unknown field(s): color",)
    assert json.loads(auth_file_path(home).read_text())["access_token"] == "a" * 20


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (45, "45 s"),
        (119.6, "2 min"),
        (3600, "60 min"),
        (7200, "2 h"),
        (86400, "24 h"),
        (5 * 3600 + 30 * 60, "5 h 30 min"),
        (-90, "90 s"),
        (365 * 86400, "365 days"),
    ],
)
def test_one_duration_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
