"""A private, real Secret Service for the keyring tests: its own D-Bus session bus and
gnome-keyring-daemon, with a fresh unlocked "login" collection in a temporary folder.

``secret_service(folder)`` points this process (``DBUS_SESSION_BUS_ADDRESS``) and keyring
(``keyring.set_keyring``) at it, and restores both and kills the daemons afterwards. Where no
Secret Service can start (no packages, no D-Bus), it falls back to keyrings.alt's plaintext
file backend and says why in ``SecretServiceSession.why_not_real``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.SecretService
import keyring.core

PASSWORD = b"claude-oauth-auth tests"  # unlocks the throwaway login keyring
START_TIMEOUT = 15.0
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretServiceUnavailable(Exception):
    """No Secret Service could start here; the message says why."""


@dataclass
class SecretServiceSession:
    """The keyring backend the tests use, and whether it is the real Secret Service."""

    backend: keyring.backend.KeyringBackend
    real: bool
    why_not_real: str = ""
    address: str | None = None


@contextlib.contextmanager
def secret_service(folder: Path) -> Iterator[SecretServiceSession]:
    """A real Secret Service (or keyrings.alt's file backend) as keyring's backend."""
    saved_backend = getattr(keyring.core, "_keyring_backend", None)
    saved_address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        try:
            address: str | None = _start(folder, processes)
            why_not_real = ""
        except SecretServiceUnavailable as why:
            _stop(processes)
            _restore_address(saved_address)
            address, why_not_real = None, str(why)
        if address is None:
            from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped]

            fallback = PlaintextKeyring()
            fallback.file_path = str(folder / "keyrings-alt" / "keyring_pass.cfg")
            keyring.set_keyring(fallback)
            yield SecretServiceSession(fallback, real=False, why_not_real=why_not_real)
        else:
            backend = keyring.backends.SecretService.Keyring()  # type: ignore[no-untyped-call]
            keyring.set_keyring(backend)
            yield SecretServiceSession(backend, real=True, address=address)
    finally:
        _stop(processes)
        _restore_address(saved_address)
        keyring.core._keyring_backend = saved_backend


def _start(folder: Path, processes: list[subprocess.Popen[bytes]]) -> str:
    """Start dbus-daemon and gnome-keyring-daemon; return the bus address (set in os.environ)."""
    dbus_daemon = shutil.which("dbus-daemon")
    keyring_daemon = shutil.which("gnome-keyring-daemon")
    missing = [
        package
        for package, found in (("dbus-daemon", dbus_daemon), ("gnome-keyring", keyring_daemon))
        if not found
    ]
    if missing or dbus_daemon is None or keyring_daemon is None:
        raise SecretServiceUnavailable(f"not installed: {', '.join(missing)}")
    try:
        import secretstorage  # noqa: F401
    except ImportError as error:
        raise SecretServiceUnavailable(f"secretstorage cannot be imported ({error})") from None

    for name in ("home", "data", "config", "cache", "runtime"):
        (folder / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "bus.conf").write_text(_BUS_CONFIG.format(socket=folder / "bus"))
    bus_log = open(folder / "dbus-daemon.log", "wb")  # noqa: SIM115 (the daemon writes to it)
    try:
        bus = subprocess.Popen(
            [dbus_daemon, f"--config-file={folder / 'bus.conf'}", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=bus_log,
        )
    finally:
        bus_log.close()
    processes.append(bus)
    address = _read_address(bus, folder / "dbus-daemon.log")
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address

    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "XDG_DATA_HOME": str(folder / "data"),
        "XDG_CONFIG_HOME": str(folder / "config"),
        "XDG_CACHE_HOME": str(folder / "cache"),
        "XDG_RUNTIME_DIR": str(folder / "runtime"),
        "DBUS_SESSION_BUS_ADDRESS": address,
        "LANG": "C.UTF-8",
    }
    keyring_log = open(folder / "gnome-keyring.log", "wb")  # noqa: SIM115
    try:
        # --unlock reads the login keyring's password from stdin, creating the keyring.
        daemon = subprocess.Popen(
            [keyring_daemon, "--foreground", "--components=secrets", "--unlock"],
            stdin=subprocess.PIPE,
            stdout=keyring_log,
            stderr=keyring_log,
            env=environment,
        )
    finally:
        keyring_log.close()
    processes.append(daemon)
    assert daemon.stdin is not None
    daemon.stdin.write(PASSWORD)
    daemon.stdin.close()
    _wait_for_login_collection(daemon, folder / "gnome-keyring.log")
    return address


def _read_address(bus: subprocess.Popen[bytes], log: Path) -> str:
    assert bus.stdout is not None
    ready, _, _ = select.select([bus.stdout], [], [], START_TIMEOUT)
    line = bus.stdout.readline().decode().strip() if ready else ""
    if not line:
        raise SecretServiceUnavailable(
            f"dbus-daemon printed no address (exit code {bus.poll()}): {_tail(log)}"
        )
    return line


def _wait_for_login_collection(daemon: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until org.freedesktop.secrets answers and has an unlocked default collection."""
    import secretstorage

    deadline = time.monotonic() + START_TIMEOUT
    problem = "the daemon never answered on the bus"
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SecretServiceUnavailable(
                f"gnome-keyring-daemon exited with code {daemon.returncode}: {_tail(log)}"
            )
        try:
            with contextlib.closing(secretstorage.dbus_init()) as connection:
                if secretstorage.check_service_availability(connection):
                    collection = _default_collection(connection)
                    if collection is None:
                        _create_login_collection(connection)
                        problem = "the default collection did not appear"
                    elif collection.is_locked():
                        _unlock(connection, collection.collection_path)
                        problem = "the default collection stayed locked"
                    else:
                        return
        except Exception as error:
            problem = f"{type(error).__name__}: {error}"
        time.sleep(0.05)
    raise SecretServiceUnavailable(f"{problem} within {START_TIMEOUT:g} s: {_tail(log)}")


def _default_collection(connection: Any) -> Any:
    import secretstorage
    from secretstorage.collection import DEFAULT_COLLECTION

    try:
        return secretstorage.Collection(connection, DEFAULT_COLLECTION)
    except secretstorage.exceptions.ItemNotFoundException:
        return None


def _internal(connection: Any) -> Any:
    """gnome-keyring's prompt-free interface (what its own tests use), or None elsewhere."""
    from secretstorage.defines import SS_PATH
    from secretstorage.util import DBusAddressWrapper

    return DBusAddressWrapper(
        SS_PATH, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface", connection
    )


def _create_login_collection(connection: Any) -> None:
    """Create and unlock a "login" collection aliased "default" without a GUI prompt."""
    from secretstorage.defines import SS_PATH
    from secretstorage.util import SERVICE_IFACE, DBusAddressWrapper, format_secret, open_session

    session = open_session(connection)
    properties = {"org.freedesktop.Secret.Collection.Label": ("s", "login")}
    (path,) = _internal(connection).call(
        "CreateWithMasterPassword",
        "a{sv}(oayays)",
        properties,
        format_secret(session, PASSWORD, "text/plain"),
    )
    DBusAddressWrapper(SS_PATH, SERVICE_IFACE, connection).call("SetAlias", "so", "default", path)


def _unlock(connection: Any, path: str) -> None:
    from secretstorage.util import format_secret, open_session

    session = open_session(connection)
    _internal(connection).call(
        "UnlockWithMasterPassword",
        "o(oayays)",
        path,
        format_secret(session, PASSWORD, "text/plain"),
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
    processes.clear()


def _restore_address(saved: str | None) -> None:
    if saved is None:
        os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
    else:
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved


def _tail(log: Path, limit: int = 300) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return text[-limit:] if text else "(no output)"


def unlock_default_collection() -> None:
    """Unlock the default collection again after a test locked it."""
    import secretstorage

    with contextlib.closing(secretstorage.dbus_init()) as connection:
        collection = _default_collection(connection)
        if collection is not None and collection.is_locked():
            _unlock(connection, collection.collection_path)
