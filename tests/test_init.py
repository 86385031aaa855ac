"""The public surface: exactly __all__, every name importable, lazy about anthropic."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import claude_oauth_auth

SUBPACKAGES = {"stores", "cli", "lifecycle", "cascade"}  # documented, or folders by concern


@pytest.mark.parametrize("module", ["claude_oauth_auth", "claude_oauth_auth.stores"])
def test_all_names_resolve_and_nothing_else_is_public(module: str) -> None:
    """The module's real namespace (not dir(), which answers with __all__), in a fresh process
    after every public name was resolved: only __all__, plus documented subpackages."""
    code = (
        "import importlib, json\n"
        f"module = importlib.import_module({module!r})\n"
        "for name in module.__all__:\n"
        "    assert getattr(module, name) is not None, name\n"
        "print(json.dumps([name for name in vars(module) if not name.startswith('_')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    public = set(json.loads(result.stdout))
    exported = {name for name in importlib.import_module(module).__all__ if name[0] != "_"}
    assert public - SUBPACKAGES == exported
    assert sorted(dir(importlib.import_module(module))) == sorted(
        importlib.import_module(module).__all__
    )


def test_version() -> None:
    from importlib.metadata import version

    assert claude_oauth_auth.__version__ == version("claude-oauth-auth")


def test_error_tree() -> None:
    import anthropic

    from claude_oauth_auth import (
        ClaudeAuthError,
        NoCredentialsError,
        OAuthRefreshError,
        TokenFileError,
        TokenRefreshError,
    )

    for error in (NoCredentialsError, OAuthRefreshError, TokenFileError, TokenRefreshError):
        assert issubclass(error, ClaudeAuthError)
    assert issubclass(NoCredentialsError, anthropic.AuthenticationError)
    assert issubclass(OAuthRefreshError, anthropic.AuthenticationError)


def test_clients_are_lazy() -> None:
    code = (
        "import sys, claude_oauth_auth\n"
        "assert 'anthropic' not in sys.modules\n"
        "claude_oauth_auth.UnifiedAuthManager, claude_oauth_auth.OAuthTokenManager\n"
        "claude_oauth_auth.Quota, claude_oauth_auth.QuotaWindow\n"
        "assert 'anthropic' not in sys.modules\n"
        "import anthropic\n"
        "assert issubclass(claude_oauth_auth.ClaudeClient, anthropic.Anthropic)\n"
        "assert issubclass(claude_oauth_auth.AsyncClaudeClient, anthropic.AsyncAnthropic)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


FRAMEWORKS = ("anthropic", "langchain_anthropic", "langchain_core", "litellm", "pydantic_ai")


def test_integrations_import_no_framework() -> None:
    """Importing the package and its integrations module pulls in no SDK and no framework."""
    code = (
        "import sys, claude_oauth_auth, claude_oauth_auth.integrations as integrations\n"
        f"loaded = [name for name in {FRAMEWORKS!r} + ('instructor',) if name in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert sorted(dir(integrations)) == sorted(integrations.__all__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_missing_framework_names_its_extra() -> None:
    """Without the framework installed, using its helper says which extra to install."""
    code = (
        "import sys\n"
        "sys.modules['langchain_anthropic'] = None\n"  # as if it were not installed
        "from claude_oauth_auth import integrations\n"
        "try:\n"
        "    integrations.chat_anthropic\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Commands that work from here (no release on PyPI yet): the extra's own package, or this
    # clone (the test venv installs it editable) with the extra.
    assert "pip install 'langchain-anthropic<2,>=1.7.10'" in result.stdout
    assert f"pip install -e '{Path(__file__).parents[1]}[langchain]'" in result.stdout
    assert "pip install 'claude-oauth-auth[langchain]'" not in result.stdout


def test_core_and_dev_installs_pull_in_no_framework() -> None:
    """The frameworks come only with their own extras, never with the core install or [dev]."""
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]

    def pulled(lines: list[str]) -> set[str]:
        names: set[str] = set()
        for line in lines:
            requirement = Requirement(line)
            if requirement.name == project["name"]:
                for extra in requirement.extras:
                    names |= pulled(extras[extra])
            else:
                names.add(requirement.name.lower())
        return names

    frameworks = {
        "langchain": "langchain-anthropic",
        "litellm": "litellm",
        "pydantic-ai": "pydantic-ai-slim",
        "instructor": "instructor",
    }
    core_and_dev = pulled(project["dependencies"]) | pulled(extras["dev"])
    assert {"anthropic", "pytest"} <= core_and_dev
    assert not core_and_dev & set(frameworks.values())
    for extra, package in frameworks.items():
        assert pulled(extras[extra]) == {package}, extra


def test_every_public_class_and_its_own_init_say_what_they_are() -> None:
    import dataclasses
    import inspect

    import claude_oauth_auth.stores

    missing = []
    for module in (claude_oauth_auth, claude_oauth_auth.stores):
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.isclass(value):
                continue
            if not (value.__doc__ or "").strip():
                missing.append(name)
            init = value.__dict__.get("__init__")
            generated = dataclasses.is_dataclass(value) or init is None
            generated = generated or getattr(value, "_is_protocol", False)
            if not generated and not (init.__doc__ or "").strip():
                missing.append(f"{name}.__init__")
    assert missing == []
