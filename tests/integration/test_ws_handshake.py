"""Contract: the WebSocket handshake (auth 401, Origin 403, subprotocol) and guest mode."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.support.api import AsyncApi, ServerFactory, User, assert_error
from tests.support.client import handshake_status, open_plain, open_ws
from tests.support.rawws import OP_PING, OP_PONG, OP_TEXT, RawWS, encode_frame, upgrade_request
from tests.support.server import ServerProcess

GUEST_NAME = re.compile(r"^guest-[0-9a-f]{4}$")
FOREIGN = "http://evil.example"


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    """One server for the module's handshakes (a fresh one costs a process start): each test
    signs up a user of its own. The guest tests count seqs from 1: theirs stay fresh."""
    return shared_server


async def test_no_auth_401_before_upgrade(server: ServerProcess) -> None:
    assert await handshake_status(server.ws_url) == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        {"Cookie": "session=forged; parley_session=forged; token=forged"},
    ],
)
async def test_bad_credentials_401_before_upgrade(
    server: ServerProcess, headers: dict[str, str]
) -> None:
    assert await handshake_status(server.ws_url, headers=headers) == 401


async def test_valid_token_upgrades_with_parley_v1(server: ServerProcess, alice: User) -> None:
    client = await open_ws(server.ws_url, alice.token)
    assert client.ws.subprotocol == "parley.v1"
    assert client.hello["username"] == alice.username
    await client.close()


async def test_foreign_origin_403(server: ServerProcess, alice: User) -> None:
    assert await handshake_status(server.ws_url, alice.token, origin=FOREIGN) == 403
    port = server.port
    for origin in (
        f"http://127.0.0.1:{port + 1}",
        f"https://127.0.0.1:{port}",  # other scheme = other origin
        f"http://127.0.0.1.evil.example:{port}",
        "null",
    ):
        assert await handshake_status(server.ws_url, alice.token, origin=origin) == 403, origin


async def test_foreign_origin_with_cookie_403(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    """Cross-site WebSocket hijacking: a browser sends the cookie from any page."""
    resp = await api.login_raw(alice.username, alice.password)
    name, _, rest = resp.headers["set-cookie"].partition("=")
    cookie = f"{name}={rest.split(';')[0]}"
    assert await handshake_status(server.ws_url, cookie=cookie, origin=FOREIGN) == 403
    assert await handshake_status(server.ws_url, cookie=cookie) == 101


async def test_own_origin_allowed(server: ServerProcess, alice: User) -> None:
    client = await open_ws(server.ws_url, alice.token, origin=f"http://127.0.0.1:{server.port}")
    assert client.username == alice.username
    await client.close()


async def test_no_origin_allowed(server: ServerProcess, alice: User) -> None:
    client = await open_ws(server.ws_url, alice.token)  # websockets sends no Origin by default
    assert client.username == alice.username
    await client.close()


async def test_allow_origin_flag(server_factory: ServerFactory) -> None:
    srv = server_factory(
        ["--allow-origin", "https://app.example", "--allow-origin", "http://b.test"]
    )
    async with AsyncApi(srv.url) as api:
        user = await api.register()
    for origin in ("https://app.example", "http://b.test"):
        client = await open_ws(srv.ws_url, user.token, origin=origin)
        assert client.username == user.username
        await client.close()
    assert await handshake_status(srv.ws_url, user.token, origin="https://other.example") == 403
    assert await handshake_status(srv.ws_url, user.token, origin="http://app.example") == 403


async def test_plain_mode_obeys_the_same_auth_and_origin_rules(
    server: ServerProcess, alice: User
) -> None:
    ws = await open_plain(server.ws_url, alice.token)
    await ws.close()
    with pytest.raises(Exception, match="401"):
        await open_plain(server.ws_url)
    with pytest.raises(Exception, match="403"):
        await open_plain(server.ws_url, alice.token, origin=FOREIGN)


# -- guests -----------------------------------------------------------------------------------


async def test_guest_socket_gets_guest_name_and_chats_in_general(
    guest_server: ServerProcess,
) -> None:
    guest = await open_ws(guest_server.ws_url)
    assert GUEST_NAME.match(guest.username), guest.hello
    assert "general" in {r["room"] for r in guest.hello["rooms"]}
    joined = await guest.join_ok("general")
    assert guest.username in joined["online"]
    ack = await guest.send_ok("general", "hi from a guest")
    assert ack["seq"] == 1
    msg = await guest.recv_type("message", seq=1)
    assert msg["username"] == guest.username
    assert msg["text"] == "hi from a guest"
    await guest.close()


@pytest.mark.parametrize("origin", [FOREIGN, "null", "file://", None])
async def test_guest_accepted_from_any_origin(
    guest_server: ServerProcess, origin: str | None
) -> None:
    guest = await open_ws(guest_server.ws_url, origin=origin)
    assert GUEST_NAME.match(guest.username), guest.hello
    await guest.join_ok("general")
    ack = await guest.send_ok("general", f"from {origin}")
    assert ack["seq"] == 1
    await guest.close()


async def test_guest_plain_text_tutorial_page_from_disk(guest_server: ServerProcess) -> None:
    """The classic page: new WebSocket('ws://localhost:8080/chat') from file:// (Origin: null)."""
    ws = await open_plain(guest_server.ws_url, origin="null")
    await ws.send("hello tutorial")
    line = await ws.recv()
    assert isinstance(line, str)
    assert re.fullmatch(r"guest-[0-9a-f]{4}: hello tutorial", line), line
    await ws.close()


