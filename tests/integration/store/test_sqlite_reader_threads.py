"""SQLite's reader threads (`_ReaderThreads`) at shutdown and when a read raises: every
read is answered, none hangs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parley.store import StoreUnavailable
from parley.store.driver import sqlite3
from parley.store.sqlite import SQLiteStore


def _failing(conn: sqlite3.Connection) -> int:
    raise ZeroDivisionError("a read's own failure")


async def test_reads_queued_when_the_store_closes_are_all_answered(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    await store.find_user("warm")  # the reader threads are started
    reads = [asyncio.ensure_future(store.find_user(f"u{i}")) for i in range(200)]
    await asyncio.sleep(0)  # the reads are asked for; some are handed to the threads
    await store.close()
    done = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 30)
    assert all(r is None or isinstance(r, StoreUnavailable) for r in done), done
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(store.find_user("late"), 30)


async def test_a_read_that_raises_fails_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    try:
        failing = asyncio.ensure_future(store._read(_failing))
        other = asyncio.ensure_future(store.find_user("nobody"))
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(failing, 30)
        assert await asyncio.wait_for(other, 30) is None
    finally:
        await store.close()
