"""Token stores: where an OAuth token set lives (a file, Claude Code's store, the OS keyring…).

Importing this module imports no backend library (``keyring``, ``redis``) and not ``anthropic``:
each store class is loaded when first used.
"""

import typing as _typing

from .. import _lazy

if _typing.TYPE_CHECKING:
    from .._errors import StoreConflict, StoreError
    from .._tokens import Generation, TokenSet
    from ._base import TokenStore
    from ._claude_code import ClaudeCodeStore
    from ._file import FileStore
    from ._keyring import KeyringStore
    from ._redis import RedisStore
    from ._sdk_profile import SdkProfileStore
    from ._url import store_from_url

__all__ = [
    "ClaudeCodeStore",
    "FileStore",
    "Generation",
    "KeyringStore",
    "RedisStore",
    "SdkProfileStore",
    "StoreConflict",
    "StoreError",
    "TokenSet",
    "TokenStore",
    "store_from_url",
]

_LAZY = {
    "TokenSet": "claude_oauth_auth._tokens",
    "Generation": "claude_oauth_auth._tokens",
    "StoreConflict": "claude_oauth_auth._errors",
    "StoreError": "claude_oauth_auth._errors",
    "TokenStore": "claude_oauth_auth.stores._base",
    "ClaudeCodeStore": "claude_oauth_auth.stores._claude_code",
    "FileStore": "claude_oauth_auth.stores._file",
    "KeyringStore": "claude_oauth_auth.stores._keyring",
    "RedisStore": "claude_oauth_auth.stores._redis",
    "SdkProfileStore": "claude_oauth_auth.stores._sdk_profile",
    "store_from_url": "claude_oauth_auth.stores._url",
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, _LAZY, __all__)
