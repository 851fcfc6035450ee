"""The event log (contract v2), run unchanged on SQLite and on PostgreSQL (see conftest.py):
replies, mentions, edits, deletes, reactions, topics, member changes, DMs and the unread
and mention counts kept as events are stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from parley.protocol import (
    DeleteEvent,
    EditEvent,
    MemberEvent,
    MessageEvent,
    ReactionEvent,
    TopicEvent,
    as_message,
)
from parley.store import MessageQuery, Store, UnknownRoom
from parley.store.base import (
    Changed,
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    MemberChange,
    NotAllowed,
    ReactRequest,
    TopicRequest,
    UnknownTarget,
    dm_tag,
)
from tests.support.stores import nodes_on_one_database

# The conftest fixtures: unopened stores on one database; a database an older version left.
StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


async def users(store: Store, *names: str) -> None:
    for name in names:
        assert await store.create_user(name, "hash")


async def counts(store: Store, username: str, room: str = "general") -> tuple[int, int]:
    """(unread, mentions) of the room as `username` sees it in list_rooms, checked
    against rooms_named (the other query of the counts)."""
    listed = {r.room: r for r in await store.list_rooms(username)}[room]
    named = [r for r in await store.rooms_named(listed.name, username) if r.room == room]
    assert [(r.unread, r.mentions) for r in named] == [(listed.unread, listed.mentions)]
    return listed.unread, listed.mentions


def ts_of(changed: Changed) -> str:
    assert changed.event is not None
    return changed.event.ts


async def last_seq(store: Store, room: str = "general") -> int:
    return (await store.last_seqs())[room]


# --- messages: replies and mentions ------------------------------------------------------


async def test_a_message_keeps_its_reply_to_and_whom_it_mentions(store: Store) -> None:
    await users(store, "Alice", "bob", "carol", "dan")
    first, _ = await store.append("general", "Alice", "hello", "a1")
    reply, _ = await store.append(
        "general", "bob", "@ALICE: @bobx @carol. @dan- mail@dan.example @nobody @alice", "b1", 1
    )
    assert (reply.reply_to, reply.mentions) == (1, ["Alice", "carol", "dan"])
    assert (first.reply_to, first.mentions, first.reactions, first.edited) == (None, [], {}, None)
    stored = await store.message("general", 2)
    assert stored == as_message(reply)  # (append answers with the message as its event)
    assert await store.messages(MessageQuery("general")) == [as_message(first), stored]
    resent, created = await store.append("general", "bob", "other", "b1")
    assert (resent, created) == (reply, False)
    assert await counts(store, "Alice") == (1, 1)
    assert await counts(store, "carol") == (2, 1)
    assert await counts(store, "bob") == (1, 0)
    assert await store.message("general", 3) is None
    assert await store.message("nowhere", 1) is None


async def test_only_users_who_may_read_a_private_room_are_mentioned(store: Store) -> None:
    await users(store, "ann", "ben", "cy")
    room = await store.create_room("inner", True, "ann")
    assert room is not None
    await store.add_member("inner", "ben")
    msg, _ = await store.append("inner", "ann", "@ben @cy @ann", None)
    assert msg.mentions == ["ben", "ann"]  # cy may not read it; her own name stays in the text
    assert await counts(store, "ben", "inner") == (1, 1)
    assert await counts(store, "ann", "inner") == (0, 0)  # no self-mention, no own unread


async def test_mentions_in_one_batch_across_rooms(store: Store) -> None:
    await users(store, "eve", "fay")
    await store.create_room("side", False, "eve")
    sent = await asyncio.gather(
        store.append("general", "eve", "@fay one", None),
        store.append("side", "eve", "@fay two", None),
        store.append("nowhere", "eve", "@fay lost", None),
        store.append("general", "fay", "@eve back", None),
        return_exceptions=True,
    )
    assert isinstance(sent[2], UnknownRoom)
    assert await counts(store, "fay") == (1, 1)
    assert await counts(store, "fay", "side") == (1, 1)
    assert await counts(store, "eve") == (1, 1)


# --- edits -------------------------------------------------------------------------------


async def test_only_its_author_edits_a_message_and_mentions_are_parsed_again(
    store: Store,
) -> None:
    await users(store, "gil", "hana", "ivo")
    msg, _ = await store.append("general", "gil", "hi @hana", "g1")
    assert await counts(store, "hana") == (1, 1)
    with pytest.raises(NotAllowed):
        await store.change(EditRequest("general", "hana", "h1", 1, "mine now"))
    with pytest.raises(NotAllowed):  # not even a moderator
        await store.change(EditRequest("general", "ivo", "i1", 1, "x"))
    changed = await store.change(EditRequest("general", "gil", "g2", 1, "hi @ivo"))
    assert changed.created
    assert changed.seq == 2
    assert changed.event == EditEvent(
        room="general",
        seq=2,
        username="gil",
        ts=ts_of(changed),
        target=1,
        text="hi @ivo",
        client_id="g2",
    )
    now = await store.message("general", 1)
    assert now is not None
    assert (now.text, now.edited, now.mentions, now.ts) == (
        "hi @ivo",
        ts_of(changed),
        ["ivo"],
        msg.ts,
    )
    assert await counts(store, "hana") == (1, 0)  # an edit is no new message
    assert await counts(store, "ivo") == (1, 1)
    assert await store.messages(MessageQuery("general")) == [now]


async def test_edit_delete_and_react_need_a_live_message_of_the_room(store: Store) -> None:
    await store.append("general", "jo", "text", None)
    await store.change(TopicRequest("general", "jo", None, "t", moderator=True))  # seq 2
    for target in (0, 2, 3):  # none, an event that is no message, past the end
        for request in (
            EditRequest("general", "jo", None, target, "x"),
            DeleteRequest("general", "jo", None, target),
            ReactRequest("general", "jo", None, target, "👍", True),
        ):
            with pytest.raises(UnknownTarget):
                await store.change(request)
    await store.create_room("other", False, "jo")
    with pytest.raises(UnknownTarget):  # seq 1 of another room
        await store.change(EditRequest("other", "jo", None, 1, "x"))
    with pytest.raises(UnknownRoom):
        await store.change(EditRequest("nowhere", "jo", None, 1, "x"))
    with pytest.raises(UnknownRoom):
        await store.change(TopicRequest("nowhere", "jo", None, "t", moderator=True))
    assert await last_seq(store) == 2  # nothing stored by the failures


# --- deletes -----------------------------------------------------------------------------


async def test_a_deleted_message_is_a_tombstone_and_its_edits_lose_their_text(
    store: Store,
) -> None:
    await users(store, "kai", "lin")
    await store.create_room("den", False, "kai")
    await store.append("den", "lin", "secret @kai", None)
    await store.change(EditRequest("den", "lin", None, 1, "more secret @kai"))
    await store.change(ReactRequest("den", "kai", None, 1, "👀", True))
    assert await counts(store, "kai", "den") == (1, 1)
    deleted = await store.change(DeleteRequest("den", "lin", "l-del", 1))
    assert deleted.event == DeleteEvent(
        room="den", seq=4, username="lin", ts=ts_of(deleted), target=1, client_id="l-del"
    )
    tomb = await store.message("den", 1)
    assert tomb is not None
    assert (tomb.deleted, tomb.text, tomb.reactions, tomb.mentions) == (True, "", {}, [])
    assert [m.seq for m in await store.messages(MessageQuery("den"))] == [1]
    events = await store.events("den", 0, 10)
    assert [type(e) for e in events] == [MessageEvent, EditEvent, ReactionEvent, DeleteEvent]
    assert isinstance(events[1], EditEvent)
    assert events[1].text == ""  # a replay must not bring the words back
    assert isinstance(events[0], MessageEvent)
    assert events[0].text == ""
    assert await counts(store, "kai", "den") == (0, 0)
    for request in (
        DeleteRequest("den", "lin", None, 1),
        EditRequest("den", "lin", None, 1, "back"),
        ReactRequest("den", "kai", None, 1, "👀", False),
    ):
        with pytest.raises(UnknownTarget):
            await store.change(request)


async def test_who_may_delete_a_message(store: Store) -> None:
    await store.create_room("hall", False, "owner")
    for n in range(4):
        await store.append("hall", "writer", f"m{n}", None)
    with pytest.raises(NotAllowed):
        await store.change(DeleteRequest("hall", "stranger", None, 1))
    assert (await store.change(DeleteRequest("hall", "writer", None, 1))).created
    assert (await store.change(DeleteRequest("hall", "owner", None, 2))).created
    assert (await store.change(DeleteRequest("hall", "admin", None, 3, moderator=True))).created
    await store.append("general", "writer", "x", None)
    with pytest.raises(NotAllowed):  # general has no owner
        await store.change(DeleteRequest("general", "stranger", None, 1))
    assert [m.deleted for m in await store.messages(MessageQuery("hall"))] == [
        True,
        True,
        True,
        False,
    ]


# --- reactions ---------------------------------------------------------------------------


async def test_reactions_keep_their_order_and_a_repeat_changes_nothing(store: Store) -> None:
    await store.append("general", "mo", "react to me", None)

    async def react(user: str, emoji: str, on: bool) -> Changed:
        return await store.change(ReactRequest("general", user, None, 1, emoji, on))

    async def reactions() -> dict[str, list[str]]:
        msg = await store.message("general", 1)
        assert msg is not None
        return msg.reactions

    first = await react("zed", "👍", True)
    assert first.event == ReactionEvent(
        room="general",
        seq=2,
        username="zed",
        ts=ts_of(first),
        target=1,
        emoji="👍",
        on=True,
    )
    await react("amy", "👍", True)
    await react("mo", "🎉", True)
    assert await reactions() == {"👍": ["zed", "amy"], "🎉": ["mo"]}
    assert await react("amy", "👍", True) == Changed(None, 4, created=False)
    assert await react("amy", "🎉", False) == Changed(None, 4, created=False)
    assert (await react("zed", "👍", False)).seq == 5
    assert await reactions() == {"👍": ["amy"], "🎉": ["mo"]}
    await react("mo", "🎉", False)
    assert await reactions() == {"👍": ["amy"]}  # no key left for nobody
    await react("zed", "👍", True)
    assert await reactions() == {"👍": ["amy", "zed"]}  # back at the end
    assert await last_seq(store) == 7


async def test_reactions_from_several_nodes_at_once_all_count(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 3) as nodes:
        await nodes[0].append("general", "host", "popular", None)
        people = [f"user{n}" for n in range(12)]
        results = await asyncio.gather(
            *(
                nodes[n % 3].change(ReactRequest("general", who, None, 1, "🔥", True))
                for n, who in enumerate(people)
            )
        )
        assert sorted(r.seq for r in results) == list(range(2, 14))
        msg = await nodes[1].message("general", 1)
        assert msg is not None
        assert sorted(msg.reactions["🔥"]) == sorted(people)
        order = [e.username for e in await nodes[2].events("general", 1, 100)]
        assert msg.reactions["🔥"] == order  # the order the log has


# --- topics ------------------------------------------------------------------------------


async def test_only_the_owner_or_a_moderator_sets_the_topic(store: Store) -> None:
    await store.create_room("plans", True, "nia")
    await store.add_member("plans", "oz")
    with pytest.raises(NotAllowed):
        await store.change(TopicRequest("plans", "oz", None, "mine"))
    changed = await store.change(TopicRequest("plans", "nia", "n1", "Q3 goals"))
    assert changed.event == TopicEvent(
        room="plans", seq=1, username="nia", ts=ts_of(changed), topic="Q3 goals", client_id="n1"
    )
    room = await store.visible_room("plans", "oz")
    assert room is not None
    assert room.topic == "Q3 goals"
    await store.change(TopicRequest("plans", "admin", None, "", moderator=True))
    assert [r.topic for r in await store.list_rooms("nia") if r.room == "plans"] == [""]
    with pytest.raises(NotAllowed):  # nobody owns general
        await store.change(TopicRequest("general", "oz", None, "x"))


# --- idempotency and the log -------------------------------------------------------------


async def test_each_change_is_stored_once_per_client_id(store: Store) -> None:
    await store.create_room("once", False, "pia")
    await store.append("once", "pia", "a", None)
    await store.append("once", "pia", "b", None)
    requests: list[ChangeRequest] = [
        EditRequest("once", "pia", "c-edit", 1, "a2"),
        ReactRequest("once", "pia", "c-react", 1, "✅", True),
        TopicRequest("once", "pia", "c-topic", "t"),
        DeleteRequest("once", "pia", "c-delete", 2),
    ]
    first = [await store.change(r) for r in requests]
    assert [c.seq for c in first] == [3, 4, 5, 6]
    before = await store.events("once", 0, 100)
    for request, changed in zip(requests, first, strict=True):
        again = await store.change(request)
        # the delete's retry does not find its target deleted: it finds the delete
        assert (again.event, again.seq, again.created) == (changed.event, changed.seq, False)
    assert await store.events("once", 0, 100) == before
    other = await store.change(ReactRequest("once", "quin", "c-react", 1, "✅", True))
    assert (other.seq, other.created) == (7, True)  # another user's client_id is theirs


async def test_the_log_is_gapless_across_kinds_and_replays_in_order(store: Store) -> None:
    await users(store, "rae", "sam")
    await store.create_room("log", True, "rae")
    await store.change_member(MemberChange("log", "sam", "invited", "rae"))  # 1
    await store.append("log", "sam", "hello @rae", "s1")  # 2
    await store.append("log", "rae", "hi", "r1", reply_to=2)  # 3
    await store.change(EditRequest("log", "sam", "s2", 2, "hello all"))  # 4
    await store.change(ReactRequest("log", "rae", "r2", 2, "👋", True))  # 5
    await store.change(TopicRequest("log", "rae", "r3", "greetings"))  # 6
    await store.change(DeleteRequest("log", "rae", "r4", 3))  # 7
    await store.change_member(MemberChange("log", "sam", "left", "sam"))  # 8
    events = await store.events("log", 0, 100)
    assert [e.seq for e in events] == list(range(1, 9))
    assert [type(e).__name__ for e in events] == [
        "MemberEvent",
        "MessageEvent",
        "MessageEvent",
        "EditEvent",
        "ReactionEvent",
        "TopicEvent",
        "DeleteEvent",
        "MemberEvent",
    ]
    hello, hi = events[1], events[2]
    assert isinstance(hello, MessageEvent)
    assert isinstance(hi, MessageEvent)
    # messages as they are now
    assert (hello.text, hello.reactions, hello.mentions) == ("hello all", {"👋": ["rae"]}, [])
    assert hello.edited is not None
    assert (hi.deleted, hi.reply_to) == (True, 2)
    assert events[0] == MemberEvent(
        room="log", seq=1, username="sam", ts=events[0].ts, change="invited", by="rae"
    )
    assert isinstance(events[7], MemberEvent)
    assert (events[7].change, events[7].by, events[7].client_id) == ("left", "sam", None)
    assert await store.events("log", 5, 2) == events[5:7]
    assert await store.events("log", 8, 10) == []
    assert [m.seq for m in await store.messages(MessageQuery("log"))] == [2, 3]
    assert [m.seq for m in await store.messages(MessageQuery("log", after=3))] == []
    assert [m.seq for m in await store.messages(MessageQuery("log", before=8, limit=1))] == [3]


# --- unread and mention counts -----------------------------------------------------------


async def test_unread_counts_follow_sends_reads_edits_and_deletes(store: Store) -> None:
    await users(store, "tao", "uma", "vik")
    for n in range(3):
        await store.append("general", "tao", f"t{n}", None)  # 1-3
    await store.append("general", "uma", "u0 @tao", None)  # 4
    await store.append("general", "uma", "u1", None)  # 5
    assert await counts(store, "tao") == (2, 1)
    assert await counts(store, "uma") == (3, 0)
    assert await counts(store, "vik") == (5, 0)  # never read, never sent
    assert await store.mark_read("general", "tao", 2) == 2  # read part of their own
    assert await counts(store, "tao") == (2, 1)
    assert await store.mark_read("general", "uma", 4) == 4  # past her own 4
    assert await counts(store, "uma") == (0, 0)
    await store.append("general", "uma", "u2", None)  # 6: her own, after her marker
    assert await counts(store, "uma") == (0, 0)
    await store.change(ReactRequest("general", "vik", None, 1, "👍", True))  # 7: no message
    await store.change(EditRequest("general", "uma", None, 5, "u1 @tao"))  # 8
    assert await counts(store, "tao") == (3, 2)
    await store.change(DeleteRequest("general", "uma", None, 4))  # 9: deleted by its author
    assert await counts(store, "tao") == (2, 1)
    assert await counts(store, "uma") == (0, 0)  # her own deleted one never counted
    assert await counts(store, "vik") == (5, 0)
    await store.change(DeleteRequest("general", "tao", None, 1, moderator=True))  # 10
    assert await counts(store, "vik") == (4, 0)
    assert await counts(store, "tao") == (2, 1)  # before the marker: no change
    assert await store.mark_read("general", "tao", 9) == 9
    assert await counts(store, "tao") == (0, 0)
    assert await store.mark_read("general", "vik", 100) == 10  # capped at the last seq
    assert await counts(store, "vik") == (0, 0)
    await store.append("general", "tao", "t3", None)
    assert [await counts(store, u) for u in ("tao", "uma", "vik")] == [(0, 0), (1, 0), (1, 0)]


async def test_a_marker_between_events_counts_the_messages_before_it(store: Store) -> None:
    await store.append("general", "wes", "m1", None)  # 1
    await store.change(ReactRequest("general", "wes", None, 1, "👍", True))  # 2
    await store.append("general", "wes", "m2", None)  # 3
    await store.change(EditRequest("general", "wes", None, 3, "m2!"))  # 4
    assert await store.mark_read("general", "xan", 2) == 2
    assert await counts(store, "xan") == (1, 0)
    assert await store.mark_read("general", "xan", 1) is None  # backwards: ignored
    assert await store.mark_read("general", "xan", 4) == 4
    assert await counts(store, "xan") == (0, 0)
    assert await store.mark_read("general", "xan", 4) is None
    assert await store.mark_read("nowhere", "xan", 4) is None


# --- members and DMs ---------------------------------------------------------------------


async def test_member_changes_are_events_in_private_rooms_only(store: Store) -> None:
    await store.create_room("club", True, "yan")
    await store.create_room("open", False, "yan")
    invited = await store.change_member(MemberChange("club", "zoe", "invited", "yan"))
    assert isinstance(invited, MemberEvent)
    assert (invited.seq, invited.username, invited.change, invited.by) == (
        1,
        "zoe",
        "invited",
        "yan",
    )
    assert await store.change_member(MemberChange("club", "zoe", "invited", "yan")) is None
    assert await store.members("club") == ["yan", "zoe"]
    assert await store.visible_room("club", "zoe") is not None
    left = await store.change_member(MemberChange("club", "zoe", "left", "zoe"))
    assert isinstance(left, MemberEvent)
    assert (left.seq, left.change) == (2, "left")
    assert await store.change_member(MemberChange("club", "zoe", "removed", "yan")) is None
    assert await store.visible_room("club", "zoe") is None
    await store.change_member(MemberChange("club", "zoe", "invited", "yan"))
    removed = await store.change_member(MemberChange("club", "zoe", "removed", "yan"))
    assert isinstance(removed, MemberEvent)
    assert (removed.seq, removed.change, removed.by) == (4, "removed", "yan")
    assert await store.members("club") == ["yan"]
    # a public room: members change, no events
    assert await store.change_member(MemberChange("open", "zoe", "invited", "yan")) is None
    assert await store.members("open") == ["yan", "zoe"]
    assert await store.change_member(MemberChange("open", "zoe", "left", "zoe")) is None
    assert await store.members("open") == ["yan"]
    assert await store.last_seqs() == {"general": 0, "club": 4, "open": 0}
    with pytest.raises(UnknownRoom):
        await store.change_member(MemberChange("nowhere", "zoe", "invited", "yan"))


async def test_a_removed_member_cannot_send_to_a_private_room(store: Store) -> None:
    """A send already past its socket's check when the removal committed is refused; in the
    same batch a member's send and a public room's are stored."""
    await store.create_room("club", True, "yan")
    await store.change_member(MemberChange("club", "zoe", "invited", "yan"))
    await store.change_member(MemberChange("club", "zoe", "removed", "yan"))
    batch = [
        store.append_soon("club", "zoe", "let me in", "z1"),
        store.append_soon("club", "yan", "members only", "y1"),
        store.append_soon("general", "zoe", "elsewhere", "z2"),
    ]
    refused, kept, public = await asyncio.gather(*batch, return_exceptions=True)
    assert isinstance(refused, UnknownRoom)
    assert isinstance(kept, tuple)
    assert (kept[0].seq, kept[1]) == (3, True)  # after the two member events: no hole
    assert isinstance(public, tuple)
    alone = await asyncio.gather(
        store.append_soon("club", "zoe", "x", "z3"), return_exceptions=True
    )
    assert isinstance(alone[0], UnknownRoom)  # a batch of nothing but refused sends
    assert await store.last_seqs() == {"general": 1, "club": 3}


async def test_a_send_racing_its_senders_removal_on_another_node_is_not_stored_after_it(
    store_factory: StoreFactory,
) -> None:
    """The membership check and the insert see one state: a send is stored before the
    `removed` event or refused, never after it."""
    here, there = store_factory(), store_factory()
    await here.open()
    await there.open()
    try:
        await here.create_room("nook", True, "yan")
        for i in range(30):
            await here.change_member(MemberChange("nook", "zoe", "invited", "yan"))
            removed, sent = await asyncio.gather(
                here.change_member(MemberChange("nook", "zoe", "removed", "yan")),
                there.append_soon("nook", "zoe", f"hi {i}", None),
                return_exceptions=True,
            )
            assert isinstance(removed, MemberEvent)
            assert isinstance(sent, UnknownRoom) or (
                isinstance(sent, tuple) and sent[0].seq < removed.seq
            ), (sent, removed)
    finally:
        await here.close()
        await there.close()


async def test_a_removed_member_cannot_change_a_private_room(store: Store) -> None:
    """An edit, delete or reaction already past its socket's check when the removal
    committed is refused as a send is; a moderator needs no membership."""
    await store.create_room("den", True, "yan")
    await store.change_member(MemberChange("den", "zoe", "invited", "yan"))
    msg, _ = await store.append("den", "zoe", "mine", None)
    await store.change_member(MemberChange("den", "zoe", "removed", "yan"))
    for request in (
        EditRequest("den", "zoe", "z1", msg.seq, "still mine"),
        ReactRequest("den", "zoe", "z2", msg.seq, "👀", True),
        DeleteRequest("den", "zoe", "z3", msg.seq),
    ):
        with pytest.raises(UnknownRoom):
            await store.change(request)
    gone = await store.change(DeleteRequest("den", "mod", None, msg.seq, moderator=True))
    assert isinstance(gone.event, DeleteEvent)
    assert await store.last_seqs() == {"general": 0, "den": 4}  # nothing of zoe's after


async def test_a_dm_is_one_room_per_set_of_people(store: Store) -> None:
    people = ["bob", "Alice", "_x"]
    dm, created = await store.open_dm(people, now=10.0)
    assert created
    assert dm.room == f"dm~{dm_tag(people)}"
    assert (dm.kind, dm.name, dm.private, dm.owner, dm.last_seq) == ("dm", "dm", True, None, 0)
    assert dm.members == ("Alice", "_x", "bob")  # by code point, like the members list
    assert dm.since == 10.0
    assert await store.members(dm.room) == ["Alice", "_x", "bob"]
    again, created_again = await store.open_dm(["_x", "bob", "Alice"])
    assert not created_again
    assert (again.room, again.members, again.since) == (dm.room, dm.members, 10.0)
    pair, created_pair = await store.open_dm(["bob", "Alice"])
    assert created_pair
    assert pair.room != dm.room
    await store.append(dm.room, "bob", "psst", None)
    listed = {r.room: r for r in await store.list_rooms("Alice")}
    assert (listed[dm.room].unread, listed[dm.room].members) == (1, dm.members)
    assert listed["general"].members == ()
    assert dm.room not in {r.room for r in await store.list_rooms("carl")}


async def test_a_dm_takes_no_rooms_name(store: Store) -> None:
    dm, _ = await store.open_dm(["fay", "gus"])
    room = await store.create_room("dm", True, "fay")  # her DM is not a room called "dm"
    assert room is not None
    assert room.room != dm.room
    assert await store.create_room("dm", False, "fay") is None  # that one she sees


async def test_one_dm_opened_at_once_on_several_nodes_makes_one_room(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 3) as nodes:
        opened = await asyncio.gather(
            *(node.open_dm(["dee", "eli"]) for node in nodes),
            *(node.open_dm(["eli", "dee"]) for node in nodes),
        )
        assert sum(created for _, created in opened) == 1
        assert {record.room for record, _ in opened} == {f"dm~{dm_tag(['dee', 'eli'])}"}
        assert all(record.members == ("dee", "eli") for record, _ in opened)


# --- migration 5 -------------------------------------------------------------------------


async def test_migration_5_counts_what_was_stored_before_it(
    store_factory: StoreFactory, old_database: OldDatabase
) -> None:
    """Messages and read markers of version 4 get their ordinals and own counts."""
    rows = [("ann", 1), ("ann", 2), ("bo", 3), ("ann", 4), ("cat", 5), ("bo", 6)]
    await old_database(
        4,
        "".join(
            "INSERT INTO messages (room, seq, username, text, ts, client_id)"
            f" VALUES ('general', {seq}, '{user}', 'm{seq}', '2026-01-01T00:00:00.000Z', NULL);"
            for user, seq in rows
        )
        + " UPDATE rooms SET last_seq = 6 WHERE room = 'general';"
        " INSERT INTO read_marks (username, room, seq) VALUES ('ann', 'general', 3);"
        " INSERT INTO read_marks (username, room, seq) VALUES ('cat', 'general', 6);"
        " INSERT INTO read_marks (username, room, seq) VALUES ('dot', 'general', 5);",
    )
    store = store_factory()
    await store.open()
    try:
        expected = {"ann": 2, "bo": 4, "cat": 0, "dot": 1, "eve": 6}
        assert {u: (await counts(store, u))[0] for u in expected} == expected
        assert await store.mark_read("general", "bo", 4) == 4  # 5 (cat) and 6 (own) left
        assert await counts(store, "bo") == (1, 0)
        msg, _ = await store.append("general", "ann", "new @bo", None)
        assert (msg.seq, msg.mentions) == (7, [])  # bo has no account: no mention
        await store.change(DeleteRequest("general", "cat", None, 5))
        counted = {u: (await counts(store, u))[0] for u in expected}
        assert counted == {"ann": 1, "bo": 1, "cat": 1, "dot": 2, "eve": 6}
        before = await store.message("general", 2)
        assert before is not None
        assert (before.text, before.reply_to, before.reactions, before.deleted) == (
            "m2",
            None,
            {},
            False,
        )
    finally:
        await store.close()


async def test_migration_6_counts_the_mentions_past_each_marker(
    store_factory: StoreFactory, old_database: OldDatabase
) -> None:
    """Mention rows of version 5 become each user's count past their marker."""
    await old_database(
        5,
        "UPDATE rooms SET last_seq = 3, msgs = 3 WHERE room = 'general';"
        + "".join(
            f"INSERT INTO mentions (username, room, seq) VALUES ('{user}', 'general', {seq});"
            for user, seq in [("ann", 1), ("ann", 3), ("bo", 2), ("cat", 1)]
        )
        + " INSERT INTO read_marks (username, room, seq, n, own)"
        " VALUES ('ann', 'general', 2, 2, 0), ('cat', 'general', 3, 3, 0);",
    )
    store = store_factory()
    await store.open()
    try:
        mentions = {u: (await counts(store, u))[1] for u in ("ann", "bo", "cat", "dot")}
        assert mentions == {"ann": 1, "bo": 1, "cat": 0, "dot": 0}
    finally:
        await store.close()


