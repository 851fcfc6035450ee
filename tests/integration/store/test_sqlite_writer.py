"""What only the SQLite store has: its group commit and its one writing connection."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest

import parley.store.sqlite
from parley.store import (
    DeleteRequest,
    EditRequest,
    MessageQuery,
    ReactRequest,
    StoreStats,
    StoreUnavailable,
)
from parley.store.driver import sqlite3
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
        assert store.stats() == StoreStats(commits, 200)
    finally:
        await store.close()


async def test_a_write_lock_held_elsewhere_delays_the_batch_without_stalling_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's SQL runs on the event loop, so BEGIN must not wait in SQLite's busy
    handler: the loop keeps running while the lock is held elsewhere, and the batch goes
    through once it is released; after BUSY_PATIENCE it fails as unavailable instead."""
    path = tmp_path / "parley.db"
    store = SQLiteStore(path)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        sending = asyncio.ensure_future(store.append("general", "bo", "waits", "c-1"))
        await asyncio.sleep(0.2)  # a loop stuck in a busy handler would not come back here
        assert not sending.done()
        other.execute("ROLLBACK")
        msg, created = await sending
        assert (msg.seq, msg.text, created) == (1, "waits", True)

        monkeypatch.setattr(parley.store.sqlite, "BUSY_PATIENCE", 0.05)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.append("general", "bo", "gives up", "c-2")
        other.execute("ROLLBACK")
        msg, created = await store.append("general", "bo", "again", "c-2")
        assert (msg.seq, msg.text, created) == (2, "again", True)
    finally:
        other.close()
        await store.close()


async def test_writes_after_close_began_fail_instead_of_hanging(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    taken = store.append_soon("general", "cy", "taken", "c-1")
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    late = store.append_soon("general", "cy", "late", "c-2")
    await closing
    assert (await taken)[0].seq == 1
    with pytest.raises(StoreUnavailable):
        await late


async def test_migration_2_puts_client_id_first_in_the_resend_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "parley.db") as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations")]
        indexes = [n for (n,) in db.execute("SELECT name FROM pragma_index_list('messages')")]
        columns = [
            c
            for (c,) in db.execute(
                "SELECT name FROM pragma_index_info(?)", ("messages_by_client_id",)
            )
        ]
    assert versions[:2] == [1, 2]
    assert "messages_by_client" not in indexes
    assert columns == ["client_id", "username"]


