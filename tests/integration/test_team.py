"""Contract v2: DMs, mentions and `notify`, unread and mention counts, removing members."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest

from tests.support.api import (
    AsyncApi,
    Fresh,
    ServerFactory,
    User,
    assert_error,
    unique_room,
)
from tests.support.client import ParleyWS, parley_ws
from tests.support.server import ServerProcess

Event = dict[str, Any]


@pytest.fixture(scope="module")
def shared_server(shared_server_on_each_store: ServerProcess) -> ServerProcess:
    """Every test here runs on SQLite and on PostgreSQL."""
    return shared_server_on_each_store


async def _dm(api: AsyncApi, user: User, *others: str) -> Any:
    return await api.post("/api/dms", token=user.token, json={"users": list(others)})


async def _rooms(api: AsyncApi, user: User) -> dict[str, Event]:
    return {r["room"]: r for r in await api.rooms(user.token)}


async def _remove(api: AsyncApi, user: User, room: str, username: str) -> Any:
    return await api.request("DELETE", f"/api/rooms/{room}/members/{username}", token=user.token)


async def test_the_same_people_always_get_the_same_dm(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob, cat = await api.register(), await api.register()
    first = await _dm(api, ann, bob.username)
    assert first.status_code == 201, first.text
    dm = first.json()
    assert dm["kind"] == "dm"
    assert dm["private"] is True
    assert dm["members"] == sorted([ann.username, bob.username])
    assert dm["room"].startswith("dm~")
    again = await _dm(api, bob, ann.username.upper())  # the other side, another spelling
    assert (again.status_code, again.json()) == (200, dm)
    group = await _dm(api, ann, bob.username, cat.username)
    assert group.status_code == 201
    assert group.json()["room"] != dm["room"]

    listed = (await _rooms(api, bob))[dm["room"]]
    assert (listed["kind"], listed["members"], listed["private"]) == ("dm", dm["members"], True)
    assert dm["room"] not in await api.room_names(cat.token)  # a DM is private
    assert_error(await api.get(f"/api/rooms/{dm['room']}/messages", token=cat.token), 404)
    assert_error(await api.invite(ann.token, dm["room"], cat.username), 403, "forbidden")
    assert_error(await _remove(api, ann, dm["room"], ann.username), 403, "forbidden")
    assert_error(await _dm(api, ann, "nobody-at-all"), 404, "not_found")
    assert_error(await _dm(api, ann), 400, "bad_request")
    assert_error(await _dm(api, ann, *[f"u{i}" for i in range(9)]), 400, "bad_request")


async def test_a_dm_message_notifies_sockets_not_joined_to_it(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob = await api.register()
    dm = (await _dm(api, ann, bob.username)).json()["room"]
    async with (
        parley_ws(fresh.server.ws_url, ann.token) as a,
        parley_ws(fresh.server.ws_url, bob.token) as elsewhere,
        parley_ws(fresh.server.ws_url, bob.token) as inside,
    ):
        assert dm in {r["room"] for r in elsewhere.hello["rooms"]}
        await inside.join_ok(dm)
        sent = await a.send_ok(dm, "psst")
        note = await elsewhere.recv_type("notify")
        assert note == {
            "type": "notify",
            "room": dm,
            "seq": sent["seq"],
            "username": ann.username,
            "text": "psst",
        }
        assert (await inside.recv_type("message"))["text"] == "psst"
        await _sentinel(api, bob, fresh.room, inside, elsewhere)
        assert not inside.seen_of("notify")  # joined: the message itself, no notify
        assert not a.seen_of("notify")  # never to the sender


async def _sentinel(api: AsyncApi, sender: User, room: str, *clients: ParleyWS) -> None:
    """Each client joins `room` and gets a message sent there: what was on its way before
    (a notify) has arrived by then."""
    for client in clients:
        await client.join_ok(room)
    await api.send(sender.token, room, "sentinel")
    for client in clients:
        await client.recv_type("message", text="sentinel")


async def test_a_mention_notifies_and_counts(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    bob = await api.register()
    async with parley_ws(fresh.server.ws_url, bob.token) as b:
        await api.send(ann.token, room, "hello all")
        sent = await api.send(ann.token, room, f"ping @{bob.username.upper()}.")
        note = await b.recv_type("notify")
        assert (note["room"], note["seq"], note["username"]) == (room, sent["seq"], ann.username)
        await api.send(ann.token, room, f"not @{bob.username}x")  # another name
    counts = (await _rooms(api, bob))[room]
    assert (counts["unread"], counts["mentions"], counts["last_read"]) == (3, 1, 0)

    await api.send(bob.token, room, "my own words do not count")
    async with parley_ws(fresh.server.ws_url, bob.token) as b:
        hello = {r["room"]: r for r in b.hello["rooms"]}[room]
        assert (hello["unread"], hello["mentions"]) == (3, 1)
    read = await api.post(f"/api/rooms/{room}/read", token=bob.token, json={"seq": sent["seq"]})
    assert read.status_code == 204
    counts = (await _rooms(api, bob))[room]
    assert (counts["unread"], counts["mentions"]) == (1, 0)
    last = await api.send(ann.token, room, f"@{bob.username} again")
    await api.request("DELETE", f"/api/rooms/{room}/messages/{last['seq']}", token=ann.token)
    counts = (await _rooms(api, bob))[room]
    assert (counts["unread"], counts["mentions"]) == (1, 0)  # a deleted message is not unread


async def test_a_private_room_mentions_only_its_members(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob, outsider = await api.register(), await api.register()
    room = unique_room()
    await api.create_room(ann.token, room, private=True)
    await api.invite(ann.token, room, bob.username)
    msg = await api.send(ann.token, room, f"@{bob.username} @{outsider.username}")
    assert msg["mentions"] == [bob.username]
    assert (await _rooms(api, bob))[room]["mentions"] == 1


async def test_removal_cuts_access_at_once(fresh: Fresh) -> None:
    api, owner = fresh.api, fresh.user
    bob, cat = await api.register(), await api.register()
    room = unique_room()
    await api.create_room(owner.token, room, private=True)
    await api.invite(owner.token, room, bob.username)
    await api.invite(owner.token, room, cat.username)
    async with (
        parley_ws(fresh.server.ws_url, owner.token) as o,
        parley_ws(fresh.server.ws_url, bob.token) as joined,
        parley_ws(fresh.server.ws_url, bob.token) as idle,
    ):
        await o.join_ok(room)
        await joined.join_ok(room)
        await joined.send_ok(room, "still here")
        assert_error(await _remove(api, cat, room, bob.username), 403, "forbidden")

        resp = await _remove(api, owner, room, bob.username)
        assert resp.status_code == 204, resp.text
        member = await o.recv_type("member")
        assert (member["username"], member["change"], member["by"]) == (
            bob.username,
            "removed",
            owner.username,
        )
        assert await joined.recv_type("removed") == {"type": "removed", "room": room}
        assert await idle.recv_type("removed") == {"type": "removed", "room": room}

        await joined.send_text(room, "let me back")
        await joined.expect_error("not_found")
        await joined.join(room)
        await joined.expect_error("not_found")
        await joined.ask_history(room)
        await joined.expect_error("not_found")
        await o.send_ok(room, "after bob")
        await _sentinel(api, owner, fresh.room, joined)
        assert not [e for e in joined.seen_of("message") if e["room"] == room and e["seq"] > 3]

    assert room not in await api.room_names(bob.token)
    assert_error(await api.get(f"/api/rooms/{room}/messages", token=bob.token), 404)
    assert_error(await _remove(api, owner, room, bob.username), 404, "not_found")  # not a member
    resp = await _remove(api, cat, room, cat.username)  # leaving
    assert resp.status_code == 204
    assert room not in await api.room_names(cat.token)
    changes = [m["change"] for m in await _member_events(api, owner, room)]
    assert changes == ["invited", "invited", "removed", "left"]


async def test_a_room_lost_after_hello_is_refused_at_the_first_join(fresh: Fresh) -> None:
    """A socket's first join takes the room from what its `hello` read (no read of its
    own): a removal in between must still refuse it, on the socket that saw it in hello."""
    api, owner = fresh.api, fresh.user
    bob = await api.register()
    room = unique_room()
    await api.create_room(owner.token, room, private=True)
    await api.invite(owner.token, room, bob.username)
    async with parley_ws(fresh.server.ws_url, bob.token) as ws:
        assert room in [r["room"] for r in ws.hello["rooms"]]
        resp = await _remove(api, owner, room, bob.username)
        assert resp.status_code == 204, resp.text
        await ws.recv_type("removed")
        await ws.join(room)
        await ws.expect_error("not_found")
    async with parley_ws(fresh.server.ws_url, bob.token) as ws:
        await ws.join(room)
        await ws.expect_error("not_found")


async def test_a_first_join_by_a_name_that_means_another_room_now(fresh: Fresh) -> None:
    """bob calls private room P `x` and a public room Q of the same name `x~tag`. Removed
    from P after his hello, `x` means Q to him: his first join of `x` is of Q, never of P
    (hello's record of P must not serve it)."""
    api, owner = fresh.api, fresh.user
    bob, carol = await api.register(), await api.register()
    name = unique_room()
    assert (await api.create_room(owner.token, name, private=True)).status_code == 201
    await api.invite(owner.token, name, bob.username)
    made = await api.create_room(carol.token, name)  # carol cannot see P: a room of its own
    assert made.status_code == 201, made.text
    rooms = {r["room"]: r for r in await api.rooms(bob.token)}
    assert rooms[name]["private"] is True, rooms  # `x` means P to bob
    public = next(ref for ref in rooms if ref.startswith(name + "~"))
    async with parley_ws(fresh.server.ws_url, bob.token) as ws:
        resp = await _remove(api, owner, name, bob.username)
        assert resp.status_code == 204, resp.text
        await ws.recv_type("removed")
        await ws.join_ok(name)
        await api.send(owner.token, name, "secret after the removal")  # into P
        await api.send(carol.token, public, "public hello")  # into Q
        event = await ws.recv_until(lambda e: e.get("type") == "message")
        assert event["text"] == "public hello", event


async def _member_events(api: AsyncApi, user: User, room: str) -> list[Event]:
    return [e for e in await _events(api, user, room) if e["type"] == "member"]


async def test_members_panel_and_topic_in_hello(fresh: Fresh) -> None:
    api, owner = fresh.api, fresh.user
    bob = await api.register()
    room = unique_room()
    await api.create_room(owner.token, room, private=True)
    await api.invite(owner.token, room, bob.username)
    resp = await api.request("PATCH", f"/api/rooms/{room}", token=owner.token, json={"topic": "hi"})
    assert resp.status_code == 200
    members = await api.get(f"/api/rooms/{room}/members", token=bob.token)
    assert sorted(members.json()["members"]) == sorted([owner.username, bob.username])
    async with parley_ws(fresh.server.ws_url, bob.token) as b:
        info = {r["room"]: r for r in b.hello["rooms"]}[room]
    assert (info["topic"], info["kind"], info["private"]) == ("hi", "room", True)


async def test_each_notified_socket_hears_the_room_by_its_own_name(fresh: Fresh) -> None:
    # Two private rooms named "proj": to carol, bob's is "proj"; to dave, who saw ann's
    # first, "proj" is ann's and bob's is "proj~tag". A notify for bob's room must name
    # it to each in their own words, whichever socket hears it first.
    api, ann = fresh.api, fresh.user
    bob, carol, dave = await api.register(), await api.register(), await api.register()
    name = unique_room()
    await api.create_room(ann.token, name, private=True)
    await api.invite(ann.token, name, dave.username)
    assert (await api.create_room(bob.token, name, private=True)).status_code == 201
    await api.invite(bob.token, name, carol.username)
    await api.invite(bob.token, name, dave.username)
    bobs = next(r for r in await api.rooms(dave.token) if r["owner"] == bob.username)["room"]
    assert bobs.startswith(f"{name}~")
    async with (
        parley_ws(fresh.server.ws_url, carol.token) as c,
        parley_ws(fresh.server.ws_url, dave.token) as d,
    ):
        await c.join_ok(name)  # this socket now calls bob's room by its bare name...
        await c.leave(name)  # ...and is no longer joined to it: it gets notified
        await api.send(bob.token, name, f"@{carol.username} @{dave.username} look")
        assert (await c.recv_type("notify"))["room"] == name
        assert (await d.recv_type("notify"))["room"] == bobs


async def test_a_socket_that_never_named_the_room_hears_it_as_in_hello(fresh: Fresh) -> None:
    # Two private rooms named "proj": ann's, keyed "proj", and bob's, "proj~tag". Carol
    # sees only bob's: she calls it "proj". Eve saw bob's first: to her, ann's is
    # "proj~tag". A notify names each room as the room list does for its user.
    api, ann = fresh.api, fresh.user
    bob, carol, eve = await api.register(), await api.register(), await api.register()
    name = unique_room()
    await api.create_room(ann.token, name, private=True)
    await api.create_room(bob.token, name, private=True)
    await api.invite(bob.token, name, carol.username)
    await api.invite(bob.token, name, eve.username)
    await api.invite(ann.token, name, eve.username)
    refs = {r["owner"]: r["room"] for r in await api.rooms(eve.token) if r["room"] != fresh.room}
    anns = refs[ann.username]
    assert anns.startswith(f"{name}~")
    async with (
        parley_ws(fresh.server.ws_url, carol.token) as c,
        parley_ws(fresh.server.ws_url, eve.token) as e,
    ):
        assert name in {r["room"] for r in c.hello["rooms"]}
        await api.send(bob.token, name, f"@{carol.username} look")
        assert (await c.recv_type("notify"))["room"] == name
        await api.send(ann.token, name, f"@{eve.username} look")
        assert (await e.recv_type("notify"))["room"] == anns


async def test_a_room_named_dm_is_another_room_even_for_people_with_dms(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob = await api.register()
    dm = (await _dm(api, ann, bob.username)).json()["room"]
    resp = await api.post("/api/rooms", token=ann.token, json={"room": "dm", "private": True})
    assert resp.status_code == 201, resp.text  # ann's DM is not a room called "dm"
    await api.send(ann.token, "dm", "in the room named dm")
    assert [m["text"] for m in await api.messages(ann.token, "dm")] == ["in the room named dm"]
    assert await api.messages(bob.token, dm) == []
    again = await api.post("/api/rooms", token=ann.token, json={"room": "dm", "private": False})
    assert_error(again, 409, "conflict")  # that one she does see


async def test_a_change_racing_its_authors_removal_is_refused(
    server_factory: ServerFactory,
) -> None:
    # Bob's socket knows it may use the room; his reaction reaches the store while his
    # removal commits (the sleep aims at that window, it proves nothing): it must be
    # refused, as a send would be, never stored after the `removed` event.
    server = server_factory(["--rate-limit", "0"])
    async with AsyncApi(server.url) as api:
        owner, bob = await api.register(), await api.register()
        room = unique_room()
        await api.create_room(owner.token, room, private=True)
        target = (await api.send(owner.token, room, "react to me"))["seq"]
        async with parley_ws(server.ws_url, bob.token) as b:
            for i in range(20):
                await api.invite(owner.token, room, bob.username)
                await b.change_ok("react", room, target=target, emoji=f"a{i}", on=True)
                removal = asyncio.create_task(_remove(api, owner, room, bob.username))
                await asyncio.sleep(0.002)
                cid = await b.change("react", room, target=target, emoji=f"b{i}", on=True)
                assert (await removal).status_code == 204
                await b.recv_until(partial(_answers, cid))
        member = True
        for event in await _events(api, owner, room):
            if event["type"] == "member":
                member = event["change"] == "invited"
            else:
                assert member or event["username"] != bob.username, event


def _answers(client_id: str, event: Event) -> bool:
    return client_id in (event.get("client_id"), event.get("ref"))


async def _events(api: AsyncApi, user: User, room: str) -> list[Event]:
    async with parley_ws(api.base_url.replace("http", "ws", 1) + "/chat", user.token) as c:
        joined = await c.join_ok(room, since=0)
        return [await c.recv_chat() for _ in range(joined["last_seq"])]
