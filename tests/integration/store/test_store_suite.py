"""The Store contract, run unchanged on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from parley.protocol import Send
from parley.store import Appended, MessageQuery, Store, StoreUnavailable, UnknownRoom
from parley.store.batch import Answer, Answered, BatchAnswer
from parley.store.postgres import PostgresStore
from tests.support.pg import PgServer
from tests.support.stores import nodes_on_one_database

# The conftest fixtures: unopened stores on one database; a database an older version left.
StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


# --- users and sessions --------------------------------------------------------------


async def test_users_are_unique_case_insensitively(store: Store) -> None:
    assert await store.create_user("Alice", "hash-1")
    assert not await store.create_user("alice", "hash-2")
    assert not await store.create_user("ALICE", "hash-3")
    found = await store.find_user("aLiCe")
    assert found is not None
    assert (found.username, found.password_hash) == ("Alice", "hash-1")
    assert await store.find_user("bob") is None


async def test_tokens_live_expire_and_are_deleted(store: Store) -> None:
    assert await store.create_user("carol", "h")
    now = time.time()
    await store.create_token("t-live", "carol", now + 3600)
    await store.create_token("t-old", "carol", now - 1)
    assert await store.token_user("t-live", now) == "carol"
    assert await store.token_user("t-old", now) is None
    assert await store.token_user("t-unknown", now) is None
    await store.delete_token("t-live")
    assert await store.token_user("t-live", now) is None
    await store.delete_token("t-live")  # deleting twice is harmless


async def test_expired_tokens_are_purged_and_live_ones_kept(store: Store) -> None:
    assert await store.create_user("purge", "h")
    now = time.time()
    for i in range(3):
        await store.create_token(f"t-dead-{i}", "purge", now - 10 - i)
    await store.create_token("t-edge", "purge", now)  # expires exactly now: dead
    await store.create_token("t-alive", "purge", now + 3600)
    assert await store.purge_expired_tokens(now) == 4
    assert await store.purge_expired_tokens(now) == 0
    assert await store.token_user("t-alive", now) == "purge"
    # the rows are gone, not just filtered: they would still show at an earlier "now"
    assert await store.token_user("t-dead-0", now - 3600) is None


async def test_set_password_keeps_only_the_session_that_changed_it(store: Store) -> None:
    assert await store.create_user("Fay", "old-hash")
    assert await store.create_user("gus", "gus-hash")
    now = time.time()
    for token in ("fay-1", "fay-2", "fay-3"):
        await store.create_token(token, "Fay", now + 3600)
    await store.create_token("gus-1", "gus", now + 3600)
    await store.set_password("fay", "new-hash", "fay-2")  # any spelling of the name
    found = await store.find_user("Fay")
    assert found is not None
    assert found.password_hash == "new-hash"
    assert [await store.token_user(t, now) for t in ("fay-1", "fay-2", "fay-3")] == [
        None,
        "Fay",
        None,
    ]
    assert await store.token_user("gus-1", now) == "gus"  # nobody else's sessions
    gus = await store.find_user("gus")
    assert gus is not None
    assert gus.password_hash == "gus-hash"
    await store.set_password("Fay", "newer-hash", None)
    assert await store.token_user("fay-2", now) is None


async def test_delete_user_tokens_ends_every_session_of_that_user_only(store: Store) -> None:
    assert await store.create_user("Hal", "h")
    assert await store.create_user("ida", "h")
    now = time.time()
    for token in ("hal-1", "hal-2"):
        await store.create_token(token, "Hal", now + 3600)
    await store.create_token("ida-1", "ida", now + 3600)
    assert await store.delete_user_tokens("HAL") == 2
    assert await store.token_user("hal-1", now) is None
    assert await store.token_user("hal-2", now) is None
    assert await store.token_user("ida-1", now) == "ida"
    assert await store.delete_user_tokens("hal") == 0


# --- rooms ----------------------------------------------------------------------------


async def test_general_exists_from_the_start(store: Store) -> None:
    room = await store.visible_room("general", "anyone")
    assert room is not None
    assert (room.room, room.private, room.owner, room.last_seq) == ("general", False, None, 0)
    assert await store.last_seqs() == {"general": 0}


async def test_rooms_visibility_and_members(store: Store) -> None:
    assert await store.create_room("lobby", False, "dora")
    assert not await store.create_room("lobby", True, "eve")
    assert await store.create_room("secret", True, "dora")

    lobby = await store.visible_room("lobby", "eve")
    assert lobby is not None
    assert (lobby.private, lobby.owner, lobby.last_seq) == (False, "dora", 0)
    assert await store.visible_room("secret", "eve") is None
    assert await store.visible_room("nothing", "eve") is None
    secret = await store.visible_room("secret", "dora")
    assert secret is not None
    assert secret.private

    assert [r.room for r in await store.list_rooms("eve")] == ["general", "lobby"]
    assert [r.room for r in await store.list_rooms("dora")] == ["general", "lobby", "secret"]

    assert await store.members("secret") == ["dora"]
    await store.add_member("secret", "eve")
    await store.add_member("secret", "eve")  # idempotent
    assert await store.members("secret") == ["dora", "eve"]
    assert await store.visible_room("secret", "eve") is not None
    assert [r.room for r in await store.list_rooms("eve")] == ["general", "lobby", "secret"]


async def test_rooms_and_role_say_what_list_rooms_and_the_user_record_say(store: Store) -> None:
    assert await store.create_user("dora", "h", admin=True)
    assert await store.create_user("Eve", "h")
    assert await store.create_room("secret", True, "dora")
    for username, admin in (("dora", True), ("Eve", False), ("nobody", False)):
        rooms, is_admin = await store.rooms_and_role(username)
        assert rooms == await store.list_rooms(username)
        assert is_admin is admin
    assert [r.room for r in (await store.rooms_and_role("dora"))[0]] == ["general", "secret"]
    assert await store.set_admin("dora", "eve", True)
    assert (await store.rooms_and_role("Eve"))[1] is True


async def test_a_name_only_hidden_rooms_hold_is_free_and_gets_a_key_of_its_own(
    store: Store,
) -> None:
    """Issue 11, item 7: creating a private room's name must not betray it."""
    hidden = await store.create_room("plan", True, "dora", tag="aaaaaaaaaaaaaaaa", now=1.0)
    assert hidden is not None
    assert (hidden.room, hidden.name, hidden.tag) == ("plan", "plan", "aaaaaaaaaaaaaaaa")
    public = await store.create_room("plan", False, "eve", tag="bbbbbbbbbbbbbbbb", now=2.0)
    assert public is not None
    assert (public.room, public.name, public.private) == ("plan~bbbbbbbbbbbbbbbb", "plan", False)

    # each calls "plan" the room they have seen longest; the tag reaches the other one
    assert (await store.visible_room("plan", "eve")) == public
    seen_by_dora = await store.visible_room("plan", "dora")
    assert seen_by_dora is not None
    assert seen_by_dora.room == "plan"
    tagged = await store.visible_room("plan~bbbbbbbbbbbbbbbb", "dora")
    assert tagged is not None
    assert (tagged.room, tagged.since) == (public.room, math.inf)  # dora never used it
    assert await store.visible_room("plan~aaaaaaaaaaaaaaaa", "eve") is None  # a tag is no key
    assert await store.visible_room("plan~cccccccccccccccc", "dora") is None

    # whoever sees a room of the name gets the conflict; separate stores of messages
    assert await store.create_room("plan", True, "frank") is None
    assert await store.create_room("plan", False, "dora") is None
    await store.append("plan", "dora", "ours", None)
    await store.append(public.room, "eve", "theirs", None)
    assert [m.text for m in await store.messages(MessageQuery("plan"))] == ["ours"]
    assert [m.text for m in await store.messages(MessageQuery(public.room))] == ["theirs"]
    assert (await store.last_seqs())[public.room] == 1
    assert [r.room for r in await store.list_rooms("eve")] == ["general", public.room]
    assert [r.room for r in await store.list_rooms("dora")] == ["general", "plan", public.room]


