"""The SQLite store's reads. The quick ones run on the loop's own connection (a reader
thread only when the database is locked); the others, asked for in one loop iteration, go
to the reader threads together, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from parley.store import StoreUnavailable
from parley.store.sqlite import READS_PER_SHARE, SQLiteStore

pytestmark = pytest.mark.timeout(60)

USERS = [f"user{i}" for i in range(40)]


async def _store_with_users(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    for name in USERS:
        assert await store.create_user(name, f"hash-of-{name}")
    return store


def _username(name: str, conn: sqlite3.Connection) -> str | None:
    """A read for the reader threads: the stored spelling of a user's name."""
    row = conn.execute("SELECT username FROM users WHERE username = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _names(store: SQLiteStore, names: list[str]) -> Any:
    return asyncio.gather(*(store._read(partial(_username, name)) for name in names))


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
        assert await _names(store, list(reversed(USERS))) == list(reversed(USERS))
        assert submitted == [20, 20]  # one share for each of the two readers
        submitted.clear()
        assert await store._read(partial(_username, "nobody")) is None  # a lone read goes alone
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
            assert await _names(store, USERS[:count]) == USERS[:count]
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
        users = await _names(store, USERS[:4])
        assert [m.text for m in await search] == ["findable words"]
        assert users == USERS[:4]
        assert sorted(map(len, submitted)) == [1, 4]  # four quick reads: one reader
        assert ["_search"] in submitted
    finally:
        await store.close()


def _broken(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT no_such_column FROM users")


async def test_a_failing_read_fails_alone(tmp_path: Path) -> None:
    store = await _store_with_users(tmp_path / "parley.db")
    try:
        bad, good = await asyncio.gather(
            store._read(_broken), store._read(partial(_username, USERS[0])), return_exceptions=True
        )
        assert isinstance(bad, StoreUnavailable)
        assert good == USERS[0]
        with pytest.raises(StoreUnavailable):
            await store._read_now(_broken)
        found = await store.find_user(USERS[0])  # the loop's connection still serves
        assert found is not None
        assert found.username == USERS[0]
    finally:
        await store.close()


async def test_quick_reads_run_on_the_loop_without_a_hand_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await _store_with_users(tmp_path / "parley.db")
    submitted = _count_shares(store, monkeypatch)
    try:
        found = await asyncio.gather(*(store.find_user(name) for name in USERS))
        assert [u.username if u else None for u in found] == USERS
        assert [u.password_hash if u else None for u in found] == [f"hash-of-{n}" for n in USERS]
        rooms, admin = await store.rooms_and_role(USERS[0])
        assert [r.name for r in rooms] == ["general"]
        assert found[0] is not None
        assert admin is found[0].admin
        assert await store.token_user("no such token", 0.0) is None
        assert submitted == []
    finally:
        await store.close()


def _read_under_the_write_lock(conn: sqlite3.Connection) -> str:
    """A read that takes the write lock first: how a test meets a locked database (a WAL
    reader meets one only beside a recovery or another process's exclusive lock)."""
    conn.execute("PRAGMA query_only=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            return str(conn.execute("SELECT username FROM users LIMIT 1").fetchone()[0])
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.execute("PRAGMA query_only=ON")


async def test_a_quick_read_of_a_locked_database_waits_on_a_reader_not_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's connection never waits for a lock: the read goes to a reader thread,
    which waits, and answers once the lock goes."""
    path = tmp_path / "parley.db"
    store = await _store_with_users(path)
    handed: asyncio.Event = asyncio.Event()
    submit = store._readers.submit

    def handing(fn: Callable[..., Any], loop: Any, reads: list[Any]) -> Any:
        handed.set()  # on the loop's thread: `_dispatch_reads` runs there
        return submit(fn, loop, reads)

    monkeypatch.setattr(store._readers, "submit", handing)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        pending = asyncio.ensure_future(store._read_now(_read_under_the_write_lock))
        await handed.wait()  # the loop runs this test meanwhile: it is not blocked
        assert not pending.done()  # on a reader, held by the lock
        holder.execute("COMMIT")
        assert await pending == USERS[0]
    finally:
        holder.close()
        await store.close()


async def test_a_read_after_close_is_unavailable(tmp_path: Path) -> None:
    store = await _store_with_users(tmp_path / "parley.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.find_user(USERS[0])
