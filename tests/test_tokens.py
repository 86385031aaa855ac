"""Token values, masking and both file shapes."""

from __future__ import annotations

import pytest

from claude_oauth_auth._tokens import (
    TokenFormatError,
    TokenSet,
    mask,
    parse_token_document,
    render_token_document,
)


def test_mask_shows_at_most_four_characters() -> None:
    assert mask("sk-ant-oat01-abcdefghWXYZ") == "...WXYZ"
    assert mask("short") == "****"
    assert mask(None) == "<none>"


def test_token_set_repr_is_masked() -> None:
    tokens = TokenSet("sk-ant-oat01-" + "x" * 30 + "AAAA", "sk-ant-ort01-" + "y" * 30 + "BBBB", 5.0)
    text = repr(tokens)
    assert "x" * 12 not in text and "y" * 12 not in text
    assert "AAAA" in text and "BBBB" in text


def test_ours_round_trip_keeps_other_keys() -> None:
    document = {"access_token": "a", "refresh_token": "r", "token_expiry": 100, "note": "keep"}
    tokens, shape = parse_token_document(document)
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at, shape) == (
        "a",
        "r",
        100.0,
        "ours",
    )
    rendered = render_token_document(TokenSet("a2", "r2", 200.5), shape, document)
    assert rendered == {
        "access_token": "a2",
        "refresh_token": "r2",
        "token_expiry": 200,
        "note": "keep",
    }


def test_claude_code_round_trip_uses_milliseconds_and_keeps_other_keys() -> None:
    document = {
        "claudeAiOauth": {
            "accessToken": "a",
            "refreshToken": "r",
            "expiresAt": 1_700_000_000_000,
            "scopes": ["user:inference"],
            "subscriptionType": "max",
        },
        "mcpOAuth": {"k": "v"},
    }
    tokens, shape = parse_token_document(document)
    assert shape == "claude_code" and tokens.expires_at == 1_700_000_000.0
    assert tokens.scopes == ("user:inference",)
    rendered = render_token_document(TokenSet("a2", None, 1_800_000_000.0), shape, document)
    inner = rendered["claudeAiOauth"]
    assert inner["accessToken"] == "a2"
    assert inner["refreshToken"] == "r"  # none came back: the old one stays
    assert inner["expiresAt"] == 1_800_000_000_000
    assert inner["subscriptionType"] == "max" and rendered["mcpOAuth"] == {"k": "v"}
    assert document["claudeAiOauth"]["accessToken"] == "a"  # the input is not modified


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "JSON array"),
        ("x", "JSON string"),
        (None, "JSON null"),
        ({}, 'missing "access_token"'),
        ({"access_token": ""}, "is empty"),
        ({"access_token": 5}, "must be a string"),
        ({"access_token": "a", "token_expiry": "soon"}, "must be a number"),
        ({"access_token": "a", "token_expiry": True}, "must be a number"),
        ({"access_token": "a", "token_expiry": -1}, "non-negative"),
        ({"access_token": "a", "token_expiry": float("nan")}, "finite"),
        ({"access_token": "a", "refresh_token": 3}, "must be a string"),
        ({"access_token": "a", "scopes": [1]}, "list of strings"),
        ({"claudeAiOauth": []}, "must be an object"),
        ({"claudeAiOauth": {"accessToken": "a", "expiresAt": "x"}}, "must be a number"),
    ],
)
def test_bad_documents_say_what_is_wrong(document: object, reason: str) -> None:
    with pytest.raises(TokenFormatError, match=reason):
        parse_token_document(document)


def test_seconds_left() -> None:
    assert TokenSet("a", None, None).seconds_left() == float("inf")
    assert TokenSet("a", None, 100.0).seconds_left(now=40.0) == 60.0