async def test_a_room_is_seen_from_membership_on(store: Store) -> None:
    """An invitation never changes what a name already means to the invitee."""
    older = await store.create_room("club", True, "gus", tag="1111111111111111", now=3.0)
    own = await store.create_room("club", True, "hal", tag="2222222222222222", now=4.0)
    assert older is not None
    assert own is not None
    assert own.room == "club~2222222222222222"
    await store.add_member(older.room, "hal", now=5.0)
    mine = await store.visible_room("club", "hal")
    assert mine is not None
    assert (mine.room, mine.since) == (own.room, 4.0)
    invited = await store.visible_room("club~1111111111111111", "hal")
    assert invited is not None
    assert (invited.room, invited.since) == ("club", 5.0)
    assert {(r.room, r.since) for r in await store.list_rooms("hal") if r.name == "club"} == {
        ("club", 5.0),
        ("club~2222222222222222", 4.0),
    }


async def test_a_public_room_counts_from_a_users_first_use(store: Store) -> None:
    """A public room made to catch a private room's name does not outrank the private
    room for its members: a public room counts from the user's first use of it."""
    private = await store.create_room("deal", True, "ida", tag="3333333333333333", now=1.0)
    squat = await store.create_room("deal", False, "max", tag="4444444444444444", now=2.0)
    assert private is not None
    assert squat is not None
    await store.add_member(private.room, "joe", now=3.0)  # invited after the squat
    joes = await store.visible_room("deal", "joe")
    assert joes is not None
    assert joes.room == private.room
    unused = await store.visible_room("deal~4444444444444444", "joe")
    assert unused is not None
    assert unused.since == math.inf
    await store.add_member(squat.room, "joe")  # joe uses the public one: now counted
    used = await store.visible_room("deal~4444444444444444", "joe")
    assert used is not None
    assert 3.0 < used.since < math.inf
    again = await store.visible_room("deal", "joe")
    assert again is not None
    assert again.room == private.room  # what "deal" means to joe did not change


