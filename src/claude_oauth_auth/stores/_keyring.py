"""KeyringStore: the token set as one JSON secret in the OS secret store, via ``keyring``.

Linux Secret Service (GNOME Keyring, KWallet, KeePassXC), macOS Keychain, Windows Credential
Manager. ``keyring`` is imported on first use, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import filelock

from .._errors import StoreConflict, StoreError
from .._install import install_hint
from .._tokens import TokenFormatError, TokenSet, mask, parse_token_document
from .._tokens import render_token_document as render
from ._base import DEFAULT_LOCK_TIMEOUT, Version

__all__ = ["KeyringStore"]

_NO_BACKEND_FIX = (
    "start an OS secret store (on Linux GNOME Keyring or KeePassXC with its Secret Service "
    "enabled, in a session where DBUS_SESSION_BUS_ADDRESS is set), or keep the tokens in a "
    "token file instead (a file:///PATH store)"
)
_DBUS_MODULES = frozenset({"secretstorage", "jeepney", "dbus", "_dbus_bindings"})
# Modules whose exceptions mean "the secret store failed", not "our code is wrong".
_BACKEND_MODULES = frozenset(
    {"keyring", "keyrings", "secretstorage", "jeepney", "dbus", "_dbus_bindings", "win32ctypes"}
)


class KeyringStore:
    """One JSON secret (our token-file shape) under ``service``/``username`` in the OS keyring.

    ``version()`` is the SHA-256 of the stored secret. The keyring has no locking, so
    ``lock()`` is a file lock in the user's config folder, shared by every process that uses
    the same service and username. ``save`` is compare-and-set only for writers that hold it.
    """

    # One get_password through the Linux Secret Service costs about 20 ms (a new D-Bus
    # connection and a Diffie-Hellman session per call; measured against gnome-keyring 42),
    # far above the ~50 µs a file stat costs, so rotations made elsewhere are looked for
    # every 5 s rather than every second.
    poll_interval: float | None = 5.0

    def __init__(
        self, service: str = "claude-oauth-auth", username: str = "default", *, backend: str = ""
    ) -> None:
        """The OS keyring entry ``service``/``username`` (needs the ``[keyring]`` extra).

        ``backend``: a keyring backend class to use, by dotted name (as
        ``PYTHON_KEYRING_BACKEND`` takes it); else keyring's own choice, which must not be a
        plain-file backend (keyrings.alt) unless chosen on purpose.
        """
        if not service or not username:
            raise ValueError("KeyringStore needs a non-empty service and username")
        self.service = service
        self.username = username
        self.backend = backend

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend else ""
        return f"KeyringStore(service={self.service!r}, username={self.username!r}{backend})"

    @property
    def location(self) -> str:
        return f"keyring://{self.service}/{self.username}"

    @property
    def lock_path(self) -> Path:
        """The lock file that serialises writers of this secret."""
        name = f"keyring-{_safe(self.service)}-{_safe(self.username)}.lock"
        return _config_folder() / name

    @property
    def writable(self) -> bool:
        """False when keyring is missing or has no real backend (a save would fail or vanish),
        or only a plain-file one nobody chose."""
        try:
            return _can_store(self._backend())
        except Exception:
            return False

    def version(self) -> Version:
        return _digest(self._get())

    def load(self) -> TokenSet | None:
        secret = self._get()
        if secret is None:
            return None
        return self._parse(secret)[0]

    def save(self, tokens: TokenSet, *, expected_version: Version) -> None:
        current = self._get()
        if _digest(current) != expected_version:
            raise StoreConflict(self.location)
        previous: dict[str, Any] | None = None
        if current is not None:
            with contextlib.suppress(StoreError):  # an unusable secret is simply replaced
                previous = self._parse(current)[1]
        secret = json.dumps(render(tokens, "ours", previous))
        backend = self._backend()
        if not _can_store(backend):
            self._fail(None, "the keyring has no backend that can store a secret", _NO_BACKEND_FIX)
        try:
            backend.set_password(self.service, self.username, secret)
        except Exception as error:
            self._backend_error(error, "store the tokens in", (secret, *_secrets_of(tokens)))

    @contextlib.contextmanager
    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        path = self.lock_path
        try:
            _make_private_folder(path.parent)
            lock = filelock.FileLock(path, timeout=timeout, mode=0o600)
            lock.acquire()
        except filelock.Timeout:
            raise StoreError(
                self.location,
                f"timed out after {timeout:g} s waiting for the lock {path}",
                "another process is updating these tokens; retry when it has finished",
            ) from None
        except OSError as error:
            raise StoreError(
                self.location, f"cannot create the lock file {path} ({error.strerror})"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def delete(self) -> None:
        backend = self._backend()
        import keyring.errors

        try:
            backend.delete_password(self.service, self.username)
        except keyring.errors.PasswordDeleteError:
            if self._get() is not None:  # not "not found": it is still there
                self._fail(None, "the keyring refused to delete the secret", None)
        except Exception as error:
            self._backend_error(error, "delete the tokens from", ())

    # ----- the keyring library ------------------------------------------------------------

    def _require_keyring(self) -> None:
        try:
            import keyring.errors  # noqa: F401  (imports keyring itself too)
        except ImportError:
            self._fail(None, "the keyring library is not installed", install_hint("keyring"))

    def _backend(self) -> Any:
        """The keyring backend to use: the one named, else keyring's choice, refusing a
        plain-file backend (keyrings.alt) that nobody chose on purpose."""
        self._require_keyring()
        import keyring
        import keyring.core

        try:
            if self.backend:
                return keyring.core.load_keyring(self.backend)
            chosen = keyring.get_keyring()
            on_purpose = bool(os.environ.get("PYTHON_KEYRING_BACKEND")) or bool(
                keyring.core.load_config()
            )
        except Exception as error:
            self._backend_error(error, "open", ())
        insecure = _insecure_backend(chosen)
        if insecure is not None and not on_purpose:
            self._fail(
                None,
                f"the only keyring backend here is {insecure}, which keeps secrets in a plain "
                "file; it is not used unless you choose it",
                f"{_NO_BACKEND_FIX}; or choose that backend on purpose with "
                f"PYTHON_KEYRING_BACKEND={_dotted(chosen)} or keyring:?backend={_dotted(chosen)}",
            )
        return chosen

    def _get(self) -> str | None:
        backend = self._backend()
        try:
            secret = backend.get_password(self.service, self.username)
        except Exception as error:
            self._backend_error(error, "read the tokens from", ())
        if secret is not None and not isinstance(secret, str):
            self._fail(None, "the keyring returned a secret that is not text", None)
        return secret

    def _parse(self, secret: str) -> tuple[TokenSet, dict[str, Any]]:
        try:
            document = json.loads(secret)
        except ValueError:
            self._fail(None, "the stored secret is not JSON", _REPLACE_FIX)
        try:
            tokens, shape = parse_token_document(document)
        except TokenFormatError as error:
            self._fail(None, f"the stored secret is not a token set ({error})", _REPLACE_FIX)
        if shape != "ours":
            self._fail(
                None,
                "the stored secret is Claude Code's credential, not a claude-oauth-auth token set",
                "leave Claude Code's credentials where Claude Code keeps them (claude-oauth-auth "
                "reads them there), and save a login of your own to this store",
            )
        return tokens, document

    def _backend_error(self, error: Exception, action: str, secrets: tuple[str, ...]) -> NoReturn:
        """Raise a StoreError for a secret-store failure; re-raise anything else unchanged."""
        if not _is_backend_error(error):
            raise error
        import keyring.errors

        backend = _backend_name(self.backend)
        raw = f"{type(error).__name__}: {error}".rstrip(": ")
        detail = _scrub(raw, secrets)
        if isinstance(error, keyring.errors.NoKeyringError):
            reason = "no OS secret store was found (keyring has no usable backend)"
            fix: str | None = _NO_BACKEND_FIX
        elif isinstance(error, keyring.errors.KeyringLocked) or "Locked" in type(error).__name__:
            reason = f"the {backend} is locked ({detail})"
            fix = "unlock your login keyring (log in to the desktop session) and retry"
        elif _is_dbus_error(error):
            reason = f"cannot {action} the {backend} over D-Bus ({detail})"
            fix = (
                "make sure a Secret Service (GNOME Keyring, KeePassXC) is running and "
                "DBUS_SESSION_BUS_ADDRESS points at your session bus (ssh and cron sessions "
                "often have none)"
            )
        else:
            reason = f"cannot {action} the {backend} ({detail})"
            fix = None
        self._fail(error if detail == raw else None, reason, fix)  # never chain a secret

    def _fail(self, cause: BaseException | None, reason: str, fix: str | None) -> NoReturn:
        raise StoreError(self.location, reason, fix) from cause


_REPLACE_FIX = "save fresh tokens to replace it, or delete it from the keyring"


def _digest(secret: str | None) -> str | None:
    return None if secret is None else hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _secrets_of(tokens: TokenSet) -> tuple[str, ...]:
    return tuple(value for value in (tokens.access_token, tokens.refresh_token) if value)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask(secret))
    return text


def _is_backend_error(error: BaseException) -> bool:
    """An OSError, or an error raised by or from inside a secret-store library (keyring
    raises a bare RuntimeError when the SecretService backend cannot start)."""
    return isinstance(error, OSError) or _raised_in(error, _BACKEND_MODULES)


def _is_dbus_error(error: BaseException) -> bool:
    """Raised by, or from inside, a D-Bus library (jeepney raises a bare OSError when the
    bus socket is missing)."""
    return _raised_in(error, _DBUS_MODULES)


def _raised_in(error: BaseException, modules: frozenset[str]) -> bool:
    """``error`` (or one it was raised from) has a class or a frame in one of ``modules``."""
    chain: BaseException | None = error
    while chain is not None:
        if any(_module_root(klass.__module__) in modules for klass in type(chain).__mro__):
            return True
        traceback = chain.__traceback__
        while traceback is not None:
            if _module_root(traceback.tb_frame.f_globals.get("__name__")) in modules:
                return True
            traceback = traceback.tb_next
        chain = chain.__cause__ or chain.__context__
    return False


def _can_store(backend: Any) -> bool:
    """False for keyring's "fail" and "null" backends (a save would fail or vanish)."""
    import keyring.backends.fail
    import keyring.backends.null

    return not isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring))


