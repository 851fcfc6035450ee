"""Contract: parley.v1 events — hello, join/joined, send/ack/message, history, typing, presence."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import Event, new_client_id, open_ws, parley_ws
from tests.support.rawws import OP_TEXT, RawWS, encode_frame
from tests.support.server import ServerProcess


@pytest.fixture(params=["override", "stock"])
def server(request: pytest.FixtureRequest, server_factory: ServerFactory) -> ServerProcess:
    """Each test here runs on both socket paths: Parley's override of aiohttp's frame queue,
    and aiohttp's stock one (`--stock-websocket`, also the fallback: server/upstream.py)."""
    stock = request.param == "stock"
    proc = server_factory(["--stock-websocket"] if stock else [])
    assert ("stock socket path" in proc.log()) is stock
    return proc


def assert_message_event(
    event: Event, room: str, seq: int, username: str, text: str, client_id: str | None
) -> None:
    assert event["type"] == "message", event
    assert event["room"] == room, event
    assert event["seq"] == seq, event
    assert event["username"] == username, event
    assert event["text"] == text, event
    assert event["client_id"] == client_id, event
    ts = datetime.fromisoformat(event["ts"])
    assert ts.utcoffset() == timedelta(0), event


def without_type(event: Event) -> Event:
    return {k: v for k, v in event.items() if k != "type"}


def for_room(frame: dict[str, object], room: str) -> dict[str, object]:
    """Fill the room name into every string field but the type."""
    return {
        k: v.format(room) if isinstance(v, str) and k != "type" else v for k, v in frame.items()
    }


# -- hello and join ---------------------------------------------------------------------------


async def test_hello_first_with_username_and_visible_rooms(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "pub")
    await api.create_room(alice.token, "priv", private=True)
    await api.send(alice.token, "general", "one")
    await api.send(alice.token, "general", "two")
    await api.send(alice.token, "priv", "p")

    client = await open_ws(server.ws_url, alice.token)
    assert client.hello["type"] == "hello"
    assert client.hello["username"] == alice.username
    rooms = {r["room"]: r["last_seq"] for r in client.hello["rooms"]}
    assert rooms == {"general": 2, "pub": 0, "priv": 1}
    await client.close()

    other = await open_ws(server.ws_url, bob.token)
    assert other.hello["username"] == bob.username
    assert {r["room"]: r["last_seq"] for r in other.hello["rooms"]} == {"general": 2, "pub": 0}
    await other.close()


