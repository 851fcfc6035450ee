"""Uploaded files and attachments (contract v2), run unchanged on SQLite and on
PostgreSQL (see conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from parley.protocol import File
from parley.store import MessageQuery, Store
from parley.store.base import (
    DeleteRequest,
    EditRequest,
    FileRecord,
    MemberChange,
    QuotaExceeded,
    UnknownFile,
)
from parley.store.sqlite import SQLiteStore
from tests.support.stores import nodes_on_one_database

StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

DAY = 24 * 3600.0
NOW = 1_800_000_000.0


async def upload(
    store: Store,
    tmp_path: Path,
    content: bytes,
    *,
    user: str = "ann",
    name: str = "notes.txt",
    at: float = NOW,
    thumb: bytes | None = None,
    quota: int = 0,
) -> FileRecord:
    """Store `content` as `user`'s upload, as the server does: from a temporary file."""
    path = tmp_path / secrets.token_hex(8)
    path.write_bytes(content)
    thumb_path = None
    if thumb is not None:
        thumb_path = tmp_path / secrets.token_hex(8)
        thumb_path.write_bytes(thumb)
    record = FileRecord(
        id=secrets.token_hex(13),
        sha256=hashlib.sha256(content).hexdigest(),
        name=name,
        type="text/plain",
        size=len(content),
        width=None if thumb is None else 4,
        height=None if thumb is None else 3,
        thumb=None if thumb is None else hashlib.sha256(thumb).hexdigest(),
        uploader=user,
        created_at=at,
    )
    await store.add_file(record, path, thumb_path, quota)
    return record


async def content(store: Store, record: FileRecord) -> bytes:
    return await store.read_blob(record.sha256, 0, 1 << 20)


async def test_an_upload_is_readable_by_its_uploader_only_until_attached(
    store: Store, tmp_path: Path
) -> None:
    record = await upload(store, tmp_path, b"hello world")
    assert await store.readable_file(record.id, "ann") == record
    assert await store.readable_file(record.id, "bob") is None
    assert await store.readable_file("nosuchfile", "ann") is None
    assert await content(store, record) == b"hello world"
    assert await store.read_blob(record.sha256, 6, 3) == b"wor"
    assert await store.read_blob(record.sha256, 6, 100) == b"world"
    assert await store.read_blob(record.sha256, 11, 10) == b""
    assert await store.read_blob("0" * 64, 0, 10) == b""


async def test_a_message_carries_its_files_everywhere(store: Store, tmp_path: Path) -> None:
    one = await upload(store, tmp_path, b"one", name="one.txt")
    two = await upload(store, tmp_path, b"two!", name="two.txt")
    msg, created = await store.append("general", "ann", "", "c1", attachments=(two.id, one.id))
    assert created
    expected = [File(two.id, "two.txt", "text/plain", 4), File(one.id, "one.txt", "text/plain", 3)]
    assert msg.attachments == expected
    assert (await store.message("general", msg.seq)).attachments == expected  # type: ignore[union-attr]
    events = await store.events("general", 0, 10)
    assert [getattr(e, "attachments", None) for e in events] == [expected]
    again, created = await store.append("general", "ann", "", "c1", attachments=(two.id, one.id))
    assert (again, created) == (msg, False)  # a resend: the message as first stored
    # the room is public: anyone may read the files now
    assert await store.readable_file(one.id, "bob") == one


async def test_attachments_must_be_the_senders_uploads(store: Store, tmp_path: Path) -> None:
    mine = await upload(store, tmp_path, b"mine")
    theirs = await upload(store, tmp_path, b"theirs", user="bob")
    with pytest.raises(UnknownFile):
        await store.append("general", "ann", "x", None, attachments=(mine.id, theirs.id))
    with pytest.raises(UnknownFile):
        await store.append("general", "ann", "x", None, attachments=("nosuchfile",))
    # a batch of several sends: only the refused one fails
    sends = [
        store.append_soon("general", "ann", "ok", None, attachments=(mine.id,)),
        store.append_soon("general", "ann", "bad", None, attachments=(theirs.id,)),
        store.append_soon("general", "bob", "fine", None),
    ]
    done = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(done[1], UnknownFile)
    assert [m.text for m, _ in (done[0], done[2])] == ["ok", "fine"]  # type: ignore[misc]
    assert [m.text for m in await store.messages(MessageQuery("general"))] == ["ok", "fine"]


async def test_private_room_files_follow_its_membership(store: Store, tmp_path: Path) -> None:
    room = await store.create_room("secret", True, "ann")
    assert room is not None
    record = await upload(store, tmp_path, b"classified")
    await store.append(room.room, "ann", "see", None, attachments=(record.id,))
    assert await store.readable_file(record.id, "bob") is None
    await store.change_member(MemberChange(room.room, "bob", "invited", "ann"))
    assert await store.readable_file(record.id, "bob") == record
    await store.change_member(MemberChange(room.room, "bob", "removed", "ann"))
    assert await store.readable_file(record.id, "bob") is None  # as readable as the room, now


