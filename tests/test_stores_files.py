"""Token files on disk: safe reads, atomic 0600 writes in 0700 folders, the lock."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from claude_oauth_auth import TokenFileError
from claude_oauth_auth.stores._files import (
    file_lock,
    file_signature,
    lock_path,
    read_json_file,
    write_json_atomic,
)


def test_write_creates_0700_folder_and_0600_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "auth.json"
    write_json_atomic(path, {"a": 1})
    assert read_json_file(path) == {"a": 1}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["auth.json"]  # no temp file left


def test_write_replaces_and_changes_the_signature(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    write_json_atomic(path, {"a": 1})
    before = file_signature(path)
    write_json_atomic(path, {"a": 2})
    assert file_signature(path) != before
    assert file_signature(tmp_path / "missing") is None


def test_failed_replace_leaves_no_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "tokens"
    path = folder / "auth.json"
    path.mkdir(parents=True)  # a directory where the file should be: the replace fails
    with pytest.raises(OSError):
        write_json_atomic(path, {"a": 1})
    assert [p.name for p in folder.iterdir()] == ["auth.json"]


def test_read_missing_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_json_file(tmp_path / "nope.json")


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_bytes(b"\xff\xfe")
    os.chmod(path, 0o600)
    with pytest.raises(TokenFileError, match="UTF-8") as caught:
        read_json_file(path)
    assert caught.value.path == str(path)


def test_json_error_never_quotes_the_document(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text('{"access_token": "sk-ant-oat01-SECRETSECRETSECRET" oops}')
    os.chmod(path, 0o600)
    with pytest.raises(TokenFileError) as caught:
        read_json_file(path)
    assert "SECRET" not in str(caught.value)


def test_lock_is_beside_the_file_and_excludes_other_holders(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    assert lock_path(path) == tmp_path / "auth.json.oauth.lock"
    order: list[str] = []

    def other() -> None:
        with file_lock(path):
            order.append("other")

    with file_lock(path):
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join()
    assert order == ["first", "other"]
    assert stat.S_IMODE(os.stat(lock_path(path)).st_mode) == 0o600


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    with file_lock(path):
        result: list[BaseException] = []

        def waiter() -> None:
            try:
                with file_lock(path, timeout=0.2):
                    pass
            except TokenFileError as error:
                result.append(error)

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join()
    assert result and "locked by another process" in str(result[0])


def test_stale_temp_files_from_a_killed_writer_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "tokens"
    path = folder / "auth.json"
    write_json_atomic(path, {"a": 1})
    stale, fresh = folder / ".auth.json.abc123.tmp", folder / ".auth.json.def456.tmp"
    stale.write_text("{}")
    fresh.write_text("{}")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    write_json_atomic(path, {"a": 2})
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still at work


def test_a_fifo_named_as_token_file_is_invalid_at_once(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(TokenFileError, match="not a regular file"):
        read_json_file(path)
    assert time.monotonic() - started < 1.0  # no blocking open


def test_a_symlink_is_written_at_its_target_and_shares_its_lock(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "auth.json"
    write_json_atomic(target, {"a": 1})
    link = tmp_path / "elsewhere" / "auth.json"
    link.parent.mkdir()
    link.symlink_to(target)
    write_json_atomic(link, {"a": 2})
    assert link.is_symlink() and read_json_file(target) == {"a": 2}
    assert lock_path(link) == lock_path(target)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to chown")
def test_root_keeps_the_owner_and_group_of_a_file_it_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    write_json_atomic(path, {"a": 1})
    os.chown(path, 4321, 4322)
    write_json_atomic(path, {"a": 2})
    info = os.stat(path)
    assert (info.st_uid, info.st_gid) == (4321, 4322)
    assert stat.S_IMODE(info.st_mode) == 0o600


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to switch user")
def test_a_file_owned_by_another_user_is_not_trusted(tmp_path: Path) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="owner-"))
    try:
        folder.chmod(0o755)
        path = folder / "auth.json"
        path.write_text('{"access_token": "sk-ant-oat01-xxxxxxxxxxxxxxxx"}')
        os.chown(path, 4321, 4321)
        path.chmod(0o644)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child reads as another user (65534), not the owner 4321
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    read_json_file(path)
                    message = "trusted"
                except TokenFileError as error:
                    message = str(error)
                os.write(writer, message.encode())
            finally:
                os._exit(0)
        os.close(writer)
        os.waitpid(pid, 0)
        with os.fdopen(reader) as pipe:
            message = pipe.read()
        assert "owned by another user (uid 4321)" in message
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
