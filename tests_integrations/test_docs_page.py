"""Every snippet of docs/integrations.md runs, with the real frameworks (tests/test_docs.py's
runner: in the default suite the frameworks are absent and these blocks are skipped)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import TESTS
from fakeapi import FakeAnthropic

from claude_oauth_auth.integrations import _litellm

_spec = importlib.util.spec_from_file_location("_docs_tests", TESTS / "test_docs.py")
assert _spec is not None and _spec.loader is not None
_docs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _docs  # its dataclasses look their module up
_spec.loader.exec_module(_docs)

GROUPS = [group for group in _docs.GROUPS if group[0].path.name == "integrations.md"]


def test_the_page_has_a_snippet_per_framework() -> None:
    code = "\n".join(block.code for group in GROUPS for block in group)
    for needle in ("pydantic_ai", "instructor", "chat_anthropic", "litellm"):
        assert needle in code, needle
    assert all(not group[0].skip for group in GROUPS)


@pytest.mark.parametrize("group", GROUPS, ids=[group[0].where for group in GROUPS])
def test_snippet(
    group: list[object],
    oauth_env: FakeAnthropic,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_litellm, "_default", None)  # each snippet starts a new "process"
    _docs.test_doc_block(group, oauth_env, home, tmp_path)
    assert oauth_env.api_requests_count() >= 1
