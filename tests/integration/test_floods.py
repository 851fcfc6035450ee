"""Floods that would cost everybody else: every frame type and every write endpoint has an
allowance (docs/protocol.md, "Limits"), a join/leave loop does not flood the room with
presence, and guests count per client address, not per socket (issue 11, item 5)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.api import AsyncApi, Fresh, ServerFactory, assert_error, unique_room
from tests.support.client import PROTOCOL, Event, ParleyWS, new_client_id, open_plain, parley_ws
from tests.support.server import ServerProcess


def is_error(event: Event) -> bool:
    return event.get("type") == "error"


def assert_rate_limited(event: Event, ref: str | None = None) -> None:
    assert event["code"] == "rate_limited", event
    assert event["ref"] == ref, event
    assert isinstance(event["retry_after"], int | float), event
    assert event["retry_after"] > 0, event


async def test_join_leave_flood_is_refused_and_others_hear_of_it_once(fresh: Fresh) -> None:
    """Before: every join/leave pair was two presence frames to every member of the room."""
    srv, api, room = fresh.server, fresh.api, fresh.room
    eve = await api.register()
    async with (
        parley_ws(srv.ws_url, fresh.user.token) as watcher,
        parley_ws(srv.ws_url, eve.token) as flooder,
    ):
        await watcher.join_ok(room)
        started = time.monotonic()
        for _ in range(600):  # more than the 500 joins a user may make at once
            await flooder.join(room)
            await flooder.leave(room)
        cid = await flooder.send_text(room, "the sentinel, after the flood")
        ack = await flooder.recv_until(lambda e: e.get("type") == "ack" and e["client_id"] == cid)

        refusals = flooder.seen_of("error")
        assert refusals, "the flood was never refused"
        for event in refusals:
            assert_rate_limited(event)  # join and leave frames carry no client_id: ref null
        assert len(flooder.seen_of("joined")) < 600

        # Every presence frame the flood caused was sent before the sentinel message.
        await watcher.recv_type("message", seq=ack["seq"])
        about_eve = watcher.seen_of("presence", username=eve.username)
        # online, then at most offline + online + a held offline per grace (5 s); not 1200
        periods = 1 + int((time.monotonic() - started) / 5.0)
        assert len(about_eve) <= 1 + 3 * periods, about_eve
        assert about_eve[0]["online"] is True

        # It cost nobody else: the watcher's own joins and leaves are not limited.
        await watcher.leave(room)
        await watcher.join_ok(room)


async def flood_socket(
    ws: ParleyWS, count: int, frame: Callable[[int], Awaitable[object]]
) -> Event:
    """Fire `count` frames without waiting, then return the first error event."""
    for i in range(count):
        await frame(i)
    return await ws.recv_until(is_error, within=60)


FRAME_FLOODS: dict[str, tuple[int, Callable[[ParleyWS, str, int], Awaitable[object]]]] = {
    # twice the allowance, so that what is earned back meanwhile cannot hide the limit
    "join": (1000, lambda ws, room, i: ws.join(room)),
    "leave": (1000, lambda ws, room, i: ws.leave(room)),
    "history": (240, lambda ws, room, i: ws.ask_history(room, limit=1)),
    "typing": (120, lambda ws, room, i: ws.typing(room)),
    "send": (60, lambda ws, room, i: ws.send_text(room, f"flood {i}", f"flood-{i}")),
}


@pytest.mark.parametrize("kind", list(FRAME_FLOODS))
async def test_each_frame_type_answers_rate_limited_when_flooded(fresh: Fresh, kind: str) -> None:
    count, frame = FRAME_FLOODS[kind]
    srv, room = fresh.server, fresh.room
    other = await fresh.api.register()
    async with parley_ws(srv.ws_url, fresh.user.token) as flooder:
        await flooder.join_ok(room)
        error = await flood_socket(flooder, count, lambda i: frame(flooder, room, i))
        if kind == "send":  # the refused send is named: the 31st or a later one
            assert error["ref"] in {f"flood-{i}" for i in range(30, count)}, error
        assert_rate_limited(error, error["ref"] if kind == "send" else None)
        # The flooder's socket is still open and answers what it may still do...
        if kind != "history":  # (after the flood's other refusals)
            await flooder.ask_history(room)
            await flooder.recv_until(lambda e: e.get("type") == "history", within=60)
        # ...and another user's allowance is untouched: no error before the history answer.
    async with parley_ws(srv.ws_url, other.token) as bystander:
        await bystander.join_ok(room)
        await frame(bystander, room, 0)
        await bystander.history(room)
        assert bystander.seen_of("error") == []


async def _create_room(api: AsyncApi, token: str, room: str, i: int) -> httpx.Response:
    return await api.post("/api/rooms", token=token, json={"room": f"{room}-{i}"})


async def _invite(api: AsyncApi, token: str, room: str, i: int) -> httpx.Response:
    return await api.invite(token, room, f"nobody{i}")  # refused or not, it counts


async def _post_message(api: AsyncApi, token: str, room: str, i: int) -> httpx.Response:
    return await api.send_raw(token, room, f"rest flood {i}", f"rest-{i}")


async def _read_history(api: AsyncApi, token: str, room: str, i: int) -> httpx.Response:
    return await api.messages_raw(token, room, limit=1)


async def _upload(api: AsyncApi, token: str, room: str, i: int) -> httpx.Response:
    return await api.upload(token, b"")  # refused as empty or not, it counts


HTTP_FLOODS: dict[
    str, tuple[int, Callable[[AsyncApi, str, str, int], Awaitable[httpx.Response]]]
] = {
    "POST /api/rooms": (31, _create_room),
    "POST /api/rooms/{room}/members": (201, _invite),
    "POST /api/rooms/{room}/messages": (60, _post_message),
    "GET /api/rooms/{room}/messages": (240, _read_history),
    "POST /api/files": (101, _upload),
}


@pytest.mark.parametrize("endpoint", list(HTTP_FLOODS))
async def test_each_write_endpoint_answers_429_when_flooded(fresh: Fresh, endpoint: str) -> None:
    count, call = HTTP_FLOODS[endpoint]
    api, token, room = fresh.api, fresh.user.token, fresh.room
    statuses = []
    for i in range(count):
        resp = await call(api, token, room, i)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            break
    else:
        pytest.fail(f"{count} requests, never 429: {sorted(set(statuses))}")
    assert_error(resp, 429, "rate_limited")
    assert resp.json()["error"]["retry_after"] > 0
    assert int(resp.headers["Retry-After"]) >= 1
    # another user's allowance is untouched
    other = await api.register()
    own_room = unique_room()
    assert (await api.create_room(other.token, own_room)).status_code == 201
    assert (await call(api, other.token, own_room, 0)).status_code != 429


async def guest_ws(srv: ServerProcess, forwarded_for: str | None = None) -> ParleyWS:
    """A guest socket (no credentials), optionally through a proxy that says who it is for."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    ws = await connect(srv.ws_url, subprotocols=[PROTOCOL], additional_headers=headers, proxy=None)
    client = ParleyWS(ws)
    client.hello = await client.recv()
    assert client.hello["type"] == "hello", client.hello
    assert client.username.startswith("guest-")
    return client


