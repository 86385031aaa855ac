"""LiteLLM: a fresh credential for every call, and one retry when the API refuses it.

LiteLLM takes ``api_key=`` per call and already sends an Anthropic OAuth access token
(``sk-ant-oat…``) as ``Authorization: Bearer`` with the ``oauth-2025-04-20`` beta flag and no
``x-api-key``. What it cannot do is refresh that token: so ask ``LiteLLMAuth`` for the keyword
arguments of each call (``litellm_kwargs``), or let ``litellm_completion`` /
``litellm_acompletion`` make the call, refresh once on a 401 and fall back to an API key the way
``ClaudeClient`` does.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from .._errors import StoreError, TokenRefreshError
from .._sdk_errors import OAuthRefreshError
from ..cascade._cascade import UnifiedAuthManager
from ..cascade._sources import SOURCE_NAMES, Credential
from ._extras import require

__all__ = [
    "OAUTH_TOKEN_PREFIX",
    "LiteLLMAuth",
    "litellm_acompletion",
    "litellm_completion",
    "litellm_kwargs",
]

OAUTH_BETA = "oauth-2025-04-20"
OAUTH_TOKEN_PREFIX = "sk-ant-oat"
"""LiteLLM sends a token as a bearer (not as ``x-api-key``) only when it starts with this."""
CLAUDE_CODE_ONLY = "only authorized for use with claude code"
MAX_SWITCHES = len(SOURCE_NAMES) + 1


@dataclass(frozen=True)
class _Sent:
    """The credential one call carried: the OAuth token (to refresh on a 401), or a key."""

    oauth_token: str | None
    kwargs: dict[str, Any]


class LiteLLMAuth:
    """Per-call LiteLLM credentials from our cascade (one ``UnifiedAuthManager``)."""

    def __init__(self, auth_manager: UnifiedAuthManager | None = None) -> None:
        self.auth_manager = auth_manager if auth_manager is not None else UnifiedAuthManager()

    def __repr__(self) -> str:
        return f"LiteLLMAuth({self.auth_manager!r})"

    # ----- the keyword arguments of one call ----------------------------------------------------

    def kwargs(self, **call: Any) -> dict[str, Any]:
        """``call`` plus a credential that is valid now (refreshing the OAuth token if due)."""
        return _merge(call, self._credential(rejected=None).kwargs)

    async def akwargs(self, **call: Any) -> dict[str, Any]:
        """Like ``kwargs``; a refresh runs in a worker thread, never on the event loop."""
        return _merge(call, (await self._acredential(rejected=None)).kwargs)

    # ----- whole calls, with one retry ---------------------------------------------------------

    def completion(self, **call: Any) -> Any:
        """``litellm.completion(**call)``; a refused OAuth token is refreshed (or replaced by the
        fallback API key) and the call sent once more."""
        litellm = require("litellm", "litellm")
        sent = self._credential(rejected=None)
        try:
            return litellm.completion(**_merge(call, sent.kwargs))
        except Exception as error:
            retry = self._retry_credential(error, sent, litellm)
            if retry is None:
                raise
        return litellm.completion(**_merge(call, retry.kwargs))

    async def acompletion(self, **call: Any) -> Any:
        """``await litellm.acompletion(**call)`` with the same retry as ``completion``."""
        litellm = require("litellm", "litellm")
        sent = await self._acredential(rejected=None)
        try:
            return await litellm.acompletion(**_merge(call, sent.kwargs))
        except Exception as error:
            retry = await self._aretry_credential(error, sent, litellm)
            if retry is None:
                raise
        return await litellm.acompletion(**_merge(call, retry.kwargs))

    # ----- policy ------------------------------------------------------------------------------

    def _credential(self, *, rejected: str | None) -> _Sent:
        """The credential for a call: OAuth while it works, else the next usable source."""
        failover = self.auth_manager.failover
        # After an outage, one call at a time tries OAuth again.
        if rejected is None and failover.probe_due() and failover.start_probe():
            try:
                token = _token(failover.primary_source, None)
            except Exception as error:
                failover.finish_probe(error)
            else:
                failover.finish_probe(None)
                return _oauth(token)
        for _ in range(MAX_SWITCHES):
            credential = failover.active_credential
            if credential.kind != "oauth":
                return _static(credential.kind, credential.secret or "")
            try:
                return _oauth(_token(failover.active_token_source, rejected))
            except (OAuthRefreshError, TokenRefreshError, StoreError) as error:
                self._fail_over(credential, error)
            rejected = None
        raise RuntimeError("no credential settled after moving down the whole cascade")

    async def _acredential(self, *, rejected: str | None) -> _Sent:
        failover = self.auth_manager.failover
        if rejected is None and failover.probe_due() and failover.start_probe():
            try:
                token = await _atoken(failover.primary_source, None)
            except Exception as error:
                failover.finish_probe(error)
            else:
                failover.finish_probe(None)
                return _oauth(token)
        for _ in range(MAX_SWITCHES):
            credential = failover.active_credential
            if credential.kind != "oauth":
                return _static(credential.kind, credential.secret or "")
            try:
                return _oauth(await _atoken(failover.active_token_source, rejected))
            except (OAuthRefreshError, TokenRefreshError, StoreError) as error:
                self._fail_over(credential, error)
            rejected = None
        raise RuntimeError("no credential settled after moving down the whole cascade")

    def _fail_over(self, failed: Credential, error: Exception) -> None:
        """``failed`` stopped working: move down the cascade, or raise ``error``.

        A refused refresh is final; a temporary failure (endpoint or store) is retried later,
        one call at a time, as ``ClaudeClient`` does.
        """
        temporary = not isinstance(error, OAuthRefreshError)
        retry_after = getattr(error, "retry_after", None)
        following = self.auth_manager.failover.fail_over(
            failed, str(error), temporary=temporary, retry_after=retry_after
        )
        if following is None:
            raise error

    def _retry_credential(self, error: Exception, sent: _Sent, litellm: Any) -> _Sent | None:
        """The credential to send again after ``error``, or None to let the error stand."""
        reason = _refusal(error, sent, litellm)
        retry = None
        if reason == "refused":
            retry = self._credential(rejected=sent.oauth_token)
        elif reason == "claude_code_only":
            retry = self._switch()
        return None if retry is None or retry.kwargs == sent.kwargs else retry

    async def _aretry_credential(self, error: Exception, sent: _Sent, litellm: Any) -> _Sent | None:
        reason = _refusal(error, sent, litellm)
        retry = None
        if reason == "refused":
            retry = await self._acredential(rejected=sent.oauth_token)
        elif reason == "claude_code_only":
            retry = self._switch()
        return None if retry is None or retry.kwargs == sent.kwargs else retry

    def _switch(self) -> _Sent | None:
        failover = self.auth_manager.failover
        following = failover.fail_over(
            failover.active_credential,
            "the API answered that this OAuth credential is only authorized for use with "
            "Claude Code",
        )
        return None if following is None else self._credential(rejected=None)


def _refusal(error: Exception, sent: _Sent, litellm: Any) -> str | None:
    """Why the API refused an OAuth call (``refused`` or ``claude_code_only``), else None."""
    if sent.oauth_token is None:
        return None
    if isinstance(error, litellm.AuthenticationError):
        return "refused"
    if isinstance(error, litellm.BadRequestError) and CLAUDE_CODE_ONLY in str(error).lower():
        return "claude_code_only"
    return None


def _token(source: Any, rejected: str | None) -> str:
    """A valid access token from our token managers or any SDK credentials provider."""
    if hasattr(source, "token"):
        text: str = source.get_valid_token(rejected=rejected)
        return text
    return str(source(force_refresh=rejected is not None).token)


async def _atoken(source: Any, rejected: str | None) -> str:
    if hasattr(source, "async_get_valid_token"):
        text: str = await source.async_get_valid_token(rejected=rejected)
        return text
    import anyio.to_thread

    result = await anyio.to_thread.run_sync(lambda: source(force_refresh=rejected is not None))
    if inspect.isawaitable(result):
        result = await result
    return str(result.token)


def _oauth(token: str) -> _Sent:
    if not token.startswith(OAUTH_TOKEN_PREFIX):
        raise ValueError(
            f"LiteLLM sends only tokens starting with {OAUTH_TOKEN_PREFIX!r} as OAuth bearer "
            "tokens; this credential would go out as x-api-key. Use ClaudeClient for it, or "
            "pass an API key"
        )
    return _Sent(token, {"api_key": token, "extra_headers": {"anthropic-beta": OAUTH_BETA}})


def _static(kind: str, secret: str) -> _Sent:
    if kind == "api_key":
        return _Sent(None, {"api_key": secret})
    # A static bearer token (ANTHROPIC_AUTH_TOKEN): LiteLLM sends it as a bearer only when it
    # has the OAuth prefix (then it is an OAuth token without a refresh token).
    sent = _oauth(secret)
    return _Sent(None, sent.kwargs)


def _merge(call: dict[str, Any], credential: dict[str, Any]) -> dict[str, Any]:
    """The call's own arguments with the credential's; ``anthropic-beta`` flags are joined."""
    merged = {**call, **credential}
    headers = {**(call.get("extra_headers") or {})}
    for name, value in (credential.get("extra_headers") or {}).items():
        existing = next((key for key in headers if key.lower() == name.lower()), None)
        if existing is not None and name.lower() == "anthropic-beta":
            flags = [f.strip() for f in f"{headers.pop(existing)},{value}".split(",") if f.strip()]
            headers[name] = ",".join(dict.fromkeys(flags))
        else:
            headers[name] = value
    if headers:
        merged["extra_headers"] = headers
    return merged


_default: LiteLLMAuth | None = None
_default_lock = threading.Lock()


def _shared(auth: LiteLLMAuth | None) -> LiteLLMAuth:
    """``auth``, or one ``LiteLLMAuth`` per process (so one token manager, one refresh)."""
    global _default
    if auth is not None:
        return auth
    with _default_lock:
        if _default is None:
            _default = LiteLLMAuth()
        return _default


def litellm_kwargs(*, auth: LiteLLMAuth | None = None, **call: Any) -> dict[str, Any]:
    """``call`` plus a credential valid now: ``litellm.completion(**litellm_kwargs(model=...))``.

    Without ``auth=`` the process shares one ``LiteLLMAuth()`` (the whole cascade, found once).
    """
    return _shared(auth).kwargs(**call)


def litellm_completion(*, auth: LiteLLMAuth | None = None, **call: Any) -> Any:
    """``litellm.completion`` with a fresh credential and one retry after a refusal."""
    return _shared(auth).completion(**call)


def litellm_acompletion(*, auth: LiteLLMAuth | None = None, **call: Any) -> Awaitable[Any]:
    """``litellm.acompletion`` with a fresh credential and one retry after a refusal."""
    return _shared(auth).acompletion(**call)