async def test_a_mention_counts_only_past_its_users_marker(store: Store) -> None:
    """An edit that mentions a user who already read the message adds nothing for them;
    one who did not gets it; a delete takes it back; reading passes it."""
    await users(store, "ann", "bo", "cy")
    msg, _ = await store.append("general", "ann", "hello", None)
    await store.append("general", "ann", "@bo early", None)
    assert await store.mark_read("general", "bo", msg.seq) == msg.seq
    assert await counts(store, "bo") == (1, 1)
    await store.change(EditRequest("general", "ann", None, msg.seq, "hello @bo @cy"))
    assert await counts(store, "bo") == (1, 1)  # message 1 is behind bo's marker
    assert await counts(store, "cy") == (2, 1)
    await store.change(DeleteRequest("general", "ann", None, msg.seq))
    assert await counts(store, "cy") == (1, 0)
    await store.change(EditRequest("general", "ann", None, 2, "not any more"))
    assert await counts(store, "bo") == (1, 0)
    late, _ = await store.append("general", "ann", "@bo @BO @cy late", None)
    assert await counts(store, "bo") == (2, 1)  # once per message
    assert await store.mark_read("general", "bo", late.seq) == late.seq
    assert await counts(store, "bo") == (0, 0)
    assert await counts(store, "cy") == (2, 1)


