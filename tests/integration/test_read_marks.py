"""Contract v2: read markers. `{"type":"read","room","seq"}` and `POST /api/rooms/{room}/read`
move the user's marker forward only; hello and `GET /api/rooms` show it as `last_read`; every
other socket of the user hears `{"type":"read","room","seq"}`, nobody else does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import AsyncApi, Fresh, ServerFactory, User, assert_error, unique_room
from tests.support.client import ParleyWS, open_ws, parley_ws
from tests.support.server import ServerProcess


async def _read(api: AsyncApi, user: User, room: str, seq: Any) -> httpx.Response:
    return await api.post(f"/api/rooms/{room}/read", token=user.token, json={"seq": seq})


async def _read_ok(api: AsyncApi, user: User, room: str, seq: int) -> None:
    resp = await _read(api, user, room, seq)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""


async def _last_read(api: AsyncApi, user: User) -> dict[str, int]:
    return {r["room"]: r["last_read"] for r in await api.rooms(user.token)}


async def _post(api: AsyncApi, user: User, room: str, count: int) -> None:
    for n in range(count):
        await api.send(user.token, room, f"message {n}")


async def _nothing_before_the_next_message(
    api: AsyncApi, sender: User, room: str, *clients: ParleyWS
) -> None:
    """A message sent now is the next frame (but presence and typing) each of `clients`
    (joined to `room`) gets: proof that no read frame was on its way before it."""
    sent = await api.send(sender.token, room, "sentinel")
    for client in clients:
        event = await client.recv_chat()
        assert (event["type"], event["seq"]) == ("message", sent["seq"]), event


async def test_rest_read_moves_forward_only_and_shows_in_rooms_and_hello(fresh: Fresh) -> None:
    api, user, room = fresh.api, fresh.user, fresh.room
    await _post(api, user, room, 3)
    assert (await _last_read(api, user))[room] == 0  # never set

    await _read_ok(api, user, room, 2)
    await _read_ok(api, user, room, 1)  # lower: ignored, still 204
    marks = await _last_read(api, user)
    assert (marks["general"], marks[room]) == (0, 2)

    await _read_ok(api, user, room, 99)  # past the end: the room's last seq
    async with parley_ws(fresh.server.ws_url, user.token) as client:
        rooms = {r["room"]: r for r in client.hello["rooms"]}
        assert {k: rooms[room][k] for k in ("room", "last_seq", "last_read", "unread")} == {
            "room": room,
            "last_seq": 3,
            "last_read": 3,
            "unread": 0,
        }
        assert rooms["general"]["last_read"] == 0


async def test_a_read_frame_reaches_the_users_other_sockets_only(fresh: Fresh) -> None:
    api, alice, room, url = fresh.api, fresh.user, fresh.room, fresh.server.ws_url
    bob = await api.register()
    await _post(api, alice, room, 4)
    async with (
        parley_ws(url, alice.token) as mover,
        parley_ws(url, alice.token) as other_tab,
        parley_ws(url, alice.token) as idle_tab,  # never names the room
        parley_ws(url, bob.token) as someone_else,
    ):
        for client in (mover, other_tab, someone_else):
            await client.join_ok(room)
        await mover.send_json({"type": "read", "room": room, "seq": 3})
        assert await other_tab.recv_type("read") == {"type": "read", "room": room, "seq": 3}
        assert await idle_tab.recv_type("read") == {"type": "read", "room": room, "seq": 3}
        await _nothing_before_the_next_message(api, alice, room, mover, other_tab, someone_else)
        assert mover.seen_of("read") == someone_else.seen_of("read") == []
        assert (await _last_read(api, alice))[room] == 3
        assert (await _last_read(api, bob))[room] == 0  # per user

        # a lower seq: no error, nothing stored, nobody told
        await mover.send_json({"type": "read", "room": room, "seq": 2, "id": 7})
        await mover.ask_history(room, limit=1)
        assert (await mover.recv_chat())["type"] == "history"
        await _nothing_before_the_next_message(api, alice, room, other_tab)
        assert mover.seen_of("read") == []
        assert (await _last_read(api, alice))[room] == 3


async def test_a_rest_read_reaches_every_socket_of_the_user(fresh: Fresh) -> None:
    api, user, room = fresh.api, fresh.user, fresh.room
    await _post(api, user, room, 2)
    async with parley_ws(fresh.server.ws_url, user.token) as client:
        await _read_ok(api, user, room, 2)
        assert await client.recv_type("read") == {"type": "read", "room": room, "seq": 2}


async def test_a_socket_hears_the_room_as_it_calls_it(
    api: AsyncApi, alice: User, bob: User, server: ServerProcess
) -> None:
    """docs/protocol.md "Room names": bob calls his room by its bare name, though a hidden
    room of alice's holds that name; a read under its tag reaches his sockets as he calls it."""
    await api.create_room(alice.token, "plans", private=True)
    await api.create_room(bob.token, "plans")
    tagged = next(ref for ref in await api.room_names(alice.token) if ref.startswith("plans~"))
    await api.send(bob.token, "plans", "one")
    async with (
        parley_ws(server.ws_url, bob.token) as bare,
        parley_ws(server.ws_url, bob.token) as by_tag,
    ):
        assert [r["room"] for r in bare.hello["rooms"]] == ["general", "plans"]
        await by_tag.join_ok(tagged)
        await _read_ok(api, bob, tagged, 1)
        assert await bare.recv_type("read") == {"type": "read", "room": "plans", "seq": 1}
        assert await by_tag.recv_type("read") == {"type": "read", "room": tagged, "seq": 1}
    assert (await _last_read(api, bob))["plans"] == 1


