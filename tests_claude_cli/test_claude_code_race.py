"""The real Claude Code and this library on one expired login: one refresh, nobody fails.

A small run of ``benchmarks/claude_code_race.py``: K ``claude -p`` processes (through a local
mitmproxy to the loopback fake) and M of ours (``ClaudeClient()``) start together on Claude
Code's expired ``~/.claude/.credentials.json``, once per round, our release moved from before
Claude's refresh to after it across the rounds.

Needs the Claude Code binary (the npm package ``@anthropic-ai/claude-code-linux-x64``, which
``.ci/run`` installs into ``.claude-cli/``, or ``CLAUDE_CODE_BINARY``) and ``mitmdump`` (in
``.venv-claude-cli``, or ``MITMDUMP``). Without them the test is skipped, except under
``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from claude_code_race import Race, find_claude, find_mitmdump

OFFSETS = (-0.5, -0.25, 0.0, 0.25, 0.5)  # our release after Claude's usual token POST, s


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("claude_count", "our_count"), [(2, 2)])
def test_one_refresh_between_claude_code_and_us(claude_count: int, our_count: int) -> None:
    claude, mitmdump = find_claude(), find_mitmdump()
    if claude is None or mitmdump is None:
        reason = (
            f"needs the Claude Code binary (found: {claude}) and mitmdump (found: {mitmdump}); "
            "see .ci/run for how CI installs them"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)

    with Race(claude, mitmdump, latency=0.5) as race:
        rounds = [race.run_round(claude_count, our_count, offset) for offset in OFFSETS]

    report = "\n".join(
        [outcome.line(number) for number, outcome in enumerate(rounds, 1)]
        + [failure for outcome in rounds for failure in outcome.claude_failures]
        + [failure for outcome in rounds for failure in outcome.our_failures]
    )
    assert [outcome.token_posts for outcome in rounds] == [1] * len(rounds), report
    assert sum(outcome.invalid_grants for outcome in rounds) == 0, report
    assert not any(outcome.claude_failures or outcome.our_failures for outcome in rounds), report
    assert all(outcome.login_alive for outcome in rounds), report
