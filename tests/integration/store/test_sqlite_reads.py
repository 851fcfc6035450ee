"""The SQLite store's reads: those asked for in one loop iteration go to the reader threads
together, and each still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parley.store import StoreUnavailable
from parley.store.driver import sqlite3
from parley.store.sqlite import READS_PER_SHARE, SQLiteStore

pytestmark = pytest.mark.timeout(60)

USERS = [f"user{i}" for i in range(40)]


async def _store_with_users(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    for name in USERS:
        assert await store.create_user(name, f"hash-of-{name}")
    return store


def _count_shares(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each share handed to a reader thread from now on, in order."""
    submitted: list[int] = []
    submit = store._readers.submit

    def counting(fn: Callable[..., Any], loop: Any, reads: list[Any]) -> Any:
        submitted.append(len(reads))
        return submit(fn, loop, reads)

    monkeypatch.setattr(store._readers, "submit", counting)
    return submitted


async def test_reads_of_one_loop_step_share_a_hand_off_each_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store_with_users(tmp_path / "parley.db")
    submitted = _count_shares(store, monkeypatch)
    try:
        found = await asyncio.gather(*(store.find_user(name) for name in reversed(USERS)))
        assert [u.username if u else None for u in found] == list(reversed(USERS))
        assert [u.password_hash if u else None for u in found] == [
            f"hash-of-{name}" for name in reversed(USERS)
        ]
        assert submitted == [20, 20]  # one share for each of the two readers
        submitted.clear()
        assert await store.find_user("nobody") is None  # a lone read goes alone
        assert submitted == [1]
    finally:
        await store.close()


async def test_a_few_reads_wake_one_reader_more_wake_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second reader thread is woken only for more than READS_PER_SHARE reads: a
    wake-up and its turns at the GIL cost more than a read or two after the first's."""
    store = await _store_with_users(tmp_path / "parley.db")
    submitted = _count_shares(store, monkeypatch)
    try:
        for count, shares in ((READS_PER_SHARE, [READS_PER_SHARE]), (READS_PER_SHARE + 1, [5, 4])):
            submitted.clear()
            found = await asyncio.gather(*(store.find_user(name) for name in USERS[:count]))
            assert [u.username if u else None for u in found] == USERS[:count]
            assert submitted == shares
    finally:
        await store.close()


async def test_a_search_never_shares_a_hand_off_with_quick_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search may take milliseconds: the token and room reads of its loop step do not
    wait behind it on its reader thread."""
    store = await _store_with_users(tmp_path / "parley.db")
    submitted: list[list[str]] = []
    submit = store._readers.submit

    def recording(fn: Callable[..., Any], loop: Any, reads: list[Any]) -> Any:
        submitted.append([getattr(read.job, "func", read.job).__name__ for read in reads])
        return submit(fn, loop, reads)

    monkeypatch.setattr(store._readers, "submit", recording)
    try:
        await store.append("general", "user0", "findable words", None)
        search = asyncio.ensure_future(store.search("user0", ["findable"], None, 10))
        users = await asyncio.gather(*(store.find_user(name) for name in USERS[:4]))
        assert [m.text for m in await search] == ["findable words"]
        assert [u.username if u else None for u in users] == USERS[:4]
        assert sorted(map(len, submitted)) == [1, 4]  # four quick reads: one reader
        assert ["_search"] in submitted
    finally:
        await store.close()


async def test_a_failing_read_fails_alone(tmp_path: Path) -> None:
    store = await _store_with_users(tmp_path / "parley.db")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT no_such_column FROM users")

    try:
        bad, good = await asyncio.gather(
            store._read(broken), store.find_user(USERS[0]), return_exceptions=True
        )
        assert isinstance(bad, StoreUnavailable)
        assert good is not None
        assert not isinstance(good, BaseException)
        assert good.username == USERS[0]
    finally:
        await store.close()


async def test_a_read_after_close_is_unavailable(tmp_path: Path) -> None:
    store = await _store_with_users(tmp_path / "parley.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.find_user(USERS[0])