async def test_join_answers_joined_with_last_seq_and_online(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.send(bob.token, "general", "earlier")
    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        joined = await a.join_ok("general")
        assert joined == {
            "type": "joined",
            "room": "general",
            "last_seq": 1,
            "online": [alice.username],
        }
        joined_b = await b.join_ok("general")
        assert joined_b["last_seq"] == 1
        assert sorted(joined_b["online"]) == sorted([alice.username, bob.username])
        # join without since replays nothing: the next event for b is live
        ack = await a.send_ok("general", "live")
        msg = await b.recv_chat()
        assert msg["type"] == "message", msg
        assert msg["seq"] == ack["seq"] == 2


async def test_join_with_since_replays_then_live(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    for i in range(1, 6):
        await api.send(bob.token, "general", f"old{i}")
    async with parley_ws(server.ws_url, alice.token) as a:
        await a.join("general", since=2)
        events = [await a.recv_chat() for _ in range(4)]
        assert events[0]["type"] == "joined"
        assert events[0]["last_seq"] == 5
        assert [(e["type"], e["seq"], e["text"]) for e in events[1:]] == [
            ("message", 3, "old3"),
            ("message", 4, "old4"),
            ("message", 5, "old5"),
        ]
        await api.send(bob.token, "general", "new")
        live = await a.recv_chat()
        assert (live["type"], live["seq"], live["text"]) == ("message", 6, "new")


async def test_join_with_since_zero_replays_everything_and_current_replays_nothing(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    for i in range(3):
        await api.send(alice.token, "general", f"m{i}")
    async with (
        parley_ws(server.ws_url, alice.token) as a,
        parley_ws(server.ws_url, alice.token) as b,
    ):
        await a.join("general", since=0)
        events = [await a.recv_chat() for _ in range(4)]
        assert [e["type"] for e in events] == ["joined", "message", "message", "message"]
        assert [e["seq"] for e in events[1:]] == [1, 2, 3]
        await b.join("general", since=3)
        assert (await b.recv_chat())["type"] == "joined"
        ack = await a.send_ok("general", "next")
        nxt = await b.recv_chat()
        assert (nxt["type"], nxt["seq"]) == ("message", ack["seq"])


async def test_join_unknown_room_not_found(server: ServerProcess, alice: User) -> None:
    async with parley_ws(server.ws_url, alice.token) as a:
        await a.join("nosuchroom")
        err = await a.expect_error("not_found")
        assert err["type"] == "error"
        await a.join_ok("general")


# -- send / ack / message ---------------------------------------------------------------------


async def test_send_acks_sender_and_broadcasts_to_every_joined_connection(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    a1 = await open_ws(server.ws_url, alice.token)
    a2 = await open_ws(server.ws_url, alice.token)  # alice's second tab
    b = await open_ws(server.ws_url, bob.token)
    outsider = await open_ws(server.ws_url, bob.token)  # connected, not joined
    for c in (a1, a2, b):
        await c.join_ok("general")

    cid = new_client_id()
    await a1.send_json({"type": "send", "room": "general", "text": "hello all", "client_id": cid})
    # the ack and the sender's own message, in either order
    got = [await a1.recv_chat(), await a1.recv_chat()]
    acks = [e for e in got if e["type"] == "ack"]
    msgs = [e for e in got if e["type"] == "message"]
    assert acks == [{"type": "ack", "client_id": cid, "room": "general", "seq": 1}], got
    assert len(msgs) == 1, got
    assert_message_event(msgs[0], "general", 1, alice.username, "hello all", cid)
    for other in (a2, b):
        event = await other.recv_type("message")
        assert_message_event(event, "general", 1, alice.username, "hello all", cid)
        assert event == msgs[0]  # the same bytes for every recipient

    # the unjoined connection got nothing of it: its next event is the answer to its own request
    history = await outsider.history("general")
    assert outsider.seen_of("message") == []
    assert [m["seq"] for m in history] == [1]

    stored = await api.messages(bob.token, "general")
    assert stored == [without_type(msgs[0])]
    for c in (a1, a2, b, outsider):
        await c.close()


async def test_seq_increments_by_one_per_message_across_senders(
    server: ServerProcess, alice: User, bob: User
) -> None:
    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        await a.join_ok("general")
        await b.join_ok("general")
        seqs = []
        for i in range(6):
            sender = a if i % 2 else b
            seqs.append((await sender.send_ok("general", f"n{i}"))["seq"])
        assert seqs == [1, 2, 3, 4, 5, 6]
        received = [await a.recv_type("message") for _ in range(6)]
        assert [m["seq"] for m in received] == [1, 2, 3, 4, 5, 6]
        assert [m["text"] for m in received] == [f"n{i}" for i in range(6)]


async def test_send_without_join_is_stored_and_acked(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    async with parley_ws(server.ws_url, alice.token) as a:
        ack = await a.send_ok("general", "not joined")
        assert ack["seq"] == 1
    assert [m["text"] for m in await api.messages(alice.token, "general")] == ["not joined"]


async def test_frames_are_handled_in_order_when_the_first_must_wait(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    """A send to a room the socket has not used yet waits for the store's say-so; the sends
    right behind it (one TCP write, to a room the socket knows) must not overtake it."""
    await api.create_room(alice.token, "later")
    raw = await RawWS.open("127.0.0.1", server.port, token=alice.token)
    try:
        assert json.loads((await raw.read_frame())[1])["type"] == "hello"
        await raw.send_json({"type": "join", "room": "general"})
        assert json.loads((await raw.read_frame())[1])["type"] == "joined"
        frames = [
            {"type": "send", "room": "later", "text": "one", "client_id": "first"},
            {"type": "send", "room": "general", "text": "two", "client_id": "second"},
        ]
        frames += [
            {"type": "send", "room": "general", "text": f"m{i}", "client_id": f"next-{i}"}
            for i in range(3)
        ]
        await raw.send_bytes(
            b"".join(encode_frame(OP_TEXT, json.dumps(f).encode()) for f in frames)
        )
        replies = [json.loads((await raw.read_frame())[1]) for _ in range(9)]
        acks = [r["client_id"] for r in replies if r["type"] == "ack"]
        assert acks == ["first", "second", "next-0", "next-1", "next-2"], replies
    finally:
        raw.close()


async def test_same_client_id_again_same_ack_no_new_message(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        await a.join_ok("general")
        await b.join_ok("general")
        cid = new_client_id()
        first = await a.send_ok("general", "exactly once", cid)
        again = await a.send_ok("general", "exactly once", cid)
        assert again == first
        # different text, same client_id: still the first ack
        changed = await a.send_ok("general", "other text", cid)
        assert changed == first
        # a retry on another connection of the same user is the same message too
        async with parley_ws(server.ws_url, alice.token) as a2:
            assert await a2.send_ok("general", "exactly once", cid) == first
        barrier = await a.send_ok("general", "barrier")
        assert barrier["seq"] == first["seq"] + 1

        seen = [await b.recv_type("message") for _ in range(2)]
        assert [(m["seq"], m["text"]) for m in seen] == [(1, "exactly once"), (2, "barrier")]
        # bob's same client_id is his own message
        mine = await b.send_ok("general", "bob's", cid)
        assert mine["seq"] == 3
    stored = await api.messages(alice.token, "general")
    assert [(m["seq"], m["username"], m["text"]) for m in stored] == [
        (1, alice.username, "exactly once"),
        (2, alice.username, "barrier"),
        (3, bob.username, "bob's"),
    ]


async def test_rest_and_ws_share_client_id_space(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    cid = new_client_id()
    rest = await api.send(alice.token, "general", "via rest", cid)
    async with parley_ws(server.ws_url, alice.token) as a:
        ack = await a.send_ok("general", "via rest", cid)
        assert ack == {"type": "ack", "client_id": cid, "room": "general", "seq": rest["seq"]}
    assert len(await api.messages(alice.token, "general")) == 1


async def test_rest_send_is_broadcast_to_sockets(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    async with parley_ws(server.ws_url, bob.token) as b:
        await b.join_ok("general")
        sent = await api.send(alice.token, "general", "from rest", "r1")
        event = await b.recv_type("message")
        assert without_type(event) == sent


# -- history ----------------------------------------------------------------------------------


async def test_ws_history_pages_like_rest(server_factory: ServerFactory) -> None:
    srv = server_factory(["--rate-limit", "0"])
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        for i in range(1, 61):
            await api.send(user.token, "general", f"h{i}")
        async with parley_ws(srv.ws_url, user.token) as c:
            latest = await c.history("general")
            assert [m["seq"] for m in latest] == list(range(11, 61))  # default limit 50
            assert latest == await api.messages(user.token, "general")
            page = await c.history("general", before=11, limit=5)
            assert [m["seq"] for m in page] == [6, 7, 8, 9, 10]
            assert [m["text"] for m in page] == ["h6", "h7", "h8", "h9", "h10"]
            assert [m["seq"] for m in await c.history("general", before=3)] == [1, 2]
            assert [m["seq"] for m in await c.history("general", limit=3)] == [58, 59, 60]
            assert await c.history("general", before=1) == []
            # docs/protocol.md (ext): WS history also accepts after
            assert [m["seq"] for m in await c.history("general", after=57)] == [58, 59, 60]
            full = await c.history("general", limit=100)
            assert [m["seq"] for m in full] == list(range(1, 61))
            for bad in ({"limit": 0}, {"limit": 101}, {"before": -1}):
                await c.ask_history("general", **bad)
                await c.expect_error("bad_request")
            # history does not require join and does not join
            assert c.seen_of("message") == []


async def test_ws_history_unknown_room_not_found(server: ServerProcess, alice: User) -> None:
    async with parley_ws(server.ws_url, alice.token) as a:
        await a.ask_history("nosuchroom")
        await a.expect_error("not_found")
        assert await a.history("general") == []


# -- typing -----------------------------------------------------------------------------------


async def test_typing_goes_to_others_only(
    server: ServerProcess, alice: User, bob: User, api: AsyncApi
) -> None:
    carol = await api.register()
    a = await open_ws(server.ws_url, alice.token)
    a_tab2 = await open_ws(server.ws_url, alice.token)
    b = await open_ws(server.ws_url, bob.token)
    c = await open_ws(server.ws_url, carol.token)  # connected, not joined to general
    for client in (a, a_tab2, b):
        await client.join_ok("general")

    await a.typing("general")
    typing = await b.recv_type("typing")
    assert typing == {"type": "typing", "room": "general", "username": alice.username}

    # barrier: after the typing, alice sends; everything before her ack/message is checked
    ack = await a.send_ok("general", "done typing")
    await a.recv_type("message", seq=ack["seq"])
    assert a.seen_of("typing") == [], "the typist received its own typing event"
    # alice's other tab is alice too: no typing event of her own
    await a_tab2.recv_type("message", seq=ack["seq"])
    assert a_tab2.seen_of("typing") == []
    # bob got exactly one typing event
    await b.recv_type("message", seq=ack["seq"])
    assert len(b.seen_of("typing")) == 1
    # carol is not in the room
    await c.history("general")
    assert c.seen_of("typing") == []
    for client in (a, a_tab2, b, c):
        await client.close()


# -- presence ---------------------------------------------------------------------------------


async def test_presence_first_join_and_last_leave_or_drop(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "pres")
    watcher = await open_ws(server.ws_url, alice.token)
    await watcher.join_ok("pres")

    b1 = await open_ws(server.ws_url, bob.token)
    await b1.join_ok("pres")
    online = await watcher.recv_type("presence", username=bob.username)
    assert online == {"type": "presence", "room": "pres", "username": bob.username, "online": True}

    # bob's second connection joins: not his first, no presence event
    b2 = await open_ws(server.ws_url, bob.token)
    joined = await b2.join_ok("pres")
    assert sorted(joined["online"]) == sorted([alice.username, bob.username])
    barrier = await b1.send_ok("pres", "barrier1")
    await watcher.recv_type("message", seq=barrier["seq"])
    assert watcher.seen_of("presence", username=bob.username) == [online]

    # one of two connections leaves: bob is still online
    await b2.leave("pres")
    await b2.history("pres")  # the leave has been processed once this answers
    barrier = await b1.send_ok("pres", "barrier2")
    await watcher.recv_type("message", seq=barrier["seq"])
    assert watcher.seen_of("presence", username=bob.username) == [online]

    # the last one drops without a leave: offline
    await b1.close()
    offline = await watcher.recv_type("presence", username=bob.username)
    assert offline == {
        "type": "presence",
        "room": "pres",
        "username": bob.username,
        "online": False,
    }

    # rejoin via the left connection: online again; explicit leave of the last: offline
    await b2.join_ok("pres")
    assert (await watcher.recv_type("presence", username=bob.username))["online"] is True
    await b2.leave("pres")
    last = await watcher.recv_type("presence", username=bob.username)
    assert (last["room"], last["online"]) == ("pres", False)
    assert [e["online"] for e in watcher.seen_of("presence", username=bob.username)] == [
        True,
        False,
        True,
        False,
    ]
    joined = await b2.join_ok("pres")
    assert sorted(joined["online"]) == sorted([alice.username, bob.username])
    await b2.close()
    await watcher.close()


async def test_presence_is_per_room(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "elsewhere")
    watcher = await open_ws(server.ws_url, alice.token)
    await watcher.join_ok("general")
    b = await open_ws(server.ws_url, bob.token)
    await b.join_ok("elsewhere")  # not the watcher's room
    await b.join_ok("general")
    presence = await watcher.recv_type("presence", username=bob.username)
    assert (presence["room"], presence["online"]) == ("general", True)
    await b.leave("elsewhere")
    await b.history("elsewhere")  # the leave has been processed once this answers
    barrier = await b.send_ok("general", "barrier")
    await watcher.recv_type("message", seq=barrier["seq"])
    # one event for bob, about general; nothing about "elsewhere" (watcher is not there)
    assert watcher.seen_of("presence", username=bob.username) == [presence]
    await b.close()
    await watcher.close()


async def test_leave_stops_messages(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "side")
    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        await a.join_ok("side")
        await a.join_ok("general")
        first = await b.send_ok("side", "seen")
        await a.recv_type("message", room="side", seq=first["seq"])
        await a.leave("side")
        await a.history("side")  # processed
        await b.send_ok("side", "not seen")
        marker = await b.send_ok("general", "marker")
        await a.recv_type("message", room="general", seq=marker["seq"])
        assert [m["text"] for m in a.seen_of("message", room="side")] == ["seen"]


# -- private rooms over WebSocket -------------------------------------------------------------


async def test_private_room_not_found_over_ws_exactly_like_missing(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "hidden", private=True)
    await api.send(alice.token, "hidden", "secret")
    async with parley_ws(server.ws_url, bob.token) as b:
        assert "hidden" not in {r["room"] for r in b.hello["rooms"]}

        async def error_for(frame: dict[str, object]) -> Event:
            await b.send_json(frame)
            return await b.recv_until(lambda e: e.get("type") == "error")

        for frame in (
            {"type": "join", "room": "{}"},
            {"type": "join", "room": "{}", "since": 0},
            {"type": "history", "room": "{}"},
            {"type": "send", "room": "{}", "text": "peek", "client_id": "c-{}"},
        ):
            hidden = await error_for(for_room(frame, "hidden"))
            missing = await error_for(for_room(frame, "nosuch"))
            assert hidden["code"] == missing["code"] == "not_found", (hidden, missing)
            assert hidden["message"].replace("hidden", "R") == missing["message"].replace(
                "nosuch", "R"
            )
            assert set(hidden) == set(missing)
        assert b.seen_of("message") == []

    # after an invite bob can join and see it
    assert (await api.invite(alice.token, "hidden", bob.username)).status_code == 201
    async with parley_ws(server.ws_url, bob.token) as b:
        assert "hidden" in {r["room"] for r in b.hello["rooms"]}
        await b.join("hidden", since=0)
        assert (await b.recv_chat())["type"] == "joined"
        msg = await b.recv_chat()
        assert (msg["type"], msg["text"]) == ("message", "secret")
    assert [m["text"] for m in await api.messages(alice.token, "hidden")] == ["secret"]


async def test_invite_takes_effect_on_an_open_socket(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    """A socket that was told not_found may use the room once its user is invited."""
    await api.create_room(alice.token, "later", private=True)
    async with parley_ws(server.ws_url, bob.token) as b:
        await b.join("later")
        await b.expect_error("not_found")
        cid = new_client_id()
        await b.send_text("later", "too early", cid)
        assert (await b.expect_error("not_found"))["ref"] == cid
        assert (await api.invite(alice.token, "later", bob.username)).status_code == 201
        joined = await b.join_ok("later")
        assert joined["last_seq"] == 1  # the invitation: the room's first event
        ack = await b.send_ok("later", "now a member", cid)
        assert ack["seq"] == 2
    assert [m["text"] for m in await api.messages(alice.token, "later")] == ["now a member"]
