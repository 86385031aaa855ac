"""Our clients' constructors and ``copy()`` spell out the installed SDK's arguments, with its
types and defaults; this fails when a new SDK release adds, drops or retypes one."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from claude_oauth_auth import AsyncClaudeClient, ClaudeClient, UnifiedAuthManager

# What our constructors add to the SDK's: the credential arguments of UnifiedAuthManager.
OURS_ONLY = {
    "oauth_manager",
    "auth_manager",
    "token_file",
    "store",
    "sources",
    "refresh_threshold",
    "client_id",
    "token_url",
    "clock",
}
# The SDK makes these keyword-only; ours also take them by position, as they always have.
POSITIONAL_TOO = {"api_key", "auth_token"}

PAIRS = [
    pytest.param(ClaudeClient.__init__, anthropic.Anthropic.__init__, id="ClaudeClient"),
    pytest.param(AsyncClaudeClient.__init__, anthropic.AsyncAnthropic.__init__, id="Async"),
    pytest.param(ClaudeClient.copy, anthropic.Anthropic.copy, id="ClaudeClient.copy"),
    pytest.param(AsyncClaudeClient.copy, anthropic.AsyncAnthropic.copy, id="Async.copy"),
]


def parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
    }


def resolved(function: Callable[..., Any], annotation: Any) -> Any:
    """An annotation as a comparable value: evaluated in its module, unions as sets, and
    ``typing.Mapping`` the same as ``collections.abc.Mapping``."""
    if isinstance(annotation, str):
        annotation = eval(annotation, function.__globals__)
    return normal(annotation)


def normal(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return frozenset(normal(argument) for argument in typing.get_args(hint))
    if isinstance(hint, list):  # Callable[[arguments], result]
        return tuple(normal(argument) for argument in hint)
    if origin is None:
        return hint
    return (origin, tuple(normal(argument) for argument in typing.get_args(hint)))


@pytest.mark.parametrize(("ours", "sdk"), PAIRS)
def test_every_sdk_argument_with_the_sdk_type_and_default(
    ours: Callable[..., Any], sdk: Callable[..., Any]
) -> None:
    mine, theirs = parameters(ours), parameters(sdk)
    missing = sorted(set(theirs) - set(mine))
    assert not missing, f"{ours.__qualname__} lacks the SDK's {missing}"
    for name, expected in theirs.items():
        actual = mine[name]
        where = f"{ours.__qualname__}({name}=)"
        if name in POSITIONAL_TOO and ours.__name__ == "__init__":
            assert actual.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, where
        else:
            assert actual.kind is expected.kind, where
        assert actual.default is expected.default or actual.default == expected.default, where
        assert resolved(ours, actual.annotation) == resolved(sdk, expected.annotation), where


@pytest.mark.parametrize(("ours", "sdk"), PAIRS)
def test_nothing_beyond_the_sdk_but_our_credential_arguments(
    ours: Callable[..., Any], sdk: Callable[..., Any]
) -> None:
    extra = set(parameters(ours)) - set(parameters(sdk))
    allowed = OURS_ONLY if ours.__name__ == "__init__" else set()
    assert extra == allowed


@pytest.mark.parametrize("client", [ClaudeClient, AsyncClaudeClient])
def test_our_credential_arguments_are_the_managers(client: type[Any]) -> None:
    """Every credential argument of UnifiedAuthManager can be given to a client, same type."""
    manager = parameters(UnifiedAuthManager.__init__)
    mine = parameters(client.__init__)
    # credentials= and base_url= are the SDK's arguments, typed as the SDK types them.
    for name in set(manager) - {"credentials", "base_url"}:
        assert name in mine, name
        assert resolved(client.__init__, mine[name].annotation) == resolved(
            UnifiedAuthManager.__init__, manager[name].annotation
        ), name


@pytest.mark.parametrize("client", [ClaudeClient, AsyncClaudeClient])
def test_the_reference_shows_the_sdk_base_and_documents_init(client: type[Any]) -> None:
    assert client.__bases__ == (client.__mro__[1],)
    assert client.__mro__[1] in (anthropic.Anthropic, anthropic.AsyncAnthropic)
    assert client.with_options is client.copy
    assert "Args:" in (ClaudeClient.__init__.__doc__ or "")
    assert client.__init__.__doc__ and client.copy.__doc__ and client.__doc__
