"""What only the SQLite store has: its group commit and its one writing connection."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from parley.store import StoreUnavailable
from parley.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("group_commit", "commits"), [(True, 1), (False, 200)])
async def test_sends_queued_together_share_one_commit(
    tmp_path: Path, group_commit: bool, commits: int
) -> None:
    store = SQLiteStore(tmp_path / "parley.db", group_commit=group_commit)
    await store.open()
    try:
        sent = [store.append_soon("general", "ann", f"m{i}", f"c{i}") for i in range(200)]
        stored = await asyncio.gather(*sent)
        assert [m.seq for m, _ in stored] == list(range(1, 201))
        assert store.commit_stats == (commits, 200)
    finally:
        await store.close()


async def test_a_database_locked_by_another_process_fails_the_batch_then_recovers(
    tmp_path: Path,
) -> None:
    """The batch's SQL runs on the event loop: a lock held elsewhere must cost that batch
    an `unavailable` (the client retries), neither a stall nor a half-written message."""
    path = tmp_path / "parley.db"
    store = SQLiteStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.append("general", "bo", "while locked", "c-1")
        other.execute("ROLLBACK")
        msg, created = await store.append("general", "bo", "again", "c-1")
        assert (msg.seq, msg.text, created) == (1, "again", True)
        assert await store.last_seqs() == {"general": 1}
    finally:
        other.close()
        await store.close()
