"""store/transfer.py on both stores: a room's history read whole across pages, and a room
found by its key, its `name~tag` or its only name."""

from __future__ import annotations

import asyncio

from parley.store import Store
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SQLiteStore
from parley.store.transfer import find_room_postgres, find_room_sqlite, room_history


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
