"""What people expect of a command line: tab completion, --json everywhere, plain words.

Through the installed console script in the temporary HOME: `completion bash|zsh|fish`
prints a script generated from the parser (by shtab, loaded only for that command) that
the shells accept and that completes every command; every command that prints a result
takes --json, before or after the command, and prints parseable JSON; messages name no
Python class or type.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file
from helpers import run_cli as run

import claude_oauth_auth
import claude_oauth_auth.stores
from claude_oauth_auth.cli._command_completion import SHELLS
from claude_oauth_auth.cli._commands import COMMANDS

SCRIPT = Path(sys.executable).with_name("claude-oauth-auth")
ACCESS = "sk-ant-oat01-" + "h" * 40 + "HAB1"
REFRESH = "sk-ant-ort01-" + "j" * 40 + "HAB2"
LOGIN = json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600})


def shell(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)


# ----- completion -----------------------------------------------------------------------------

OPTIONS = ("--json", "--store", "--yes", "--check", "--header", "--from", "--to", "--ahead")


@pytest.mark.parametrize("name", SHELLS)
def test_completion_prints_a_script_the_shell_accepts_naming_every_command(name: str) -> None:
    result = run("completion", name)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout, command
    for option in OPTIONS:  # fish spells --json as `-l json`
        assert re.search(rf"(--| -l ){option[2:]}\b", result.stdout), option
    checked = shell(name, "-n", stdin=result.stdout)
    assert checked.returncode == 0, checked.stderr


def test_bash_completion_completes_commands_and_their_options(tmp_path: Path) -> None:
    script = tmp_path / "claude-oauth-auth.bash"
    script.write_text(run("completion", "bash").stdout)
    (function,) = re.findall(r"^complete .*-F (\S+) claude-oauth-auth$", script.read_text(), re.M)

    def complete(*words: str) -> list[str]:
        """What bash offers for the last of ``words`` (it calls the function this way)."""
        line = ["claude-oauth-auth", *words]
        quoted = " ".join(shlex.quote(word) for word in line)
        code = (
            f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; "
            f"{function} claude-oauth-auth {shlex.quote(line[-1])} {shlex.quote(line[-2])}; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        return shell("bash", "-c", code).stdout.split()

    assert complete("lo") == ["logout"]
    assert complete("comp") == ["completion"]
    assert complete("keep-fresh", "--che") == ["--check-every"]
    assert sorted(complete("completion", "")) == sorted(SHELLS)


def test_fish_completion_completes_commands_and_their_options(tmp_path: Path) -> None:
    script = tmp_path / "claude-oauth-auth.fish"
    script.write_text(run("completion", "fish").stdout)
    code = f"source {script}; complete -C 'claude-oauth-auth lo'; "
    code += "complete -C 'claude-oauth-auth move --f'"
    lines = shell("fish", "-c", code).stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["logout", "--from"]


def test_completion_help_says_how_to_install_it_for_each_shell() -> None:
    result = run("completion", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "Exits 0" in result.stdout
    for name in SHELLS:
        assert f"claude-oauth-auth completion {name} > ~/" in result.stdout, name


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    result = run("completion", "tcsh")
    assert result.returncode == 2 and "invalid choice: 'tcsh'" in result.stderr


def test_importing_the_package_and_status_load_neither_shtab_nor_the_sdk() -> None:
    code = (
        "import sys, claude_oauth_auth\n"
        "from claude_oauth_auth import cli\n"
        "cli.main(['status'])\n"
        "loaded = [name for name in ('shtab', 'anthropic') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----- --json on every command that prints a result ----------------------------------------


def secrets_in(home: Path) -> set[str]:
    """The tokens in the token files these tests write (auth.json, moved.json)."""
    found = set()
    for path in (auth_file_path(home), home / "moved.json"):
        if path.exists():
            document = json.loads(path.read_text())
            found |= {document["access_token"], document.get("refresh_token") or ACCESS}
    return found


def _setup_login(server: FakeAnthropic, home: Path) -> dict[str, str]:
    write_auth_file(auth_file_path(home), *server.issue_tokens())
    return {}


def _setup_nothing(server: FakeAnthropic, home: Path) -> dict[str, str]:
    return {}


def _setup_move(server: FakeAnthropic, home: Path) -> dict[str, str]:
    _setup_login(server, home)
    return {"target": f"file://{home / 'moved.json'}"}


Setup = Callable[[FakeAnthropic, Path], dict[str, str]]
JSON_CASES: dict[str, tuple[Setup, tuple[str, ...], str, tuple[str, ...]]] = {
    # command: (setup, its arguments, standard input, keys the document must have)
    "status": (_setup_login, (), "", ("summary", "source")),
    "token": (_setup_login, (), "", ("token", "source", "expires_at")),
    "refresh": (_setup_login, (), "", ("refreshed", "source", "expires_at")),
    "save": (_setup_nothing, (), LOGIN, ("saved", "location", "chosen_by", "hint")),
    "logout": (_setup_login, ("--yes",), "", ("deleted", "location", "chosen_by")),
    "move": (
        _setup_move,
        ("--from", "~/.config/claude/auth.json", "--to", "{target}"),
        "",
        ("moved", "from", "to"),
    ),
}
# keep-fresh logs one JSON object per line: tests/test_command_stores.py runs it.


def test_every_command_but_completion_is_checked_for_json() -> None:
    assert set(COMMANDS) == {*JSON_CASES, "keep-fresh", "completion"}


@pytest.mark.parametrize("where", ["after", "before"])
@pytest.mark.parametrize("command", list(JSON_CASES))
def test_json_is_accepted_by_every_command_that_prints_a_result(
    command: str, where: str, oauth_env: FakeAnthropic, home: Path
) -> None:
    setup, arguments, stdin, keys = JSON_CASES[command]
    values = setup(oauth_env, home)
    before = secrets_in(home)
    argv = [argument.format(**values) for argument in arguments]
    argv = [command, *argv, "--json"] if where == "after" else ["--json", command, *argv]
    result = run(*argv, stdin=stdin)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(keys) <= set(document), document
    if command != "token":  # the one command whose job is to print the token
        for secret in {ACCESS, REFRESH, *before, *secrets_in(home)}:
            assert secret[:-4] not in result.stdout + result.stderr


def test_logout_json_says_when_there_was_nothing_to_delete(home: Path) -> None:
    result = run("logout", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "deleted": False,
        "location": str(auth_file_path(home)),
        "chosen_by": "default",
    }


def test_completion_prints_a_script_not_json() -> None:
    result = run("--json", "completion", "bash")
    assert result.returncode == 2 and "--json does not apply to completion" in result.stderr


# ----- plain words: no Python class or type names ------------------------------------------

CLASS_NAMES = {
    name
    for name in (*claude_oauth_auth.__all__, *claude_oauth_auth.stores.__all__)
    if name[0].isupper() and any(letter.isupper() for letter in name[1:])
}
PYTHON_TYPES = r"\b(int|float|str|bool|list|dict|NoneType)\b"
PYTHON_NAMES = re.compile(rf"\b({'|'.join(sorted(CLASS_NAMES))})\b|(not|JSON) {PYTHON_TYPES}")


def assert_plain(text: str) -> None:
    found = PYTHON_NAMES.search(text)
    assert found is None, f"a Python name ({found.group()}) in: {text}"


@pytest.mark.parametrize(
    "stdin",
    [
        json.dumps([ACCESS]),
        json.dumps({"access_token": 12345, "expires_in": 60}),
        json.dumps({"access_token": None, "expires_in": 60}),
        json.dumps({"access_token": ACCESS, "refresh_token": [REFRESH], "expires_in": 60}),
        json.dumps({"access_token": ACCESS, "token_url": {"x": 1}, "expires_in": 60}),
        "null",
    ],
    ids=["array", "number", "null", "array-field", "object-field", "null-document"],
)
def test_save_names_json_types_not_python_ones(stdin: str) -> None:
    result = run("save", stdin=stdin)
    assert result.returncode == 1 and "nothing was saved" in result.stderr
    assert_plain(result.stderr)


def test_a_keyring_without_a_backend_suggests_a_file_store_in_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("CLAUDE_TOKEN_STORE", "keyring:")
    saved = run("save", stdin=LOGIN)
    assert saved.returncode == 1 and "no OS secret store was found" in saved.stderr
    assert "a file:///PATH store" in saved.stderr
    status = run("status")
    for result in (saved, status, run("status", "--json"), run("logout", "--yes")):
        assert_plain(result.stdout + result.stderr)