async def test_one_name_created_at_once_on_several_nodes_makes_one_room(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 3) as nodes:
        made = await asyncio.gather(
            *(node.create_room("race", False, f"racer{n}") for n, node in enumerate(nodes))
        )
        assert sum(record is not None for record in made) == 1
        assert [r.room for r in await nodes[0].list_rooms("anyone")] == ["general", "race"]


# --- read markers ---------------------------------------------------------------------


async def _last_read(store: Store, username: str) -> dict[str, int]:
    return {r.room: r.last_read for r in await store.list_rooms(username)}


async def test_a_read_marker_only_moves_forward(store: Store) -> None:
    for n in range(5):
        await store.append("general", "kim", f"m{n}", None)
    assert (await _last_read(store, "kim"))["general"] == 0  # never set
    assert await store.mark_read("general", "kim", 3) == 3
    assert await store.mark_read("general", "kim", 2) is None  # lower: ignored
    assert await store.mark_read("general", "kim", 3) is None  # the same: no move
    assert (await _last_read(store, "kim"))["general"] == 3
    assert await store.mark_read("general", "kim", 4) == 4
    room = await store.visible_room("general", "kim")
    assert room is not None
    assert (room.last_seq, room.last_read) == (5, 4)


async def test_a_read_marker_stops_at_the_rooms_last_seq(store: Store) -> None:
    await store.append("general", "lee", "only", None)
    assert await store.mark_read("general", "lee", 2**63 - 1) == 1  # clamped
    assert await store.mark_read("general", "lee", 5) is None
    assert await store.mark_read("general", "lee", 0) is None
    assert (await _last_read(store, "lee"))["general"] == 1
    assert await store.mark_read("general", "new", 0) is None  # nothing to read: no marker


async def test_read_markers_are_per_user_and_per_room(store: Store) -> None:
    secret = await store.create_room("inner", True, "mia")
    assert secret is not None
    for room in ("general", "inner"):
        for n in range(3):
            await store.append(room, "mia", f"{room}{n}", None)
    assert await store.mark_read("general", "mia", 2) == 2
    assert await store.mark_read("inner", "mia", 3) == 3
    assert await store.mark_read("general", "ned", 1) == 1
    assert await _last_read(store, "mia") == {"general": 2, "inner": 3}
    assert await _last_read(store, "ned") == {"general": 1}
    named = await store.rooms_named("inner", "mia")
    assert [(r.room, r.last_read) for r in named] == [("inner", 3)]


