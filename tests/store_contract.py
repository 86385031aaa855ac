"""What every TokenStore must do; each store's tests run these against a real backend."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable

import pytest

from claude_oauth_auth.stores import Generation, StoreConflict, TokenSet, TokenStore

MakeStore = Callable[[], TokenStore]
SECRET_ACCESS = "sk-ant-oat01-contract-access-" + "a" * 40
SECRET_REFRESH = "sk-ant-ort01-contract-refresh-" + "b" * 40


# One clock reading for the whole module, so token_set(n) is the same value whenever it is built.
_NOW = int(time.time())


def token_set(n: int, expires_in: int = 3600) -> TokenSet:
    """The n-th login; an hour ahead of the module's clock, so tests compare it by value."""
    return TokenSet(
        access_token=f"{SECRET_ACCESS}-{n}",
        refresh_token=f"{SECRET_REFRESH}-{n}",
        expires_at=float(_NOW + expires_in),
        scopes=("user:inference",),
    )


def same_tokens(found: TokenSet | None, expected: TokenSet) -> bool:
    return found is not None and (
        (found.access_token, found.refresh_token, found.expires_at)
        == (expected.access_token, expected.refresh_token, expected.expires_at)
    )


def check_round_trip_and_compare_and_set(make: MakeStore) -> None:
    """Empty at first; save/load; another instance sees it; stale saves refused; delete."""
    store = make()
    assert isinstance(store, TokenStore)
    assert store.load() is None
    assert store.version() is None
    assert store.writable
    first, second = token_set(1), token_set(2, expires_in=7200)
    with store.lock(timeout=5):
        store.save(first, expected_version=None)
    v1 = store.version()
    assert v1 is not None
    assert same_tokens(store.load(), first)
    assert same_tokens(make().load(), first)  # a second instance over the same place
    with store.lock(timeout=5):
        store.save(second, expected_version=v1)
    v2 = store.version()
    assert v2 != v1
    with pytest.raises(StoreConflict):
        store.save(first, expected_version=v1)  # a writer whose view is stale
    with pytest.raises(StoreConflict):
        store.save(first, expected_version=None)  # "empty" is stale too
    assert same_tokens(store.load(), second)  # nothing lost
    assert store.version() == v2
    for text in (store.location, repr(store)):
        assert SECRET_ACCESS not in text and SECRET_REFRESH not in text
    store.delete()
    assert store.load() is None
    assert store.version() is None


def _count_under_lock(make: MakeStore, rounds: int) -> None:
    store = make()
    for _ in range(rounds):
        with store.lock(timeout=30):
            version = store.version()
            current = store.load()
            count = int(current.access_token.rsplit("-", 1)[1]) if current else 0
            store.save(token_set(count + 1), expected_version=version)


def check_lock_is_exclusive_across_processes(
    make: MakeStore, processes: int = 4, rounds: int = 10
) -> None:
    """Processes that read, add one and save under the lock lose no increment."""
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_count_under_lock, args=(make, rounds)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    final = make().load()
    assert final is not None
    assert final.access_token.endswith(f"-{processes * rounds}")


def check_generation_is_kept(make: MakeStore) -> None:
    """A saved login's generation comes back with it; a login saved without one has none."""
    store = make()
    labelled = dataclasses.replace(token_set(1), generation=Generation("c0ffee", 12))
    with store.lock(timeout=5):
        store.save(labelled, expected_version=store.version())
    found = make().load()
    assert found is not None and found.generation == Generation("c0ffee", 12)
    with store.lock(timeout=5):
        store.save(token_set(2), expected_version=store.version())
    found = make().load()
    assert same_tokens(found, token_set(2)) and found is not None and found.generation is None