async def test_counts_stay_right_when_sends_and_reads_race_on_several_nodes(
    store_factory: StoreFactory,
) -> None:
    """A user's own messages and read marker are counted on one row that sends and reads
    of several nodes update at once: whatever the interleaving, unread ends as the
    others' messages after the marker."""
    async with nodes_on_one_database(store_factory, 3) as nodes:

        async def send(n: int) -> None:
            await nodes[n % 3].append("general", ("me", "you")[n % 2], f"m{n}", None)

        async def read(n: int) -> None:
            await nodes[(n + 1) % 3].mark_read("general", "me", n)

        for start in range(0, 40, 10):
            await asyncio.gather(
                *(send(n) for n in range(start, start + 10)),
                *(read(n) for n in range(start, start + 10, 2)),
            )
            room = (await nodes[0].rooms_named("general", "me"))[0]
            history = await nodes[1].messages(MessageQuery("general", limit=100))
            others = [m for m in history if m.username != "me" and m.seq > room.last_read]
            assert room.unread == len(others)


async def test_one_change_raced_in_by_several_nodes_is_stored_once(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 3) as nodes:
        await nodes[0].append("general", "ray", "first", None)
        for round_ in range(5):
            edit = EditRequest("general", "ray", f"e{round_}", 1, f"take {round_}")
            react = ReactRequest("general", "ray", f"r{round_}", 1, "🔁", round_ % 2 == 0)
            results = await asyncio.gather(
                *(node.change(edit) for node in nodes), *(node.change(react) for node in nodes)
            )
            edits, reacts = results[:3], results[3:]
            assert sum(c.created for c in edits) == 1
            assert sum(c.created for c in reacts) == 1
            assert len({c.seq for c in edits}) == len({c.seq for c in reacts}) == 1
        assert await nodes[1].last_seqs() == {"general": 11}
        msg = await nodes[2].message("general", 1)
        assert msg is not None
        assert (msg.text, msg.reactions) == ("take 4", {"🔁": ["ray"]})