# --- messages -------------------------------------------------------------------------


async def test_append_numbers_each_room_from_one(store: Store) -> None:
    await store.create_room("other", False, "finn")
    first, created = await store.append("general", "finn", "hello", "c1")
    assert created
    assert (first.room, first.seq, first.username, first.text, first.client_id) == (
        "general",
        1,
        "finn",
        "hello",
        "c1",
    )
    assert first.ts.endswith("Z")
    assert first.ts[10] == "T"
    second, _ = await store.append("general", "finn", "again", None)
    other, _ = await store.append("other", "finn", "elsewhere", None)
    assert (second.seq, other.seq) == (2, 1)
    assert second.client_id is None
    assert await store.last_seqs() == {"general": 2, "other": 1}
    room = await store.visible_room("general", "finn")
    assert room is not None
    assert room.last_seq == 2


async def test_sends_queued_together_share_commits_and_are_counted(store: Store) -> None:
    """`stats()` for /metrics: the sends of one loop iteration share a commit (group
    commit), and every stored one is counted."""
    before = store.stats()
    sent = [store.append_soon("general", "gus", f"m{i}", f"s{i}") for i in range(50)]
    await asyncio.gather(*sent)
    after = store.stats()
    assert after.committed_writes - before.committed_writes == 50
    assert 1 <= after.commits - before.commits < 50


async def test_append_then_answers_each_send_once_after_its_commit(store: Store) -> None:
    """The callback form of `append_soon` (parley.v1 sockets use it): every send answered
    exactly once, in order, a resend with the message first stored, a missing room with
    its error; the answers come from the batch's settling, so all are there when the
    stored messages can be read back."""
    answers: list[Appended] = []
    done = asyncio.get_running_loop().create_future()

    def answer(result: Appended) -> None:
        answers.append(result)
        if len(answers) == 4:
            done.set_result(None)

    store.append_then("general", "ivy", "one", "i1", None, (), Answer(answer))
    store.append_then("general", "ivy", "two", "i2", None, (), Answer(answer))
    store.append_then("nowhere", "ivy", "lost", "i3", None, (), Answer(answer))
    store.append_then("general", "ivy", "one again", "i1", None, (), Answer(answer))
    await asyncio.wait_for(done, 10)
    first, second, missing, again = answers
    assert not isinstance(first, BaseException)
    assert not isinstance(second, BaseException)
    assert [(m.seq, m.text, created) for m, created in (first, second)] == [
        (1, "one", True),
        (2, "two", True),
    ]
    assert isinstance(missing, UnknownRoom)
    assert again == (first[0], False)
    assert [m.text for m in await store.messages(MessageQuery("general"))] == ["one", "two"]


async def test_batch_answers_reach_their_sink_in_one_call_in_order(store: Store) -> None:
    """Sends with a `BatchAnswer` (parley.v1 and plain-text sockets, through the chat
    service) queued in one loop iteration share a batch: their sink hears of all of them
    in one call, in the order they were sent, each with its token and its own result."""
    calls: list[Answered] = []
    done = asyncio.get_running_loop().create_future()

    def sink(answered: Answered) -> None:
        calls.append(answered)
        if sum(map(len, calls)) == 3:
            done.set_result(None)

    for token, room in enumerate(["general", "nowhere", "general"]):
        answer = BatchAnswer(sink, token)
        store.append_then(room, "ivy", f"b{token}", f"b{token}", None, (), answer)
    await asyncio.wait_for(done, 10)
    assert [[token for token, _ in call] for call in calls] == [[0, 1, 2]]
    first, missing, last = (result for _, result in calls[0])
    assert isinstance(missing, UnknownRoom)
    assert not isinstance(first, BaseException)
    assert not isinstance(last, BaseException)
    assert [(m.seq, m.text, created) for m, created in (first, last)] == [
        (1, "b0", True),
        (2, "b2", True),
    ]


