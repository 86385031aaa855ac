"""The public surface: exactly __all__, every name importable, lazy about anthropic."""

from __future__ import annotations

import subprocess
import sys

import claude_oauth_auth


def test_all_names_resolve_and_nothing_else_is_public() -> None:
    for name in claude_oauth_auth.__all__:
        assert getattr(claude_oauth_auth, name) is not None
    public = {name for name in dir(claude_oauth_auth) if not name.startswith("_")}
    assert public == {name for name in claude_oauth_auth.__all__ if not name.startswith("_")}


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
