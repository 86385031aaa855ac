"""Zero-configuration Claude API clients with OAuth token management.

Importing this package is cheap: nothing here imports ``anthropic`` until a client class
or an SDK-derived error class is first used.
"""

import typing as _typing

from . import _lazy
from ._version import __version__

if _typing.TYPE_CHECKING:
    from ._cascade import UnifiedAuthManager
    from ._client import AsyncClaudeClient, ClaudeClient
    from ._errors import (
        ClaudeAuthError,
        StoreConflict,
        StoreError,
        TokenFileError,
        TokenRefreshError,
    )
    from ._manager import OAuthTokenManager
    from ._quota import Quota, QuotaWindow
    from ._sdk_errors import NoCredentialsError, OAuthRefreshError
    from ._sources import Credential, SourceReport
    from ._status import get_auth_status

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
    "OAuthTokenManager": "._manager",
    "UnifiedAuthManager": "._cascade",
    "Quota": "._quota",
    "QuotaWindow": "._quota",
    "Credential": "._sources",
    "SourceReport": "._sources",
    "get_auth_status": "._status",
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, __all__)