async def test_append_all_then_queues_a_sockets_sends_in_one_call(store: Store) -> None:
    """`append_all_then` (a parley.v1 socket's sends of one read): each call's sends are
    stored in their order and answered through its sink in one call, each with its token
    and its own result (a resend within the call, a missing room); of two calls made in
    one loop iteration, the first call's sink hears first."""
    calls: list[tuple[str, Answered]] = []
    done = asyncio.get_running_loop().create_future()

    def sink(name: str) -> Callable[[Answered], None]:
        def answered(answers: Answered) -> None:
            calls.append((name, answers))
            if sum(len(a) for _, a in calls) == 5:
                done.set_result(None)

        return answered

    frames = [
        Send("general", "one", "q1"),
        Send("nowhere", "lost", "q2"),
        Send("general", "one again", "q1"),
        Send("general", "two", "q3"),
        Send("general", "three", "q4"),
    ]
    store.append_all_then("ivy", [(f.room, f) for f in frames[:3]], sink("first"))
    store.append_all_then("ivy", [(f.room, f) for f in frames[3:]], sink("second"))
    await asyncio.wait_for(done, 10)
    assert [(name, [token for token, _ in answers]) for name, answers in calls] == [
        ("first", frames[:3]),
        ("second", frames[3:]),
    ]
    one, missing, again = (result for _, result in calls[0][1])
    assert isinstance(missing, UnknownRoom)
    assert not isinstance(one, BaseException)
    assert again == (one[0], False)
    texts = [m.text for m in await store.messages(MessageQuery("general"))]
    assert texts == ["one", "two", "three"]


async def test_append_is_idempotent_per_user_and_client_id(store: Store) -> None:
    first, created = await store.append("general", "gus", "once", "same-id")
    assert created
    again, created_again = await store.append("general", "gus", "a different text", "same-id")
    assert not created_again
    assert again == first
    other_user, created_other = await store.append("general", "hal", "mine", "same-id")
    assert created_other
    assert other_user.seq == 2
    assert [m.seq for m in await store.messages(MessageQuery("general"))] == [1, 2]


async def test_append_to_a_missing_room_raises(store: Store) -> None:
    with pytest.raises(UnknownRoom):
        await store.append("nowhere", "ivy", "hi", "c")
    assert await store.last_seqs() == {"general": 0}


async def test_concurrent_appends_from_several_nodes_are_gapless(
    store_factory: StoreFactory,
) -> None:
    """Three store instances on one database stand for three nodes writing at once."""
    async with nodes_on_one_database(store_factory, 3) as nodes:
        await nodes[0].create_room("busy", False, "jay")
        rooms = ("general", "busy")
        per_node = 60
        results = await asyncio.gather(
            *(
                node.append(rooms[i % 2], f"user{n}", f"m{n}-{i}", f"n{n}-{i}")
                for n, node in enumerate(nodes)
                for i in range(per_node)
            )
        )
        assert all(created for _, created in results)
        for room in rooms:
            seqs = sorted(msg.seq for msg, _ in results if msg.room == room)
            assert seqs == list(range(1, len(seqs) + 1)), room
            stored = await nodes[1].messages(MessageQuery(room, limit=100))
            assert [m.seq for m in stored] == seqs
        assert await nodes[2].last_seqs() == {"general": 90, "busy": 90}


async def test_racing_duplicates_store_one_message(store_factory: StoreFactory) -> None:
    """The same (user, client_id) sent through several nodes at once: one message, one seq."""
    async with nodes_on_one_database(store_factory, 3) as nodes:
        for round_ in range(10):
            cid = f"dup-{round_}"
            results = await asyncio.gather(
                *(node.append("general", "kim", f"try {k}", cid) for node in nodes for k in (1, 2))
            )
            assert sum(created for _, created in results) == 1
            assert all(msg == results[0][0] for msg, _ in results)
        stored = await nodes[0].messages(MessageQuery("general", limit=100))
        assert [m.seq for m in stored] == list(range(1, 11))
        assert await nodes[0].last_seqs() == {"general": 10}