async def test_a_hidden_private_room_is_not_found_as_a_missing_one(fresh: Fresh) -> None:
    api, owner = fresh.api, fresh.user
    outsider = await api.register()
    hidden, missing = unique_room(), unique_room()
    await api.create_room(owner.token, hidden, private=True)
    await api.send(owner.token, hidden, "secret")

    answers = []
    for room in (hidden, missing):
        error = assert_error(await _read(api, outsider, room, 1), 404, "not_found")
        answers.append(error["message"].replace(room, "ROOM"))
    assert answers[0] == answers[1]

    async with parley_ws(fresh.server.ws_url, outsider.token) as client:
        frames = []
        for room in (hidden, missing):
            await client.send_json({"type": "read", "room": room, "seq": 1, "id": 5})
            error = await client.expect_error("not_found")
            frames.append({**error, "message": error["message"].replace(room, "ROOM")})
        assert frames[0] == frames[1]
        assert frames[0]["id"] == 5
    assert (await _last_read(api, owner))[hidden] == 0


BAD_SEQS = [-1, 2**63, 1.5, "3", None, True]


@pytest.mark.parametrize("seq", BAD_SEQS)
async def test_a_bad_seq_is_bad_request(fresh: Fresh, seq: Any) -> None:
    assert_error(await _read(fresh.api, fresh.user, fresh.room, seq), 400, "bad_request")
    async with parley_ws(fresh.server.ws_url, fresh.user.token) as client:
        await client.send_json({"type": "read", "room": fresh.room, "seq": seq, "id": 9})
        error = await client.expect_error("bad_request")
        assert (error["id"], error["ref"]) == (9, None)
        assert "seq" in error["message"], error
        await client.send_json({"type": "read", "room": fresh.room, "id": 10})  # no seq at all
        assert (await client.expect_error("bad_request"))["id"] == 10


async def test_guests_have_no_read_marker(server_factory: ServerFactory) -> None:
    server = server_factory(["--guests"])
    async with parley_ws(server.ws_url) as guest:
        await guest.send_json({"type": "read", "room": "general", "seq": 0, "id": 1})
        assert (await guest.expect_error("forbidden"))["id"] == 1


async def test_reads_spend_an_allowance(server_factory: ServerFactory) -> None:
    server = server_factory(["--action-limits", "0.01"])  # 3 reads, then refused
    async with AsyncApi(server.url) as api:
        user = await api.register()
        await api.send(user.token, "general", "one")
        client = await open_ws(server.ws_url, user.token)
        try:
            for _ in range(3):
                await _read_ok(api, user, "general", 1)
            await client.send_json({"type": "read", "room": "general", "seq": 1})
            error = await client.expect_error("rate_limited")
            assert error["retry_after"] > 0, error
            assert_error(await _read(api, user, "general", 1), 429, "rate_limited")
        finally:
            await client.close()