async def test_a_deleted_message_no_longer_carries_its_files(store: Store, tmp_path: Path) -> None:
    record = await upload(store, tmp_path, b"oops")
    msg, _ = await store.append("general", "ann", "look", None, attachments=(record.id,))
    await store.change(EditRequest("general", "ann", None, msg.seq, "edited"))
    edited = await store.message("general", msg.seq)
    assert edited is not None
    assert [f.id for f in edited.attachments] == [record.id]
    await store.change(DeleteRequest("general", "ann", None, msg.seq))
    gone = await store.message("general", msg.seq)
    assert gone is not None
    assert gone.attachments == []
    assert await store.readable_file(record.id, "bob") is None
    assert await store.readable_file(record.id, "ann") == record  # the uploader still may
    # unused again: purged like any upload no message carries
    assert await store.purge_files(NOW + DAY) == 1
    assert await store.readable_file(record.id, "ann") is None


async def test_purge_removes_only_old_unused_uploads_and_keeps_shared_bytes(
    store: Store, tmp_path: Path
) -> None:
    old = await upload(store, tmp_path, b"same bytes", at=NOW - DAY - 1)
    twin = await upload(store, tmp_path, b"same bytes", at=NOW)  # the same content, newer
    used = await upload(store, tmp_path, b"used", at=NOW - DAY - 1)
    alone = await upload(store, tmp_path, b"alone", at=NOW - DAY - 1, thumb=b"small")
    await store.append("general", "ann", "keep", None, attachments=(used.id,))

    assert await store.purge_files(NOW - DAY) == 2  # `old` and `alone`
    assert await store.readable_file(old.id, "ann") is None
    assert await store.readable_file(alone.id, "ann") is None
    assert await store.readable_file(twin.id, "ann") == twin
    assert await store.readable_file(used.id, "ann") == used
    assert await content(store, twin) == b"same bytes"  # still used by `twin`
    assert await content(store, alone) == b""
    assert alone.thumb is not None
    assert await store.read_blob(alone.thumb, 0, 10) == b""
    assert await store.purge_files(NOW - DAY) == 0
    if isinstance(store, SQLiteStore):
        assert sorted(p.name for p in store.files.rglob("*") if p.is_file()) == sorted(
            [twin.sha256, used.sha256]
        )


async def test_a_thumbnail_is_stored_with_its_file(store: Store, tmp_path: Path) -> None:
    record = await upload(store, tmp_path, b"picture", thumb=b"thumb")
    assert record.thumb is not None
    assert await store.read_blob(record.thumb, 0, 100) == b"thumb"
    assert record.as_file() == File(record.id, "notes.txt", "text/plain", 7, 4, 3)


async def test_quota_counts_the_uploaders_stored_bytes(store: Store, tmp_path: Path) -> None:
    await upload(store, tmp_path, b"12345", quota=10)
    await upload(store, tmp_path, b"67890", quota=10)
    with pytest.raises(QuotaExceeded):
        await upload(store, tmp_path, b"x", quota=10)
    await upload(store, tmp_path, b"x", user="bob", quota=10)  # bob has his own
    await upload(store, tmp_path, b"no quota", quota=0)


async def test_nodes_purging_and_attaching_at_once_never_lose_a_used_file(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    async with nodes_on_one_database(store_factory, 3) as nodes:
        records = [
            await upload(nodes[0], tmp_path, f"file {i}".encode(), at=NOW - DAY - 1)
            for i in range(12)
        ]
        attach = [
            nodes[i % 2].append("general", "ann", f"m{i}", None, attachments=(r.id,))
            for i, r in enumerate(records[:6])
        ]
        purges = [node.purge_files(NOW - DAY) for node in nodes]
        results = await asyncio.gather(*attach, *purges, return_exceptions=True)
        sent = [r for r in results[:6] if not isinstance(r, BaseException)]
        refused = [r for r in results[:6] if isinstance(r, BaseException)]
        assert all(isinstance(r, UnknownFile) for r in refused), refused
        purged = sum(int(r) for r in results[6:])  # type: ignore[call-overload]
        assert purged == 12 - len(sent)
        for msg, _ in sent:  # type: ignore[misc]
            [file] = msg.attachments
            record = next(r for r in records if r.id == file.id)
            assert await nodes[2].readable_file(file.id, "bob") == record
            assert await content(nodes[2], record) == f"file {records.index(record)}".encode()


async def test_messages_stored_before_files_existed_carry_none(
    store_factory: StoreFactory, old_database: OldDatabase, tmp_path: Path
) -> None:
    await old_database(
        7,
        "INSERT INTO messages (room, seq, username, text, ts, client_id, n)"
        " VALUES ('general', 1, 'ann', 'from before', '2026-01-01T00:00:00.000Z', NULL, 1);"
        " UPDATE rooms SET last_seq = 1, msgs = 1 WHERE room = 'general';",
    )
    store = store_factory()
    await store.open()
    try:
        old = await store.message("general", 1)
        assert old is not None
        assert (old.text, old.attachments) == ("from before", [])
        record = await upload(store, tmp_path, b"new")
        msg, _ = await store.append("general", "ann", "now with", None, attachments=(record.id,))
        assert [f.id for f in msg.attachments] == [record.id]
    finally:
        await store.close()