async def test_a_full_database_fails_writes_as_unavailable_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLITE_FULL inside a batch's statements (here from a page cap; on a real disk when the
    cache spills) fails the writes as StoreUnavailable, generic jobs included, and the writer
    takes writes again once there is room. (A full disk at COMMIT: tests/fault/test_disk_full.py.)
    """
    opened = _record_connections(monkeypatch)
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    try:
        (pages,) = opened[-1].execute("PRAGMA page_count").fetchone()  # the file's, on any
        _cap_pages(opened, pages)
        msg, _ = await store.append("general", "di", "fits", "c-0")  # free space in a page
        assert msg.seq == 1
        full_at = await _first_refused(store)
        with pytest.raises(StoreUnavailable):
            await store.create_user("dora" + "x" * 3000, "hash")
        batch = [store.append_soon("general", "di", "y" * 3000, f"b-{i}") for i in range(5)]
        for outcome in await asyncio.gather(*batch, return_exceptions=True):
            assert isinstance(outcome, StoreUnavailable), outcome

        _cap_pages(opened, pages * 100)
        msg, created = await store.append("general", "di", "x" * 3000, f"c-{full_at}")
        assert (msg.seq, created) == (full_at + 1, True)
        assert await store.create_user("dora", "hash")
        stored = await store.messages(MessageQuery("general", limit=100))
        assert [m.seq for m in stored] == list(range(1, full_at + 2))
    finally:
        await store.close()


async def _first_refused(store: SQLiteStore) -> int:
    """Append pages of text until the store refuses one as unavailable; its number."""
    for i in range(1, 100):
        try:
            await store.append("general", "di", "x" * 3000, f"c-{i}")
        except StoreUnavailable:
            return i
    raise AssertionError("the page cap never refused a write")


def _record_connections(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """Every SQLite connection opened from now on, in order (the store's writer among them)."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording)
    return opened


def _cap_pages(opened: list[sqlite3.Connection], pages: int) -> None:
    """The page cap on each open connection: it holds per connection. Only the writer's
    matters, and it is idle between batches, so the loop may use it."""
    for conn in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed: the migration's
            conn.execute(f"PRAGMA max_page_count={pages}")


async def test_a_batch_larger_than_one_statement_stores_every_row_and_own_count(
    tmp_path: Path,
) -> None:
    """700 sends in one batch go in several multi-row statements (`_insert_sized`): every
    seq is stored once, in order, and each sender's unread count leaves out exactly their
    own messages (300 senders: their own counts too take several statements)."""
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    try:
        senders = [f"user{i:03d}" for i in range(300)]
        sent = [
            store.append_soon("general", senders[i % 300], f"m{i}", f"c{i}") for i in range(700)
        ]
        stored = await asyncio.gather(*sent)
        assert [m.seq for m, _ in stored] == list(range(1, 701))
        assert store.stats() == StoreStats(1, 700)
        history = await store.messages(MessageQuery("general", limit=1000))
        assert [(m.seq, m.text) for m in history] == [(i + 1, f"m{i}") for i in range(700)]
        for sender, own in [("user000", 3), ("user099", 3), ("user100", 2), ("user299", 2)]:
            (general,) = [r for r in await store.list_rooms(sender) if r.room == "general"]
            assert general.unread == 700 - own
    finally:
        await store.close()


async def test_the_search_index_merges_sixteen_segments_at_a_time(tmp_path: Path) -> None:
    """FTS5 keeps `automerge` in the database: a new one gets SEARCH_AUTOMERGE, an older
    one (FTS5's default, 4) gets it at the next open, and search finds what it did."""
    path = tmp_path / "parley.db"

    def automerge() -> int | None:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            row = conn.execute("SELECT v FROM message_words_config WHERE k = 'automerge'")
            found = row.fetchone()
            return None if found is None else int(found[0])

    store = SQLiteStore(path)
    await store.open()
    await store.append("general", "ann", "findable words", "c-1")
    await store.close()
    assert automerge() == parley.store.sqlite.SEARCH_AUTOMERGE == 16
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("INSERT INTO message_words (message_words, rank) VALUES ('automerge', 4)")
    assert automerge() == 4
    store = SQLiteStore(path)
    await store.open()
    try:
        assert automerge() == 16
        found = await store.search("ann", ["findable"], None, 10)
        assert [m.text for m in found] == ["findable words"]
    finally:
        await store.close()


async def test_every_way_a_batch_is_inserted_numbers_messages_among_their_rooms(
    tmp_path: Path,
) -> None:
    """`n` (a message's ordinal among its room's messages, which unread counts use) is its
    seq less the room's other events before it, whichever statement stored it: one room's
    plain sends, several rooms' plain sends, or sends with a mention or a reply."""
    path = tmp_path / "parley.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        for name in ("ann", "bob"):
            assert await store.create_user(name, "hash")
        assert await store.create_room("side", False, "ann") is not None
        await store.append("general", "ann", "first", "c0")  # general 1
        await store.change(ReactRequest("general", "bob", None, 1, "👍", True))  # general 2
        several = [("general", "m1"), ("side", "s1"), ("general", "m2")]  # general 3, 4
        await asyncio.gather(*(store.append_soon(r, "ann", t, t) for r, t in several))
        fancy = [
            store.append_soon("general", "bob", "hi @ann", "b1"),  # general 5
            store.append_soon("side", "bob", "re", "b2", reply_to=1),  # side 2
            store.append_soon("general", "bob", "plain", "b3"),  # general 6
        ]
        await asyncio.gather(*fancy)
        assert [m.seq for m, _ in [await store.append("general", "ann", "last", "c9")]] == [7]
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT room, seq, n FROM messages WHERE kind IS NULL ORDER BY room, seq"
        ).fetchall()
    assert rows == [
        ("general", 1, 1),
        ("general", 3, 2),
        ("general", 4, 3),
        ("general", 5, 4),
        ("general", 6, 5),
        ("general", 7, 6),
        ("side", 1, 1),
        ("side", 2, 2),
    ]


