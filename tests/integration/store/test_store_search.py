"""Full-text search (contract v2), run unchanged on SQLite and on PostgreSQL: both stores
give the same messages for the same words. SQLite runs twice: with its search index filled
at every batch, and never filled (every row above `indexed_upto` is read directly), so both
halves of its search answer every test (migrations.py, version 11)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import parley.store.sqlite
from parley.core.search import MAX_QUERY_WORDS, query_words
from parley.store import Store
from parley.store.base import DeleteRequest, EditRequest, MemberChange
from parley.store.driver import sqlite3
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SQLiteStore
from tests.support.pg import PgServer

StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

FILLED_AT_ONCE = (1, 0.0)
NEVER_FILLED = (10**9, 10.0**9)


@pytest.fixture(params=["sqlite", "sqlite-unfilled", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """conftest.py's, with SQLite's search index filled at once or never."""
    if request.param.startswith("sqlite"):
        path = tmp_path / "parley.db"
        fill = NEVER_FILLED if request.param == "sqlite-unfilled" else FILLED_AT_ONCE
        return lambda: SQLiteStore(path, index_fill=fill)
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    return lambda: PostgresStore(url)


async def post(store: Store, text: str, room: str = "general", user: str = "ann") -> int:
    msg, created = await store.append(room, user, text, None)
    assert created
    return msg.seq


async def found(
    store: Store, query: str, user: str = "ann", room: str | None = None, limit: int = 50
) -> list[int]:
    """The seqs of the messages `user` finds with `query`, newest first."""
    return [m.seq for m in await store.search(user, query_words(query), room, limit)]


async def test_every_word_must_match_as_a_prefix(store: Store) -> None:
    one = await post(store, "The quick brown fox")
    two = await post(store, "a quick lunch")
    await post(store, "slow brown bear")
    assert await found(store, "quick") == [two, one]
    assert await found(store, "qui bro") == [one]
    assert await found(store, "brown quick fox") == [one]
    assert await found(store, "uick") == []  # a word's start, never its middle
    assert await found(store, "quick zebra") == []


async def test_case_and_diacritics_fold(store: Store) -> None:
    seq = await post(store, "Café CRÈME brûlée")
    assert await found(store, "cafe") == [seq]
    assert await found(store, "CAFÉ creme BRU") == [seq]
    assert await found(store, "Brulee") == [seq]


async def test_results_are_the_full_messages_newest_first_up_to_limit(store: Store) -> None:
    seqs = [await post(store, f"note number {i}") for i in range(5)]
    assert await found(store, "note") == seqs[::-1]
    assert await found(store, "note", limit=2) == seqs[:2:-1]
    [latest] = await store.search("ann", ["note"], None, 1)
    assert (latest.room, latest.username, latest.text) == ("general", "ann", "note number 4")


async def test_deleted_never_matches_and_edit_replaces_the_words(store: Store) -> None:
    keep = await post(store, "apples and pears")
    gone = await post(store, "apples and plums")
    edited = await post(store, "bananas")
    await store.change(DeleteRequest("general", "ann", None, gone))
    await store.change(EditRequest("general", "ann", None, edited, "cherries, not apples"))
    assert await found(store, "apples") == [edited, keep]
    assert await found(store, "plums") == []
    assert await found(store, "bananas") == []
    assert await found(store, "cherr") == [edited]
    # an edited message edited again: only the latest words count, and it can be deleted
    await store.change(EditRequest("general", "ann", None, edited, "dates"))
    assert await found(store, "cherries") == []
    await store.change(DeleteRequest("general", "ann", None, edited))
    assert await found(store, "dates") == []


async def test_only_rooms_the_user_may_read_now(store: Store) -> None:
    for name in ("ann", "bob"):
        assert await store.create_user(name, "hash")
    secret = await store.create_room("secret", True, "ann")
    assert secret is not None
    public = await store.create_room("lobby", False, "ann")
    assert public is not None
    hidden = await post(store, "launch codes", secret.room)
    open_seq = await post(store, "launch party", public.room)
    assert await found(store, "launch", user="bob") == [open_seq]
    await store.change_member(MemberChange(secret.room, "bob", "invited", "ann"))
    both = await store.search("bob", ["launch"], None, 10)
    assert {(m.room, m.seq) for m in both} == {(secret.room, hidden), (public.room, open_seq)}
    assert await found(store, "launch", user="bob", room=secret.room) == [hidden]
    await store.change_member(MemberChange(secret.room, "bob", "removed", "ann"))
    assert await found(store, "launch", user="bob") == [open_seq]
    assert await found(store, "launch", user="bob", room=secret.room) == []


@pytest.mark.parametrize(
    "query",
    [
        " ".join(["word"] * 1000),
        " ".join(f"w{i}" for i in range(1000)),
        '"unbalanced',
        "NEAR(a b, 2)",
        "a* OR b -c",
        "((( ))",
        "x\x00y",
        "x" * 5000,
        "'; DROP TABLE messages; --",
        "\\' & | ! :* <->",
        "col:text ^start",
    ],
)
async def test_hostile_queries_are_plain_words(store: Store, query: str) -> None:
    seq = await post(store, "a word x y near col text start drop table messages b c")
    words = query_words(query)
    assert len(words) <= MAX_QUERY_WORDS
    result = await found(store, query)
    assert result in ([], [seq])


async def test_queries_of_operators_alone_find_nothing(store: Store) -> None:
    await post(store, "anything")
    assert await found(store, "*") == []
    assert await found(store, '" - ( )') == []


async def test_long_words_match_by_their_first_hundred_characters(store: Store) -> None:
    long_word = "ab" * 150
    seq = await post(store, f"see {long_word} here")
    assert await found(store, long_word) == [seq]
    assert await found(store, long_word[:120]) == [seq]
    assert await found(store, "ab" * 60 + "zz") == [seq]  # past 100 characters: not compared


async def test_messages_stored_before_search_are_indexed(
    store_factory: StoreFactory, old_database: OldDatabase
) -> None:
    await old_database(
        6,
        "INSERT INTO messages (room, seq, username, text, ts, client_id, n)"
        " VALUES ('general', 1, 'ann', 'Ancient Éclair', '2026-01-01T00:00:00.000Z', NULL, 1);"
        " INSERT INTO messages (room, seq, username, text, ts, client_id, n, deleted)"
        " VALUES ('general', 2, 'ann', '', '2026-01-01T00:00:01.000Z', NULL, 2, 1);"
        " UPDATE rooms SET last_seq = 2, msgs = 2 WHERE room = 'general';",
    )
    store = store_factory()
    await store.open()
    try:
        assert await found(store, "eclair anc") == [1]
        seq = await post(store, "a new eclair")
        assert await found(store, "eclair") == [seq, 1]
        await store.change(EditRequest("general", "ann", None, 1, "renamed"))
        assert await found(store, "eclair") == [seq]
    finally:
        await store.close()


async def test_long_words_past_many_messages_of_the_same_start(store: Store) -> None:
    """Past a thousand messages of words that begin the same way, the older matches
    are still found (SQLite checks the newest rows itself, then asks the index)."""
    old = await post(store, "the thesis of the theory")
    misses = [store.append_soon("general", "ann", "the them then there", None) for _ in range(1100)]
    await asyncio.gather(*misses)
    new = await post(store, "another thesis")
    assert await found(store, "thesis") == [new, old]
    assert await found(store, "thes theo") == [old]
    assert await found(store, "theses") == []
    assert len(await found(store, "them there", limit=50)) == 50


async def test_one_room_among_rooms_of_the_same_name_and_of_the_same_words(store: Store) -> None:
    """The room is indexed by its key: `dm`, `dm~tag` and a room whose name is one of the
    query's words never mix."""
    for name in ("ann", "bob", "cat"):
        assert await store.create_user(name, "hash")
    dm, _ = await store.open_dm(["ann", "bob"])
    lobby = await store.create_room("dm", False, "cat")  # cat sees no room called dm
    assert lobby is not None
    in_dm = await post(store, "lobby dm talk", dm.room)
    in_lobby = await post(store, "dm talk in the lobby", lobby.room)
    in_general = await post(store, "dm talk lobby general")
    assert await found(store, "talk", room=dm.room) == [in_dm]
    assert await found(store, "talk", room=lobby.room) == [in_lobby]
    assert await found(store, "talk lobby", room="general") == [in_general]
    assert await found(store, "general") == [in_general]
    assert await found(store, "talk", user="bob") == [in_general, in_lobby, in_dm]
    assert await found(store, "talk", user="cat") == [in_general, in_lobby]