async def test_one_bad_message_fails_alone_among_concurrent_ones(store: Store) -> None:
    """Appends that share a transaction (group commit): a missing room fails only itself."""
    await store.create_room("side", False, "kim")
    results = await asyncio.gather(
        store.append("general", "kim", "a", "m1"),
        store.append("nowhere", "kim", "b", "m2"),
        store.append("side", "kim", "c", "m3"),
        store.append("general", "kim", "again", "m1"),
        store.append("general", "lee", "d", None),
        return_exceptions=True,
    )
    assert isinstance(results[1], UnknownRoom)
    ok = [r for r in results if isinstance(r, tuple)]
    assert [(m.room, m.seq, m.text, created) for m, created in ok] == [
        ("general", 1, "a", True),
        ("side", 1, "c", True),
        ("general", 1, "a", False),
        ("general", 2, "d", True),
    ]
    assert await store.last_seqs() == {"general": 2, "side": 1}


async def test_a_text_the_database_refuses_fails_alone_in_its_batch(store: Store) -> None:
    """The server refuses NUL before the store sees it; were one to reach the store,
    PostgreSQL rejects it (SQLite stores it), and the rest of its batch must not suffer."""
    results = await asyncio.gather(
        store.append("general", "nia", "before", "n1"),
        store.append("general", "nia", "nul \x00 inside", "n2"),
        store.append("general", "nia", "after", "n3"),
        return_exceptions=True,
    )
    kept = [r[0].text for r in results if isinstance(r, tuple)]
    if isinstance(store, PostgresStore):
        assert kept == ["before", "after"]
        assert isinstance(results[1], asyncpg.DataError)
    else:
        assert kept == ["before", "nul \x00 inside", "after"]
    stored = [m.text for m in await store.messages(MessageQuery("general"))]
    assert stored == kept
    assert [m.seq for m in await store.messages(MessageQuery("general"))] == list(
        range(1, len(kept) + 1)
    )


async def test_resends_among_new_messages_in_one_batch(store: Store) -> None:
    """Concurrent appends (one group commit on SQLite) mixing resends and new messages:
    the resends get their first answer back, the new ones the next seqs, none skipped."""
    stored = [await store.append("general", "mo", f"old {i}", f"c{i}") for i in range(3)]
    results = await asyncio.gather(
        *(store.append("general", "mo", f"new {i}", f"c{i}") for i in range(6)),
        store.append("general", "ned", "someone else's c0", "c0"),
    )
    assert results[:3] == [(msg, False) for msg, _ in stored]
    fresh = results[3:]
    assert all(created for _, created in fresh)
    assert sorted(m.seq for m, _ in fresh) == [4, 5, 6, 7]
    history = await store.messages(MessageQuery("general", limit=100))
    assert [m.seq for m in history] == list(range(1, 8))


async def test_paging_before_after_and_limit(store: Store) -> None:
    for i in range(1, 13):
        await store.append("general", "lee", f"m{i}", None)

    async def seqs(**kw: int) -> list[int]:
        return [m.seq for m in await store.messages(MessageQuery("general", **kw))]

    assert await seqs(limit=5) == [8, 9, 10, 11, 12]
    assert await seqs() == list(range(1, 13))
    assert await seqs(after=3, limit=4) == [4, 5, 6, 7]
    assert await seqs(after=10, limit=50) == [11, 12]
    assert await seqs(after=12) == []
    assert await seqs(before=6, limit=3) == [3, 4, 5]
    assert await seqs(before=3, limit=10) == [1, 2]
    assert await seqs(before=1) == []
    assert await seqs(after=2, before=9, limit=3) == [6, 7, 8]
    assert await seqs(after=2, before=9, limit=100) == [3, 4, 5, 6, 7, 8]
    assert await store.messages(MessageQuery("nowhere")) == []
    texts = [m.text for m in await store.messages(MessageQuery("general", after=0, limit=2))]
    assert texts == ["m1", "m2"]


