"""Zero-configuration Claude API clients with OAuth token management.

Importing this package is cheap: nothing here imports ``anthropic`` until a client class
or an SDK-derived error class is first used.
"""

import typing as _typing

from . import _lazy
from ._version import __version__

if _typing.TYPE_CHECKING:
    from ._client import AsyncClaudeClient, ClaudeClient
    from ._errors import (
        ClaudeAuthError,
        StoreConflict,
        StoreError,
        TokenFileError,
        TokenRefreshError,
    )
    from ._quota import Quota, QuotaWindow
    from ._sdk_errors import NoCredentialsError, OAuthRefreshError
    from ._status import get_auth_status
    from .cascade._cascade import UnifiedAuthManager
    from .cascade._sources import Credential, SourceReport
    from .lifecycle._manager import OAuthTokenManager

__all__ = [
    "AsyncClaudeClient",
    "ClaudeAuthError",
    "ClaudeClient",
    "Credential",
    "NoCredentialsError",
    "OAuthRefreshError",
    "OAuthTokenManager",
    "Quota",
    "QuotaWindow",
    "SourceReport",
    "StoreConflict",
    "StoreError",
    "TokenFileError",
    "TokenRefreshError",
    "UnifiedAuthManager",
    "__version__",
    "get_auth_status",
]

_LAZY = {
    "AsyncClaudeClient": "._client",
    "ClaudeClient": "._client",
    "ClaudeAuthError": "._errors",
    "StoreConflict": "._errors",
    "StoreError": "._errors",
    "TokenFileError": "._errors",
    "TokenRefreshError": "._errors",
    "NoCredentialsError": "._sdk_errors",
    "OAuthRefreshError": "._sdk_errors",
    "OAuthTokenManager": ".lifecycle._manager",
    "UnifiedAuthManager": ".cascade._cascade",
    "Credential": ".cascade._sources",
    "SourceReport": ".cascade._sources",
    "Quota": "._quota",
    "QuotaWindow": "._quota",
    "get_auth_status": "._status",
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, __all__)