def _insecure_backend(backend: Any) -> str | None:
    """The name of a backend that keeps secrets in a plain file (keyrings.alt's), else None;
    for keyring's chainer, the backend it would write to first."""
    inner = getattr(backend, "backends", None)
    if isinstance(inner, list) and inner:
        backend = inner[0]
    if _module_root(type(backend).__module__) != "keyrings":
        return None
    return f"{type(backend).__name__} (keyrings.alt)"


def _dotted(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _module_root(name: object) -> str:
    return name.split(".")[0] if isinstance(name, str) else ""


def _backend_name(named: str = "") -> str:
    """The backend's display name, e.g. "SecretService Keyring" (no secret in it)."""
    try:
        import keyring
        import keyring.core

        name = (keyring.core.load_keyring(named) if named else keyring.get_keyring()).name
    except Exception:
        return "OS keyring"
    return name if isinstance(name, str) and name else "OS keyring"


def _safe(text: str) -> str:
    """A file-name-safe form; names that had to change get a short hash to stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64]
    if safe != text:
        safe += "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return safe


def _config_folder() -> Path:
    """``~/.config/claude-oauth-auth``, or ``%APPDATA%\\claude-oauth-auth`` on Windows."""
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA", "").strip()
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / "claude-oauth-auth"
    return Path.home() / ".config" / "claude-oauth-auth"


def _make_private_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
        if sys.platform != "win32":
            os.chmod(folder, 0o700)  # mkdir's mode is filtered through the umask
