"""Contract v2: the room stream is an event log. Edits, deletes, reactions and topics are
events with the room's next seq, acked after COMMIT, idempotent by client_id, delivered live
and in a `join` replay; history shows messages as they are now; the tutorial's plain-text
mode shows an edit or a delete as one line."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import AsyncApi, Fresh, User
from tests.support.client import new_client_id, open_plain, parley_ws
from tests.support.server import ServerProcess

Event = dict[str, Any]


@pytest.fixture(scope="module")
def shared_server(shared_server_on_each_store: ServerProcess) -> ServerProcess:
    """Every test here runs on SQLite and on PostgreSQL."""
    return shared_server_on_each_store


async def _history(api: AsyncApi, user: User, room: str) -> list[Event]:
    return await api.messages(user.token, room)


async def test_edit_delete_react_are_events_with_their_own_seq(fresh: Fresh) -> None:
    api, user, room = fresh.api, fresh.user, fresh.room
    other = await api.register()
    async with (
        parley_ws(fresh.server.ws_url, user.token) as a,
        parley_ws(fresh.server.ws_url, other.token) as b,
    ):
        await a.join_ok(room)
        await b.join_ok(room)
        first = await a.send_ok(room, "helo")
        await b.recv_type("message", seq=first["seq"])

        edit = await a.change_ok("edit", room, target=first["seq"], text="hello")
        assert edit["seq"] == first["seq"] + 1
        seen = await b.recv_type("edit")
        assert {k: seen[k] for k in ("room", "seq", "username", "target", "text")} == {
            "room": room,
            "seq": edit["seq"],
            "username": user.username,
            "target": first["seq"],
            "text": "hello",
        }
        assert isinstance(seen["ts"], str)

        react = await b.change_ok("react", room, target=first["seq"], emoji="👍", on=True)
        assert react["seq"] == edit["seq"] + 1
        seen = await a.recv_type("reaction")
        assert (seen["username"], seen["emoji"], seen["on"]) == (other.username, "👍", True)

        second = await b.send_ok(room, "after it")
        gone = await a.change_ok("delete", room, target=first["seq"])
        assert (await b.recv_type("delete"))["target"] == first["seq"]
        assert gone["seq"] > second["seq"]

    history = await _history(api, user, room)
    assert [m["seq"] for m in history] == [first["seq"], second["seq"]]  # messages only
    tomb = history[0]
    assert (tomb["deleted"], tomb["text"], tomb["reactions"], tomb["username"]) == (
        True,
        "",
        {},
        user.username,
    )
    assert history[1]["deleted"] is False


async def test_history_shows_messages_as_they_are_now(fresh: Fresh) -> None:
    api, user, room = fresh.api, fresh.user, fresh.room
    other = await api.register()
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        msg = await a.send_ok(room, "first words")
        await a.change_ok("edit", room, target=msg["seq"], text="better words")
        await a.change_ok("react", room, target=msg["seq"], emoji="🎉", on=True)
    async with parley_ws(fresh.server.ws_url, other.token) as b:
        await b.change_ok("react", room, target=msg["seq"], emoji="🎉", on=True)
        await b.change_ok("react", room, target=msg["seq"], emoji="👀", on=True)
        await b.change_ok("react", room, target=msg["seq"], emoji="👀", on=False)
        cid = new_client_id()
        text = f"@{user.username.upper()} agreed"
        await b.send_json(
            {"type": "send", "room": room, "text": text, "client_id": cid, "reply_to": msg["seq"]}
        )
        await b.recv_type("ack", client_id=cid)
        ws_history = await b.history(room)

    (first, answer) = await _history(api, user, room)
    assert ws_history == [first, answer]
    assert first["text"] == "better words"
    assert first["edited"] is not None
    assert first["edited"] >= first["ts"]
    assert first["reactions"] == {"🎉": [user.username, other.username]}
    assert (first["reply_to"], first["mentions"], first["attachments"]) == (None, [], [])
    assert answer["reply_to"] == msg["seq"]
    assert answer["mentions"] == [user.username]  # case-insensitive, the registered spelling


async def test_join_since_replays_every_event_in_order(fresh: Fresh) -> None:
    user, room = fresh.user, fresh.room
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        one = await a.send_ok(room, "one")
        await a.change_ok("edit", room, target=one["seq"], text="one!")
        await a.change_ok("react", room, target=one["seq"], emoji="✅", on=True)
        await a.change_ok("topic", room, topic="all about one")
        await a.send_ok(room, "two")
        await a.change_ok("delete", room, target=one["seq"])
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        joined = await a.join_ok(room, since=0)
        replay = [await a.recv_chat() for _ in range(joined["last_seq"])]
    assert [e["seq"] for e in replay] == list(range(1, joined["last_seq"] + 1))
    assert [e["type"] for e in replay] == [
        "message",
        "edit",
        "reaction",
        "topic",
        "message",
        "delete",
    ]
    # the message as it is now; the edit of a deleted message keeps no words
    assert (replay[0]["deleted"], replay[0]["text"], replay[1]["text"]) == (True, "", "")
    assert replay[3]["topic"] == "all about one"


async def test_changes_are_idempotent_by_client_id(fresh: Fresh) -> None:
    user, room = fresh.user, fresh.room
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        msg = await a.send_ok(room, "x")
        for fields in (
            {"type": "edit", "target": msg["seq"], "text": "y"},
            {"type": "react", "target": msg["seq"], "emoji": "👍", "on": True},
            {"type": "topic", "topic": "t"},
        ):
            cid = new_client_id()
            frame = {**fields, "room": room, "client_id": cid}
            acks = []
            for _ in range(2):
                await a.send_json(frame)
                acks.append(await a.recv_type("ack", client_id=cid))
            assert acks[0] == acks[1]
        joined = await a.join_ok(room)
    assert joined["last_seq"] == msg["seq"] + 3  # nothing stored twice


async def test_a_reaction_that_changes_nothing_stores_nothing(fresh: Fresh) -> None:
    user, room = fresh.user, fresh.room
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        msg = await a.send_ok(room, "x")
        await a.change_ok("react", room, target=msg["seq"], emoji="👍", on=False)  # never had it
        on = await a.change_ok("react", room, target=msg["seq"], emoji="👍", on=True)
        again = await a.change_ok("react", room, target=msg["seq"], emoji="👍", on=True)
        assert again["seq"] == on["seq"]  # the room's last seq: nothing new
        assert (await a.join_ok(room))["last_seq"] == on["seq"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "edit", "target": 999, "text": "x"}, "not_found"),
        ({"type": "delete", "target": 999}, "not_found"),
        ({"type": "react", "target": 999, "emoji": "👍", "on": True}, "not_found"),
        ({"type": "react", "target": "MSG", "emoji": "", "on": True}, "bad_request"),
        ({"type": "react", "target": "MSG", "emoji": "x" * 33, "on": True}, "bad_request"),
        ({"type": "react", "target": "MSG", "emoji": "\u200b", "on": True}, "bad_request"),
        ({"type": "react", "target": "MSG", "emoji": "a\u0007", "on": True}, "bad_request"),
        ({"type": "edit", "target": "MSG", "text": ""}, "bad_request"),
        ({"type": "edit", "target": "MSG", "text": "x" * 4001}, "too_large"),
        ({"type": "edit", "target": "EVENT", "text": "x"}, "not_found"),  # not a message
        ({"type": "topic", "topic": "x" * 301}, "bad_request"),
        ({"type": "send", "text": "x", "reply_to": 999}, "not_found"),
        ({"type": "send", "text": "x", "reply_to": "EVENT"}, "not_found"),
    ],
)
async def test_bad_changes_get_a_clear_error_and_store_nothing(
    fresh: Fresh, frame: dict[str, Any], code: str
) -> None:
    user, room = fresh.user, fresh.room
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        msg = await a.send_ok(room, "x")
        event = await a.change_ok("edit", room, target=msg["seq"], text="y")
        refs = {"MSG": msg["seq"], "EVENT": event["seq"]}
        resolved = {k: refs.get(v, v) if isinstance(v, str) else v for k, v in frame.items()}
        cid = new_client_id()
        await a.send_json({**resolved, "room": room, "client_id": cid})
        error = await a.expect_error(code)
        assert error["ref"] == cid
        assert (await a.join_ok(room))["last_seq"] == event["seq"]


async def test_only_the_author_edits_and_the_owner_may_delete(fresh: Fresh) -> None:
    api, owner, room = fresh.api, fresh.user, fresh.room
    author = await api.register()
    stranger = await api.register()
    async with (
        parley_ws(fresh.server.ws_url, author.token) as a,
        parley_ws(fresh.server.ws_url, stranger.token) as s,
        parley_ws(fresh.server.ws_url, owner.token) as o,
    ):
        msg = await a.send_ok(room, "mine")
        await s.change("edit", room, target=msg["seq"], text="yours now")
        await s.expect_error("forbidden")
        await s.change("delete", room, target=msg["seq"])
        await s.expect_error("forbidden")
        await o.change("edit", room, target=msg["seq"], text="owner's words")
        await o.expect_error("forbidden")  # an owner deletes, never puts words in mouths
        await s.change("topic", room, topic="hijacked")
        await s.expect_error("forbidden")
        await o.change_ok("delete", room, target=msg["seq"])
        await a.change("edit", room, target=msg["seq"], text="back")
        await a.expect_error("not_found")  # a tombstone is no message to edit
    (tomb,) = await _history(api, owner, room)
    assert tomb["deleted"] is True


async def test_rest_edit_delete_react_and_topic(fresh: Fresh) -> None:
    api, user, room = fresh.api, fresh.user, fresh.room
    other = await api.register()
    msg = await api.send(user.token, room, "typo")
    seq = msg["seq"]
    base = f"/api/rooms/{room}/messages/{seq}"

    resp = await api.request("PATCH", base, token=user.token, json={"text": "fixed"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["text"], resp.json()["seq"]) == ("fixed", seq)
    assert resp.json()["edited"] is not None
    resp = await api.request("PATCH", base, token=other.token, json={"text": "mine"})
    assert (resp.status_code, resp.json()["error"]["code"]) == (403, "forbidden")

    resp = await api.request("PUT", f"{base}/reactions/%F0%9F%91%8D", token=other.token)
    assert resp.status_code == 200, resp.text
    assert resp.json()["reactions"] == {"👍": [other.username]}
    resp = await api.request("DELETE", f"{base}/reactions/%F0%9F%91%8D", token=other.token)
    assert resp.json()["reactions"] == {}

    resp = await api.request("PATCH", f"/api/rooms/{room}", token=user.token, json={"topic": "t"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["topic"] == "t"
    resp = await api.request("PATCH", f"/api/rooms/{room}", token=other.token, json={"topic": "x"})
    assert resp.status_code == 403
    topics = {r["room"]: r["topic"] for r in await api.rooms(other.token)}
    assert topics[room] == "t"

    resp = await api.request("DELETE", base, token=user.token)
    assert resp.status_code == 204, resp.text
    resp = await api.request("DELETE", base, token=user.token)
    assert resp.status_code == 404
    for missing in ("999", "0", "x", "-1"):
        resp = await api.request(
            "PATCH", f"/api/rooms/{room}/messages/{missing}", token=user.token, json={"text": "y"}
        )
        assert resp.status_code == 404, (missing, resp.text)
    resp = await api.post(
        f"/api/rooms/{room}/messages", token=user.token, json={"text": "re", "reply_to": seq}
    )
    assert resp.status_code == 201
    assert resp.json()["reply_to"] == seq
    resp = await api.post(
        f"/api/rooms/{room}/messages", token=user.token, json={"text": "re", "reply_to": 999}
    )
    assert resp.status_code == 404


async def test_plain_text_mode_shows_an_edit_and_a_delete_as_one_line(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    plain = await open_plain(server.ws_url, alice.token)
    async with parley_ws(server.ws_url, alice.token) as a:
        msg = await a.send_ok("general", "helo world")
        assert await plain.recv() == f"{alice.username}: helo world"
        await a.change_ok("edit", "general", target=msg["seq"], text="hello\nworld")
        # one line, as a message's: its line break shown as \n
        assert await plain.recv() == f"* {alice.username} edited: hello\\nworld"
        await a.change_ok("react", "general", target=msg["seq"], emoji="👍", on=True)
        await a.change_ok("delete", "general", target=msg["seq"])
        assert await plain.recv() == f"* {alice.username} deleted a message"  # no reaction line
    await plain.close()


async def test_composed_emoji_are_one_reaction(fresh: Fresh) -> None:
    """A family (joined by zero-width joiners), a skin tone, a flag, a keycap: fine."""
    user, room = fresh.user, fresh.room
    emoji = ["👨\u200d👩\u200d👧", "👍🏽", "🇫🇷", "1️⃣", "+1"]
    async with parley_ws(fresh.server.ws_url, user.token) as a:
        msg = await a.send_ok(room, "x")
        for e in emoji:
            await a.change_ok("react", room, target=msg["seq"], emoji=e, on=True)
        (stored,) = await a.history(room)
    assert stored["reactions"] == {e: [user.username] for e in emoji}