async def test_reopen_applies_no_migration_twice(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    await first.create_user("max", "h")
    await first.append("general", "max", "kept", "k1")
    await first.close()
    for _ in range(2):
        again = store_factory()
        await again.open()
        try:
            assert await again.find_user("max") is not None
            assert [m.text for m in await again.messages(MessageQuery("general"))] == ["kept"]
            assert await again.last_seqs() == {"general": 1}
        finally:
            await again.close()


async def test_a_version_1_database_is_upgraded_and_keeps_its_resends(
    store_factory: StoreFactory, old_database: OldDatabase
) -> None:
    """Migration 2 rebuilds the resend index: what was stored before is still found."""
    await old_database(
        1,
        "INSERT INTO messages (room, seq, username, text, ts, client_id)"
        " VALUES ('general', 1, 'vic', 'before', '2026-01-01T00:00:00.000Z', 'c-1');"
        " UPDATE rooms SET last_seq = 1 WHERE room = 'general';",
    )
    new = store_factory()
    await new.open()
    try:
        first, created = await new.append("general", "vic", "again", "c-1")
        assert (first.seq, first.text, created) == (1, "before", False)
        second, created = await new.append("general", "vic", "after", "c-2")
        assert (second.seq, created) == (2, True)
    finally:
        await new.close()


async def test_nodes_starting_together_migrate_once(store_factory: StoreFactory) -> None:
    nodes = [store_factory() for _ in range(4)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        assert all([await node.last_seqs() == {"general": 0} for node in nodes])
        msg, _ = await nodes[3].append("general", "ned", "hi", None)
        assert msg.seq == 1
    finally:
        for node in nodes:
            await node.close()


async def test_a_closed_store_is_unavailable(store_factory: StoreFactory) -> None:
    closed = store_factory()
    await closed.open()
    await closed.close()
    with pytest.raises(StoreUnavailable):
        await closed.append("general", "oli", "late", None)


# --- PostgreSQL outages ------------------------------------------------------------------


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL of this test's own, since the test stops it."""
    server = PgServer().start()
    try:
        yield server
    finally:
        server.destroy()


async def test_postgres_outage_is_unavailable_then_recovers(own_pg: PgServer) -> None:
    store = PostgresStore(own_pg.create_database())
    await store.open()
    try:
        await store.append("general", "pat", "before", "b1")
        own_pg.stop("immediate")  # like a crash: no clean goodbye to the pool's connections
        for call in (
            store.append("general", "pat", "while down", "d1"),
            store.messages(MessageQuery("general")),
            store.find_user("pat"),
            store.last_seqs(),
        ):
            with pytest.raises(StoreUnavailable):
                await call
        own_pg.start()
        # the pool reconnects by itself; the failed send wrote nothing
        msg, created = await store.append("general", "pat", "after", "a1")
        assert created
        assert msg.seq == 2
        stored = await store.messages(MessageQuery("general"))
        assert [(m.seq, m.text) for m in stored] == [(1, "before"), (2, "after")]
        again, created_again = await store.append("general", "pat", "retry", "d1")
        assert created_again  # "d1" was never stored, so its retry is new
        assert again.seq == 3
    finally:
        await store.close()


# --- PostgreSQL: several nodes ---------------------------------------------------------------


async def test_batches_over_the_same_rooms_from_two_nodes_do_not_deadlock(
    pg_server: PgServer,
) -> None:
    """A batch spanning rooms takes their row locks in one order (sorted), whatever order its
    sends came in: two nodes sending to four rooms in opposite orders queue on each other.
    A deadlock would still end with every message stored (PostgreSQL aborts one batch and it
    is redone one by one), so the test reads PostgreSQL's own deadlock count."""
    url = pg_server.create_database()
    nodes = [PostgresStore(url), PostgresStore(url)]
    for node in nodes:
        await node.open()
    try:
        rooms = [f"room{i}" for i in range(4)]
        for room in rooms:
            await nodes[0].create_room(room, False, "ann")
        for n in range(5):
            sends = [
                node.append(room, "ann", f"{n}", f"{who}-{n}-{room}")
                for who, (node, order) in enumerate(zip(nodes, (rooms, rooms[::-1]), strict=True))
                for room in order
            ]
            results = await asyncio.gather(*sends)
            assert all(created for _, created in results)
        assert await nodes[1].last_seqs() == {"general": 0} | dict.fromkeys(rooms, 10)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_stat_force_next_flush()")
            deadlocks = await conn.fetchval(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
        finally:
            await conn.close()
        assert deadlocks == 0
    finally:
        for node in nodes:
            await node.close()