async def test_matches_older_than_the_newest_few_thousand_messages(store: Store) -> None:
    """SQLite checks the newest 2,000 rows itself and asks the index for older ones,
    where short words (1-2 characters) are checked for what the longer ones match:
    every kind of query finds old messages the same, in one room and in all."""
    for name in ("ann", "bob"):
        assert await store.create_user(name, "hash")
    side = await store.create_room("side", True, "ann")
    assert side is not None
    old_general = await post(store, "zq quokka xylophone")
    old_side = await post(store, "zq quokka marimba", side.room)
    gone = await post(store, "zq quokka deleted")
    await store.change(DeleteRequest("general", "ann", None, gone))
    fillers = [
        store.append_soon(room, "ann", f"filler {i} calm tone" + " pair" * (i % 25 == 0), None)
        for i in range(1300)
        for room in ("general", side.room)
    ]
    stored = [msg for msg, _ in await asyncio.gather(*fillers)]
    pairs = [m.seq for m in stored if m.room == "general" and "pair" in m.text][::-1]
    new = await post(store, "zq quokka at last")
    assert await found(store, "zq") == [new, old_side, old_general]
    assert await found(store, "z q") == [new, old_side, old_general]
    assert await found(store, "zq xylo") == [old_general]
    assert await found(store, "q mari") == [old_side]
    assert await found(store, "quokka", room=side.room) == [old_side]
    assert await found(store, "zq", room="general") == [new, old_general]
    assert await found(store, "quokka", user="bob") == [new, old_general]
    assert await found(store, "deleted") == []
    assert len(await found(store, "fil c", limit=50)) == 50
    # two common words seldom together: past the first rows, read on or ask the index
    assert await found(store, "calm pair", room="general", limit=20) == pairs[:20]
    assert await found(store, "calm pair", room="general", limit=50) == pairs[:50]


async def test_search_index_off_then_on_again(store_factory: StoreFactory) -> None:
    """`--search off` stops indexing; on again, the index holds every message as it is
    now, changes made while it was off included."""
    store = store_factory()
    await store.open()
    try:
        edited = await post(store, "before the pause")
        deleted = await post(store, "doomed pause")
    finally:
        await store.close()
    off = store_factory()
    assert isinstance(off, SQLiteStore | PostgresStore)
    off.search_index = False
    await off.open()
    try:
        during = await post(off, "during the pause")
        await off.change(EditRequest("general", "ann", None, edited, "pause, edited"))
        await off.change(DeleteRequest("general", "ann", None, deleted))
    finally:
        await off.close()
    store = store_factory()
    await store.open()
    try:
        assert await found(store, "pause") == [during, edited]
        assert await found(store, "before") == []
        assert await found(store, "doomed") == []
        latest = await post(store, "after the pause")
        assert await found(store, "pau") == [latest, during, edited]
    finally:
        await store.close()


def indexed_upto(store: SQLiteStore) -> tuple[int, int]:
    """(indexed_upto, the last message row's rowid) of a SQLite store's database."""
    conn = sqlite3.connect(store.path)
    try:
        upto = conn.execute("SELECT indexed_upto FROM search_state").fetchone()[0]
        top = conn.execute("SELECT max(rowid) FROM messages").fetchone()[0]
        return upto, top
    finally:
        conn.close()


async def test_sqlite_fills_its_index_in_bulk_with_the_words_of_the_moment(
    tmp_path: Path,
) -> None:
    """Messages edited and deleted before the fill are indexed as they are at the fill;
    changed after it, the index takes their old words out (which it must be given)."""
    store = SQLiteStore(tmp_path / "parley.db", index_fill=(2000, 10.0**9))
    await store.open()
    try:
        needle = await post(store, "needle in the hay")
        gone = await post(store, "needle lost")
        await store.change(EditRequest("general", "ann", None, needle, "thread in the hay"))
        await store.change(DeleteRequest("general", "ann", None, gone))
        assert indexed_upto(store)[0] == 0
        fillers = [store.append_soon("general", "ann", f"hay {i}", None) for i in range(2600)]
        await asyncio.gather(*fillers)
        upto, top = indexed_upto(store)
        assert 2000 <= upto < top  # one fill, in the batch that reached 2,000 sends
        # needle is more than 2,000 rows down: only the index can answer for it
        assert await found(store, "thread") == [needle]
        assert await found(store, "needle") == []
        await store.change(EditRequest("general", "ann", None, needle, "weave in the hay"))
        assert await found(store, "thread") == []
        assert await found(store, "weave") == [needle]
        assert await found(store, "weave", room="general") == [needle]
    finally:
        await store.close()


async def test_sqlite_fills_what_an_earlier_run_left_unindexed(tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    store = SQLiteStore(path, index_fill=NEVER_FILLED)
    await store.open()
    try:
        for i in range(3):
            await post(store, f"left over {i}")
    finally:
        await store.close()
    assert indexed_upto(store) == (0, 3)
    store = SQLiteStore(path, index_fill=(10**9, 0.01))
    await store.open()
    try:
        for _ in range(500):  # the fill comes a moment after the start
            if indexed_upto(store) == (3, 3):
                break
            await asyncio.sleep(0.01)
        assert indexed_upto(store) == (3, 3)
        assert await found(store, "left") == [3, 2, 1]
    finally:
        await store.close()


@pytest.mark.parametrize("in_room", [False, True])
@pytest.mark.parametrize("for_user", [False, True])
@pytest.mark.parametrize("below", [False, True])
async def test_sqlite_search_reads_the_index_first_whatever_the_filters(
    tmp_path: Path, in_room: bool, for_user: bool, below: bool
) -> None:
    """The plan of every form of the index's query: its matches, newest first, drive the
    join, each message read by its rowid. Never a room's messages read one by one and each
    asked of the index (SQLite 3.51's own plan for a room filter: 10 s for a word nothing
    holds in a room of 10,000 messages, with 1,000,000 stored)."""
    store = SQLiteStore(tmp_path / "parley.db")
    await store.open()
    await store.close()
    sql = parley.store.sqlite._matching_sql(in_room, for_user, below)
    params = {"match": "x", "user": "u", "limit": 20, "room": "r", "below": 9}
    conn = sqlite3.connect(tmp_path / "parley.db")
    try:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    finally:
        conn.close()
    assert plan[0].startswith("SCAN f VIRTUAL TABLE")
    assert "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)" in plan
    assert not any("TEMP B-TREE" in step for step in plan)