async def test_a_batch_is_answered_before_the_checkpoint_after_it_and_the_next_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit thread checkpoints after it handed a batch's answers to the loop: a send
    is acked while the checkpoint still runs, and the next batch starts only after it (so
    the two never use the connection at once)."""
    monkeypatch.setattr(parley.store.sqlite, "CHECKPOINT_WRITES", 1)
    monkeypatch.setattr(parley.store.sqlite, "CHECKPOINT_EVERY", 0.0)
    checkpointing, release = threading.Event(), threading.Event()
    checkpoint = parley.store.sqlite._Writer._checkpoint

    def held(writer: Any) -> None:
        checkpointing.set()
        release.wait(10)
        checkpoint(writer)

    monkeypatch.setattr(parley.store.sqlite._Writer, "_checkpoint", held)
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    try:
        first, _ = await store.append("general", "di", "first", "c-1")
        assert await asyncio.to_thread(checkpointing.wait, 10)
        second = asyncio.ensure_future(store.append("general", "di", "second", "c-2"))
        await asyncio.sleep(0.2)
        assert first.seq == 1
        assert not second.done()
        release.set()
        assert (await second)[0].seq == 2
    finally:
        release.set()
        await store.close()


@pytest.mark.parametrize("checkpoints", [True, False])
async def test_the_writer_checkpoints_so_that_the_wal_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: bool
) -> None:
    """SQLite's own checkpoint is off on the writer. With the commit thread's due after
    every batch, the WAL starts over at each batch and holds one; never due, it holds all
    of them, past the 1,000 pages where SQLite's own would have started it over."""
    due = {"CHECKPOINT_WRITES": 1, "CHECKPOINT_EVERY": 0.0}
    never = {"CHECKPOINT_WRITES": 10**9, "CHECKPOINT_IDLE": 3600.0}
    for name, value in (due if checkpoints else never).items():
        monkeypatch.setattr(parley.store.sqlite, name, value)
    path = tmp_path / "parley.db"
    store = SQLiteStore(path, search=False)
    await store.open()
    try:
        for batch in range(12):  # a page a message
            texts = [f"{batch}.{i:02} " + "x" * 3000 for i in range(100)]
            await asyncio.gather(*(store.append("general", "ed", t, t[:6]) for t in texts))
        assert store._writer is not None
        await store._writer.idle.wait()  # (its checkpoint done: answered before it)
        with contextlib.closing(sqlite3.connect(path)) as conn:  # (pages in the WAL now)
            busy, wal_pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        await store.close()
    assert busy == 0
    if checkpoints:
        assert wal_pages < 200
    else:
        assert wal_pages > 1200


@pytest.mark.parametrize("change", ["delete", "edit"])
async def test_a_changed_message_leaves_no_old_text_in_the_database_file(
    tmp_path: Path, change: str
) -> None:
    """`secure_delete`: a deleted or edited message's old text is overwritten, the part on
    its page and the overflow pages a long text takes alike, so the file does not keep it
    in free space (without the search index, which keeps words until its merges)."""
    path = tmp_path / "parley.db"
    old = "q" * 6000 + " kumquat"  # the marker at the end: on an overflow page
    store = SQLiteStore(path, search=False)
    await store.open()
    try:
        await store.append("general", "fa", "before", "c-0")
        msg, _ = await store.append("general", "fa", old, "c-1")
        await store.append("general", "fa", "after", "c-2")
        if change == "delete":
            await store.change(DeleteRequest("general", "fa", None, msg.seq))
        else:
            await store.change(EditRequest("general", "fa", None, msg.seq, "fixed"))
    finally:
        await store.close()  # the last connection: the WAL is copied in and removed
    assert not (path.parent / (path.name + "-wal")).exists()
    assert b"kumquat" not in path.read_bytes()
