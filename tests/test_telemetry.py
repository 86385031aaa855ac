"""OpenTelemetry hooks (issue 24, item 2) at no cost: nothing of OpenTelemetry is imported with
the package, and without it installed a manager refreshes as before. The instruments' values
are checked with the SDK in ``tests_observability``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fakeapi import FakeAnthropic
from helpers import auth_file_path, write_auth_file

WITHOUT_OPENTELEMETRY = """
import sys
sys.modules["opentelemetry"] = None  # as if it were not installed
from claude_oauth_auth import OAuthTokenManager, _telemetry
manager = OAuthTokenManager(token_file=sys.argv[1])
assert manager.get_valid_token() != sys.argv[2]  # refreshed
assert _telemetry.active() is None
print(sorted(name for name in sys.modules if name.startswith("opentelemetry.")))
"""


def test_importing_the_package_imports_no_opentelemetry() -> None:
    code = (
        "import sys, claude_oauth_auth\n"
        "claude_oauth_auth.OAuthTokenManager, claude_oauth_auth.UnifiedAuthManager\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'anthropic'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_without_opentelemetry_a_manager_refreshes_and_imports_none_of_it(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY, str(path), access],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
    assert oauth_env.token_posts == 1


def test_with_the_api_alone_a_manager_has_its_instruments_and_refreshes(
    oauth_env: FakeAnthropic, home: Path
) -> None:
    """anthropic requires opentelemetry-api: without an SDK, the instruments are no-ops."""
    code = (
        "import sys\n"
        "from claude_oauth_auth import OAuthTokenManager, _telemetry\n"
        "manager = OAuthTokenManager(token_file=sys.argv[1])\n"
        "assert manager.get_valid_token() != sys.argv[2]\n"
        "print(_telemetry.active() is not None)\n"
    )
    access, refresh = oauth_env.issue_tokens(expires_in=-5)
    path = write_auth_file(auth_file_path(home), access, refresh, expires_in=-5)
    result = subprocess.run(
        [sys.executable, "-c", code, str(path), access], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr
