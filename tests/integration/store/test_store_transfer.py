"""store/transfer.py on both stores: a room's history read whole across pages, a room
found by its key, its `name~tag` or its only name, and uploads' contents loaded from a
dump's `blob_data` records (checked, or refused with nothing stored)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from typing import Any

import pytest

from parley.store import Store
from parley.store.migrations import SQLITE
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SQLiteStore
from parley.store.transfer import (
    CONTENT_CHUNK,
    ImportRefused,
    Record,
    find_room_postgres,
    find_room_sqlite,
    header,
    load_postgres,
    load_sqlite,
    room_history,
)


async def find_room(store: Store, ref: str) -> str | None:
    if isinstance(store, SQLiteStore):
        return find_room_sqlite(store.path, ref)
    assert isinstance(store, PostgresStore)
    return await find_room_postgres(store.dsn, ref)


async def test_room_history_reads_every_page_in_order(store: Store) -> None:
    sent = await asyncio.gather(
        *(store.append_soon("general", "alice", f"m{i}", f"c{i}") for i in range(23))
    )
    everything = [m async for m in room_history(store, "general", page=5)]
    assert [m.seq for m in everything] == list(range(1, 24))
    assert {m.text for m in everything} == {msg.text for msg, _ in sent}
    assert [m async for m in room_history(store, "general", page=23)] == everything


async def test_a_room_is_found_by_key_tagged_name_or_only_name(store: Store) -> None:
    hidden = await store.create_room("plans", private=True, owner="alice")
    assert hidden is not None
    assert await find_room(store, "general") == "general"
    assert await find_room(store, "plans") == hidden.room
    shadow = await store.create_room("plans", private=True, owner="bob")  # bob cannot see it
    assert shadow is not None
    assert shadow.room != hidden.room
    assert await find_room(store, f"plans~{shadow.tag}") == shadow.room
    assert await find_room(store, shadow.room) == shadow.room
    assert await find_room(store, "plans") == hidden.room  # a key wins over a shared name
    assert await find_room(store, "nowhere") is None


BYTES = bytes(range(251)) * 1000  # 2.6 chunks
SHA = hashlib.sha256(BYTES).hexdigest()
FINE = b"a fine content before the damaged one"
FINE_SHA = hashlib.sha256(FINE).hexdigest()


def content_records(data: bytes, sha256: str = SHA, refs: int = 2) -> list[Record]:
    """A `blobs` record and its `blob_data` records, as an export writes them."""
    chunks = [data[i : i + CONTENT_CHUNK] for i in range(0, len(data), CONTENT_CHUNK)]
    return [
        {"record": "blobs", "sha256": sha256, "refs": refs},
        *(
            {
                "record": "blob_data",
                "sha256": sha256,
                "offset": n * CONTENT_CHUNK,
                "data": base64.b64encode(chunk).decode(),
            }
            for n, chunk in enumerate(chunks)
        ),
    ]


async def load(store: Store, records: list[Record]) -> int:
    dump = iter([header(max(v for v, _ in SQLITE)), *map(dict, records)])  # (it takes `record`)
    if isinstance(store, SQLiteStore):
        return load_sqlite(store.path, store.files, dump)
    assert isinstance(store, PostgresStore)
    return await load_postgres(store.dsn, dump)


async def test_a_content_is_stored_where_the_store_keeps_it(store: Store) -> None:
    other = b"another content"
    records = content_records(BYTES) + content_records(other, hashlib.sha256(other).hexdigest())
    assert await load(store, records) == 2
    assert await store.read_blob(SHA, 0, len(BYTES) + 1) == BYTES
    assert await store.read_blob(SHA, CONTENT_CHUNK - 1, 2) == BYTES[CONTENT_CHUNK - 1 :][:2]
    assert await store.read_blob(hashlib.sha256(other).hexdigest(), 0, 100) == other


def _changed(records: list[Record], where: int, **fields: Any) -> list[Record]:
    return [{**r, **fields} if i == where else r for i, r in enumerate(records)]


DAMAGED: list[tuple[str, list[Record], str]] = [
    (
        "a byte changed",
        _changed(content_records(BYTES), 2, data=base64.b64encode(b"x" * CONTENT_CHUNK).decode()),
        f"line 4: blob {SHA}: its content is damaged",  # after the fine one's two
    ),
    ("a chunk left out", content_records(BYTES)[:2] + content_records(BYTES)[3:], "out of place"),
    ("chunks swapped", [content_records(BYTES)[i] for i in (0, 2, 1, 3)], "out of place"),
    ("its content left out", content_records(BYTES)[:1], "the dump carries no content for it"),
    ("the last chunk left out", content_records(BYTES)[:3], "its content is damaged"),
    ("no base64", _changed(content_records(BYTES), 1, data="%%%"), "whose data is no base64"),
    ("chunks of no blobs record", content_records(BYTES)[1:], f"out of place: {FINE_SHA}"),
    ("not a sha256", content_records(BYTES, sha256="../../parley.db"), "not a sha256"),
    ("a column more", _changed(content_records(BYTES), 0, data="AA=="), "sha256 and refs only"),
]


@pytest.mark.parametrize(("records", "said"), [d[1:] for d in DAMAGED], ids=[d[0] for d in DAMAGED])
async def test_a_damaged_content_is_refused_and_nothing_stored(
    store: Store, records: list[Record], said: str
) -> None:
    with pytest.raises(ImportRefused, match=re.escape(said)):
        await load(store, content_records(FINE, FINE_SHA) + records)
    assert await store.read_blob(FINE_SHA, 0, 100) == b""
    if isinstance(store, SQLiteStore):
        assert [p for p in store.files.rglob("*") if p.is_file()] == []