async def test_guest_sockets_from_one_address_share_one_allowance(
    server_factory: ServerFactory,
) -> None:
    """Before: every guest socket came with a fresh allowance of its own."""
    srv = server_factory(["--guests", "--rate-limit", "3"])
    first = await guest_ws(srv)
    for i in range(3):
        await first.send_ok("general", f"guest message {i}")
    second = await guest_ws(srv)  # another name, the same address
    assert second.username != first.username
    cid = await second.send_text("general", "a new socket is no new allowance")
    assert_rate_limited(await second.expect_error("rate_limited"), cid)
    plain = await open_plain(srv.ws_url)  # the tutorial's client, a guest too
    await plain.send("nor is a plain one")
    line = await plain.recv()
    assert isinstance(line, str)
    assert line.startswith("* error rate_limited: sending too fast (retry after "), line
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        async with parley_ws(srv.ws_url, alice.token) as a:  # an account: its own allowance
            await a.send_ok("general", "alice from the same address")
        stored = await api.messages(alice.token, "general")
    assert [m["text"] for m in stored] == [
        "guest message 0",
        "guest message 1",
        "guest message 2",
        "alice from the same address",
    ]
    for ws in (first, second):
        await ws.close()
    await plain.close()


async def test_guests_behind_a_trusted_proxy_count_per_client_address(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--guests", "--rate-limit", "2", "--trusted-proxy", "127.0.0.1"])
    one = [await guest_ws(srv, "203.0.113.7") for _ in range(2)]
    other = await guest_ws(srv, "198.51.100.9")
    await one[0].send_ok("general", "one a")
    await one[1].send_ok("general", "one b")
    cid = await one[1].send_text("general", "one c")
    assert_rate_limited(await one[1].expect_error("rate_limited"), cid)
    cid = await one[0].send_text("general", "one d")
    assert_rate_limited(await one[0].expect_error("rate_limited"), cid)
    await other.send_ok("general", "the other address has its own")
    for ws in (*one, other):
        await ws.close()


async def test_action_limits_zero_turns_them_off(server_factory: ServerFactory) -> None:
    srv = server_factory(["--action-limits", "0", "--register-limit", "0"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        async with parley_ws(srv.ws_url, alice.token) as a:
            for _ in range(600):
                await a.join("general")
                await a.leave("general")
            sentinel = new_client_id()
            await a.send_text("general", "sentinel", sentinel)
            await a.recv_until(lambda e: e.get("type") == "ack" and e["client_id"] == sentinel)
            assert a.seen_of("error") == []
            assert len(a.seen_of("joined")) == 600


async def test_guest_sockets_opened_in_a_loop_spend_the_address_allowance(
    server_factory: ServerFactory,
) -> None:
    """Each guest socket has a new name, so the presence grace cannot merge them: the
    address's allowance of guest sockets opened bounds them, at the handshake (429)."""
    srv = server_factory(["--guests", "--action-limits", "0.0025"])  # 5 guest sockets a minute
    async with parley_ws(srv.ws_url) as watcher:  # a JSON guest: the first of the five
        await watcher.join_ok("general")
        for _ in range(4):
            sock = await open_plain(srv.ws_url)
            await sock.close()
        with pytest.raises(InvalidStatus) as refused:
            await open_plain(srv.ws_url)
        response = refused.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        error = json.loads(response.body)["error"]
        assert error["code"] == "rate_limited"
        assert error["retry_after"] > 0
        cid = new_client_id()
        await watcher.send_text("general", "sentinel", cid)
        await watcher.recv_until(lambda e: e.get("type") == "ack" and e["client_id"] == cid)
        await watcher.recv_type("message", client_id=cid)
        online = [e["username"] for e in watcher.seen_of("presence", online=True)]
        assert len(online) == 4, online  # the refused socket never showed up


async def test_a_user_who_flaps_within_the_presence_grace_is_not_announced_again(
    server_factory: ServerFactory,
) -> None:
    """A first departure is announced at once; a user who leaves again within the grace
    and comes back is neither "offline" nor "online" again to the room, and is still
    listed online to newcomers meanwhile."""
    srv = server_factory(["--presence-grace", "60"])
    async with AsyncApi(srv.url) as api:
        alice, bob, carol = await api.register(), await api.register(), await api.register()
        async with parley_ws(srv.ws_url, alice.token) as watcher:
            await watcher.join_ok("general")
            async with parley_ws(srv.ws_url, bob.token) as b:
                await b.join_ok("general")
                await b.leave("general")  # announced at once
                await watcher.recv_type("presence", username=bob.username, online=False)
                await b.join_ok("general")  # and back: that is news too
                await watcher.recv_type("presence", username=bob.username, online=True)
                await b.leave("general")  # again within the grace: held
                await b.history("general")  # the leave has been handled once this answers
                async with parley_ws(srv.ws_url, carol.token) as newcomer:
                    joined = await newcomer.join_ok("general")
                assert bob.username in joined["online"]
                await b.join_ok("general")
                ack = await b.send_ok("general", "sentinel")
            await watcher.recv_type("message", seq=ack["seq"])
            about_bob = watcher.seen_of("presence", username=bob.username)
            assert [e["online"] for e in about_bob] == [True, False, True]
