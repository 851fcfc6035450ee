"""Issue 11, item 7: a private room's name never betrays it (docs/protocol.md, "Room names").

Creating a name that only a private room hidden from the creator holds makes a new room;
each user calls by its bare name the room of that name they have seen longest, and any
other one `name~tag`.
"""

from __future__ import annotations

from typing import Any

from tests.support.api import AsyncApi, User, assert_error
from tests.support.client import parley_ws
from tests.support.server import ServerProcess


async def _rooms(api: AsyncApi, user: User) -> dict[str, dict[str, Any]]:
    return {r["room"]: r for r in await api.rooms(user.token)}


async def _texts(api: AsyncApi, user: User, ref: str) -> list[str]:
    return [m["text"] for m in await api.messages(user.token, ref)]


def _tagged(refs: object, name: str) -> str:
    """The one `name~tag` reference among `refs`."""
    tagged = [ref for ref in refs if isinstance(ref, str) and ref.startswith(f"{name}~")]
    assert len(tagged) == 1, refs
    return tagged[0]


async def test_creating_a_hidden_private_rooms_name_answers_as_for_a_free_name(
    api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "secret-merger", private=True)
    await api.send(alice.token, "secret-merger", "the numbers")

    taken = await api.post("/api/rooms", token=bob.token, json={"room": "secret-merger"})
    free = await api.post("/api/rooms", token=bob.token, json={"room": "open-plans"})
    assert (taken.status_code, free.status_code) == (201, 201), (taken.text, free.text)
    assert taken.json() == {**free.json(), "room": "secret-merger"}

    # bob's room is his own: empty, and nothing of alice's shows through it
    assert await api.messages(bob.token, "secret-merger") == []
    sent = await api.send(bob.token, "secret-merger", "hello")
    assert (sent["room"], sent["seq"]) == ("secret-merger", 1)
    assert await _texts(api, bob, "secret-merger") == ["hello"]
    assert (await _rooms(api, bob))["secret-merger"]["private"] is False

    # alice keeps her room under its name; bob's public one reaches her by its tag
    assert await _texts(api, alice, "secret-merger") == ["the numbers"]
    alice_rooms = await _rooms(api, alice)
    assert alice_rooms["secret-merger"]["private"] is True
    public = _tagged(alice_rooms, "secret-merger")
    assert alice_rooms[public]["private"] is False
    page = await api.messages(alice.token, public)
    assert [(m["room"], m["text"]) for m in page] == [(public, "hello")]

    # a third user sees one room of that name: bob's
    carol = await api.register()
    assert [r for r in await api.room_names(carol.token) if r.startswith("secret")] == [
        "secret-merger"
    ]
    assert await _texts(api, carol, "secret-merger") == ["hello"]


async def test_two_hidden_private_rooms_of_one_name_stay_apart(
    api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "board", private=True)
    resp = await api.post("/api/rooms", token=bob.token, json={"room": "board", "private": True})
    assert resp.status_code == 201, resp.text
    await api.send(alice.token, "board", "alice's")
    await api.send(bob.token, "board", "bob's")
    assert await _texts(api, alice, "board") == ["alice's"]
    assert await _texts(api, bob, "board") == ["bob's"]
    assert [r for r in await api.room_names(bob.token) if r.startswith("board")] == ["board"]


async def test_a_name_the_creator_sees_is_still_a_conflict(
    api: AsyncApi, alice: User, bob: User
) -> None:
    await api.create_room(alice.token, "team", private=True)
    await api.invite(alice.token, "team", bob.username)
    for user, private in ((alice, False), (bob, True)):  # owner, member
        body = {"room": "team", "private": private}
        assert_error(await api.post("/api/rooms", token=user.token, json=body), 409, "conflict")
    await api.create_room(alice.token, "lobby")
    carol = await api.register()
    body = {"room": "lobby", "private": True}
    assert_error(await api.post("/api/rooms", token=carol.token, json=body), 409, "conflict")


