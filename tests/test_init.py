"""The public surface: exactly __all__, every name importable, lazy about anthropic."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import claude_oauth_auth

SUBPACKAGES = {"stores", "cli"}  # documented modules that appear once imported


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
        "assert 'anthropic' not in sys.modules\n"
        "import anthropic\n"
        "assert issubclass(claude_oauth_auth.ClaudeClient, anthropic.Anthropic)\n"
        "assert issubclass(claude_oauth_auth.AsyncClaudeClient, anthropic.AsyncAnthropic)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