async def test_guest_server_still_checks_origin_for_credentials(
    guest_server: ServerProcess,
) -> None:
    async with AsyncApi(guest_server.url) as api:
        user = await api.register()
    assert await handshake_status(guest_server.ws_url, user.token, origin=FOREIGN) == 403
    assert await handshake_status(guest_server.ws_url, "bogus-token") == 401
    client = await open_ws(guest_server.ws_url, user.token)
    assert client.username == user.username  # an account is not turned into a guest
    await client.close()


async def test_guest_limited_to_general(guest_server: ServerProcess) -> None:
    """docs/protocol.md (ext): guests use only `general`; elsewhere forbidden; REST 401."""
    async with AsyncApi(guest_server.url) as api:
        owner = await api.register()
        await api.create_room(owner.token, "lobby")
        assert_error(await api.get("/api/rooms"), 401)
        assert_error(await api.post("/api/rooms/general/messages", json={"text": "x"}), 401)
        guest = await open_ws(guest_server.ws_url)
        await guest.join("lobby")
        await guest.expect_error("forbidden")
        cid = await guest.send_text("lobby", "sneak in")
        err = await guest.expect_error("forbidden")
        assert err["ref"] == cid
        # still open and usable
        await guest.join_ok("general")
        ack = await guest.send_ok("general", "ok here")
        assert ack["seq"] == 1
        assert await api.messages(owner.token, "lobby") == []
        await guest.close()


async def test_without_guests_flag_no_guest(server: ServerProcess) -> None:
    for origin in (None, "null", FOREIGN):
        assert await handshake_status(server.ws_url, origin=origin) in (401, 403)
    assert await handshake_status(server.ws_url) == 401


async def test_frames_that_come_before_the_socket_is_handed_over_are_answered_in_order(
    server: ServerProcess, alice: User
) -> None:
    """Frames that reach the server while aiohttp still has the connection (sent right behind
    the 101 while the hello is being built; here, for certain, in the same write as the
    request) wait there and reach the socket first, in order, after the hello."""
    join = encode_frame(OP_TEXT, json.dumps({"type": "join", "room": "general"}).encode())
    ping = encode_frame(OP_PING, b"early")
    raw = await RawWS.open("127.0.0.1", server.port, token=alice.token, early=join + ping)
    try:
        assert raw.status == 101
        answers = [await raw.read_frame() for _ in range(3)]
        assert [op for op, _ in answers] == [OP_TEXT, OP_TEXT, OP_PONG]
        assert json.loads(answers[0][1])["type"] == "hello"
        assert json.loads(answers[1][1])["type"] == "joined"
        assert answers[2][1] == b"early"
    finally:
        raw.close()


async def _first_read(port: int, token: str, subprotocol: str | None, *more: str) -> bytes:
    """What the first read after a handshake request gets."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(port, token, *more, subprotocol=subprotocol))
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("origin", [False, True], ids=["front-door", "aiohttp"])
async def test_the_101_and_the_hello_go_out_in_one_write(
    server: ServerProcess, alice: User, origin: bool
) -> None:
    """The 101 waits for the greeting and leaves with it, one write (one system call a
    socket fewer): the first read gets both, the hello whole, and the 101's headers are
    the ones aiohttp's handshake gives (with our Server), nothing more. On both ways a
    handshake takes: the front door's, and aiohttp's (an `Origin` sends it there)."""
    more = (f"Origin: http://127.0.0.1:{server.port}",) if origin else ()
    data = await _first_read(server.port, alice.token, "parley.v1", *more)
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    assert status == "HTTP/1.1 101 Switching Protocols"
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    assert set(headers) == {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-protocol",
        "date",
        "server",
    }
    assert headers["sec-websocket-protocol"] == "parley.v1"
    assert rest[0] == 0x80 | OP_TEXT  # one unmasked text frame, whole
    length, start = rest[1], 2
    if length == 126:
        length, start = int.from_bytes(rest[2:4], "big"), 4
    assert length < 126 or start == 4
    hello = json.loads(rest[start : start + length])
    assert len(rest) == start + length  # nothing behind it yet
    assert hello["type"] == "hello"
    assert hello["username"] == alice.username


async def test_a_plain_socket_gets_its_101_without_a_subprotocol(
    server: ServerProcess, alice: User
) -> None:
    """The tutorial's socket has no greeting: its 101 goes out alone, at once."""
    data = await _first_read(server.port, alice.token, None)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-protocol" not in head.lower()
    assert rest == b""
