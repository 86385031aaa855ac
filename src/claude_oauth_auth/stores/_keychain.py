"""Claude Code's macOS Keychain item, read and written through the ``security`` command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

from .._tokens import (
    LOGGED_OUT_BY_CLAUDE_CODE,
    TokenFormatError,
    TokenSet,
    is_logged_out_by_claude_code,
    parse_token_document,
)

__all__ = ["Keychain", "KeychainEntry", "KeychainUnavailable", "keychain_enabled", "read_keychain"]


class KeychainUnavailable(Exception):
    """The macOS Keychain could not be used (locked, no ``security`` tool, …)."""


class Keychain:
    """Claude Code's Keychain item, read and written through the ``security`` command."""

    SERVICE = "Claude Code-credentials"

    def __init__(self, service: str, account: str | None = None) -> None:
        self.service = service
        self.account = account or os.environ.get("USER") or _login_name()

    @classmethod
    def candidates(cls, config_dir: str | None) -> list[Keychain]:
        """The item names Claude Code may use: suffixed with a hash of ``config_dir`` (its
        folder, when CLAUDE_SECURESTORAGE_CONFIG_DIR or CLAUDE_CONFIG_DIR names one), then
        the plain name."""
        items = []
        if config_dir:
            folder = unicodedata.normalize("NFC", config_dir)
            digest = hashlib.sha256(folder.encode("utf-8")).hexdigest()[:8]
            items.append(cls(f"{cls.SERVICE}-{digest}"))
        items.append(cls(cls.SERVICE))
        return items

    def __repr__(self) -> str:
        return f"Keychain(service={self.service!r})"

    def read(self) -> str | None:
        """The stored secret, or None when there is no such item."""
        command = ["find-generic-password", "-s", self.service, "-a", self.account, "-w"]
        result = self._run(command, stdin=None)
        if result.returncode == 44:  # errSecItemNotFound
            return None
        if result.returncode != 0:
            raise KeychainUnavailable(_security_reason(result))
        return result.stdout.rstrip("\n")

    def write(self, secret: str) -> None:
        """Store ``secret``, passed hex-encoded on stdin so it never shows in the process list."""
        line = (
            f'add-generic-password -U -s "{self.service}" -a "{self.account}" '
            f"-X {secret.encode('utf-8').hex()}\n"
        )
        result = self._run(["-i"], stdin=line)
        if result.returncode != 0:
            raise KeychainUnavailable(_security_reason(result))

    @staticmethod
    def _run(arguments: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["security", *arguments],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except FileNotFoundError:
            raise KeychainUnavailable("the `security` command is not available") from None
        except subprocess.TimeoutExpired:
            raise KeychainUnavailable("the `security` command timed out") from None


@dataclass
class KeychainEntry:
    """A Keychain item holding Claude Code's JSON, parsed."""

    item: Keychain
    raw: str
    document: dict[str, Any]
    tokens: TokenSet


def read_keychain(items: list[Keychain]) -> tuple[KeychainEntry | None, list[str]]:
    """The first item holding usable tokens, and notes on why others were not usable."""
    notes: list[str] = []
    for item in items:
        try:
            raw = item.read()
        except KeychainUnavailable as error:
            notes.append(f"Keychain unavailable: {error}")
            break
        if raw is None:
            continue
        try:
            document = json.loads(raw)
            if is_logged_out_by_claude_code(document):
                notes.append(f"Keychain item {item.service!r} {LOGGED_OUT_BY_CLAUDE_CODE}")
                continue
            tokens, _shape = parse_token_document(document)
        except (ValueError, TokenFormatError) as error:
            notes.append(f"Keychain item {item.service!r} is not usable: {error}")
            continue
        return KeychainEntry(item, raw, document, tokens), notes
    return None, notes


def keychain_enabled() -> bool:
    """The Keychain is looked at on macOS only."""
    return sys.platform == "darwin"


def _security_reason(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or "").strip().splitlines()
    detail = text[-1][:200] if text else f"exit status {result.returncode}"
    if "interaction is not allowed" in detail.lower() or result.returncode == 36:
        return "the Keychain is locked (over SSH, run `security unlock-keychain` first)"
    return f"`security` failed: {detail}"


def _login_name() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "user"