async def test_a_tag_opens_nothing_hidden(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    """A private room's real tag, known to an outsider, still opens nothing."""
    dave = await api.register()
    await api.create_room(alice.token, "vault", private=True)
    await api.create_room(bob.token, "vault")  # public, under a key of its own
    await api.send(dave.token, "vault", "dave uses the public one first")
    assert (await api.invite(alice.token, "vault", dave.username)).status_code == 201
    alices = _tagged(await _rooms(api, dave), "vault")  # dave calls alice's room by its tag
    await api.send(alice.token, "vault", "for members")
    assert await _texts(api, dave, alices) == ["for members"]

    for method, path, body in (
        ("GET", "/api/rooms/{}/messages", None),
        ("POST", "/api/rooms/{}/messages", {"text": "peek"}),
        ("GET", "/api/rooms/{}/members", None),
        ("POST", "/api/rooms/{}/members", {"username": bob.username}),
    ):
        resp = await api.request(method, path.format(alices), token=bob.token, json=body)
        assert_error(resp, 404, "not_found")
    async with parley_ws(server.ws_url, bob.token) as b:
        for frame in (
            {"type": "join", "room": alices},
            {"type": "history", "room": alices},
            {"type": "send", "room": alices, "text": "peek", "client_id": "peek-1"},
            {"type": "typing", "room": alices},
        ):
            await b.send_json(frame)
            assert (await b.expect_error("not_found"))["message"] == f"no room {alices!r}"
    assert await _texts(api, alice, "vault") == ["for members"]


async def test_a_public_room_made_to_catch_a_private_name_never_catches_its_members(
    api: AsyncApi, alice: User, bob: User
) -> None:
    """Squatting: mallory guesses a private room's name and makes a public room of it. A
    member invited later still means the private room by its name."""
    mallory = await api.register()
    await api.create_room(alice.token, "plans", private=True)
    assert (await api.create_room(mallory.token, "plans")).status_code == 201
    assert (await api.invite(alice.token, "plans", bob.username)).status_code == 201
    await api.send(bob.token, "plans", "the secret numbers")  # the name he was told
    assert await _texts(api, alice, "plans") == ["the secret numbers"]
    assert await _texts(api, mallory, "plans") == []
    squat = _tagged(await _rooms(api, bob), "plans")
    assert (await _rooms(api, bob))[squat]["private"] is False


async def test_a_resent_client_id_is_answered_with_the_room_it_was_stored_in(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    await api.create_room(alice.token, "aaa")
    await api.create_room(alice.token, "bbb")
    first = await api.send_raw(alice.token, "aaa", "one", "same-id")
    again = await api.send_raw(alice.token, "bbb", "one", "same-id")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["room"] == "aaa"
    async with parley_ws(server.ws_url, alice.token) as a:
        await a.send_text("bbb", "one", "same-id")
        ack = await a.recv_type("ack", client_id="same-id")
        assert (ack["room"], ack["seq"]) == ("aaa", 1)


async def test_an_invitation_never_changes_what_a_name_means_to_the_invitee(
    server: ServerProcess, api: AsyncApi, alice: User, bob: User
) -> None:
    """bob's "club" stays his; alice's, into which he is invited later, is `club~tag`
    to him, on the socket too, while alice calls it "club"."""
    await api.create_room(alice.token, "club", private=True)
    await api.create_room(bob.token, "club", private=True)
    await api.send(bob.token, "club", "bob's own")
    assert (await api.invite(alice.token, "club", bob.username)).status_code == 201
    bob_rooms = await _rooms(api, bob)
    alices = _tagged(bob_rooms, "club")
    assert await _texts(api, bob, "club") == ["bob's own"]

    async with parley_ws(server.ws_url, alice.token) as a, parley_ws(server.ws_url, bob.token) as b:
        assert alices in {r["room"] for r in b.hello["rooms"]}
        assert "club" in {r["room"] for r in a.hello["rooms"]}
        assert alices not in {r["room"] for r in a.hello["rooms"]}
        await a.join_ok("club")
        joined = await b.join_ok(alices)
        assert alice.username in joined["online"]
        presence = await a.recv_type("presence")  # bob is there (alice's view: "club")
        assert (presence["room"], presence["username"]) == ("club", bob.username)

        ack = await a.send_ok("club", "for the club")
        assert (ack["room"], ack["seq"]) == ("club", 2)  # after the invitation's member event
        seen_by_bob = await b.recv_type("message")
        assert (seen_by_bob["room"], seen_by_bob["text"]) == (alices, "for the club")
        seen_by_alice = await a.recv_type("message")
        assert seen_by_alice["room"] == "club"

        ack = await b.send_ok(alices, "thanks")
        assert (ack["room"], ack["seq"]) == (alices, 3)
        # joined to alice's room (keyed "club"), bob's bare "club" is still his own room
        for i in range(3):  # the first through the store, the rest on the socket's fast path
            ack = await b.send_ok("club", f"mine {i}")
            assert ack["room"] == "club"
        assert (await a.recv_type("message", text="thanks"))["room"] == "club"
        await b.typing(alices)
        assert (await a.recv_type("typing"))["room"] == "club"
        history = await b.history(alices)
        assert [(m["room"], m["text"]) for m in history] == [
            (alices, "for the club"),
            (alices, "thanks"),
        ]
    assert await _texts(api, bob, "club") == ["bob's own", "mine 0", "mine 1", "mine 2"]
    assert await _texts(api, alice, "club") == ["for the club", "thanks"]
