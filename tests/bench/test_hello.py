"""The hello workload's seed: the room plan, the markers, and a small real seed and its cache."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from parley.store.driver import sqlite3
from parley.store.migrations import SQLITE
from parley_bench.hello import (
    DB_NAME,
    READER,
    SEED_VERSION,
    SeedSpec,
    copy_database,
    count_totals,
    counted_at_read_time,
    members,
    message_text,
    read_marker,
    room_plan,
    seeded_database,
)


def test_room_plan_starts_with_general_and_has_the_private_rooms() -> None:
    plan = room_plan(SeedSpec(rooms=100, private_rooms=8, messages=0))
    assert len(plan) == 100
    assert plan[0] == ("general", False, "")
    assert len({name for name, _, _ in plan}) == 100
    private = [(name, owner) for name, is_private, owner in plan if is_private]
    assert len(private) == 8
    assert sum(owner == READER for _, owner in private) == 4  # the others invite READER


def test_room_plan_needs_a_public_room() -> None:
    with pytest.raises(ValueError, match="private_rooms"):
        room_plan(SeedSpec(rooms=3, private_rooms=3, messages=0))


def test_read_markers_in_the_rooms_the_reader_opened() -> None:
    assert [read_marker(i, 1000) for i in range(3)] == [1000, 900, None]
    assert read_marker(0, 0) is None  # an empty room has nothing to mark


def test_the_reader_belongs_to_the_rooms_they_opened_and_to_the_private_ones() -> None:
    spec = SeedSpec(rooms=10, private_rooms=2, messages=0, authors=2)
    assert members(spec, 0, private=False) == [READER, "author0", "author1"]
    assert members(spec, 2, private=False) == ["author0", "author1"]  # never opened
    assert members(spec, 2, private=True) == [READER, "author0", "author1"]


def test_every_nth_message_mentions_the_reader() -> None:
    spec = SeedSpec(rooms=2, private_rooms=0, messages=0, mention_every=5)
    rng = random.Random(1)
    texts = [message_text(spec, n, rng) for n in range(10)]
    assert [n for n, t in enumerate(texts) if t.startswith(f"@{READER} ")] == [0, 5]
    assert all(f"@{READER}" not in t for n, t in enumerate(texts) if n % 5)


def test_cache_key_names_the_seed_and_the_number_of_migrations() -> None:
    key = SeedSpec(rooms=100, private_rooms=8, messages=1_000_000).key()
    assert key.startswith(f"hello-v{SEED_VERSION}-mig{len(SQLITE)}-r100-p8-m1000000-")
    assert key != SeedSpec(rooms=100, private_rooms=8, messages=999_999).key()


async def test_seed_goes_through_the_store_and_is_cached(tmp_path: Path) -> None:
    spec = SeedSpec(rooms=4, private_rooms=1, messages=250, authors=3, mention_every=10, batch=100)
    db, info = await seeded_database(spec, tmp_path)
    assert info["cached"] is False
    assert (info["messages"], info["mentions"], info["read_markers"]) == (250, 25, 3)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM rooms").fetchone() == (4,)
        assert conn.execute("SELECT sum(last_seq), count(*) FROM rooms").fetchone() == (250, 4)
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (250,)
        mentions = "SELECT count(*) FROM messages WHERE text LIKE '@reader %'"
        assert conn.execute(mentions).fetchone() == (25,)
        private = "SELECT count(*) FROM members m JOIN rooms r USING (room) WHERE r.private = 1"
        assert conn.execute(private).fetchone() == (4,)  # READER and the three authors
        reader = "SELECT count(*) FROM members WHERE username = ?"
        assert conn.execute(reader, (READER,)).fetchone() == (3,)  # not the room at index 2
        assert conn.execute("SELECT count(*) FROM members").fetchone() == (15,)
        markers = "SELECT count(*) FROM read_marks WHERE username = ? AND seq > 0"
        assert conn.execute(markers, (READER,)).fetchone() == (3,)
        marks = dict(conn.execute("SELECT room, seq FROM read_marks WHERE username = ?", (READER,)))
        rows = conn.execute("SELECT room, seq, username, text FROM messages").fetchall()
    past = [text for room, seq, user, text in rows if seq > marks.get(room, 0) and user != READER]
    assert counted_at_read_time(db) == {
        "unread": len(past),
        "mentions": sum(f"@{READER}" in text for text in past),
    }
    again, info2 = await seeded_database(spec, tmp_path)
    assert (again, info2["cached"]) == (db, True)
    assert os.listdir(tmp_path) == [spec.key()]  # no scratch directory left behind


def test_copy_database_leaves_the_shm_index_behind(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for suffix in ("", "-wal", "-shm"):
        (cache / f"{DB_NAME}{suffix}").write_text(suffix or "db")
    copy_database(cache / DB_NAME, tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [DB_NAME, f"{DB_NAME}-wal"]


def test_count_totals_sums_the_rooms_counts() -> None:
    hello = b'{"type":"hello","rooms":[{"room":"a","unread":3,"mentions":1},{"room":"b"}]}'
    assert count_totals(hello) == {"unread": 3, "mentions": 1}
