"""Issue 3: the server pings idle sockets and drops dead ones (--ping-interval, --ping-timeout)."""

from __future__ import annotations

import asyncio

from tests.support.api import AsyncApi, ServerFactory
from tests.support.client import open_ws
from tests.support.rawws import OP_PING, OP_PONG, OP_TEXT, RawWS


async def read_until_dropped(raw: RawWS, within: float) -> list[int]:
    """Opcodes of every frame until the server closes the TCP connection (never answers)."""
    opcodes: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"still connected; frames so far: {opcodes}")
        try:
            opcode, _ = await raw.read_frame(remaining)
        except (asyncio.IncompleteReadError, ConnectionError):
            return opcodes
        opcodes.append(opcode)


async def test_unresponsive_client_is_dropped_and_goes_offline(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(["--ping-interval", "1", "--ping-timeout", "1"])
    async with AsyncApi(srv.url) as api:
        dead = await api.register()
        alive = await api.register()

    watcher = await open_ws(srv.ws_url, alive.token)
    await watcher.join_ok("general")

    raw = await RawWS.open("127.0.0.1", srv.port, token=dead.token)
    assert raw.status == 101, raw.response_headers
    assert raw.response_headers.get("sec-websocket-protocol") == "parley.v1"
    await raw.send_json({"type": "join", "room": "general"})

    online = await watcher.recv_type("presence", within=15, username=dead.username)
    assert online["online"] is True

    # the raw client reads everything and never answers a ping
    opcodes = await read_until_dropped(raw, within=30)
    assert OP_PING in opcodes, opcodes
    raw.close()

    offline = await watcher.recv_type("presence", within=15, username=dead.username)
    assert offline == {
        "type": "presence",
        "room": "general",
        "username": dead.username,
        "online": False,
    }
    # the watcher answers pings (the websockets client does) and has outlived several
    # ping timeouts: it is still connected and chatting
    ack = await watcher.send_ok("general", "still alive")
    assert ack["seq"] == 1
    await watcher.close()


async def test_idle_but_responsive_client_is_kept(server_factory: ServerFactory) -> None:
    srv = server_factory(["--ping-interval", "1", "--ping-timeout", "1"])
    async with AsyncApi(srv.url) as api:
        user = await api.register()
        peer = await api.register()
        dead = await api.register()
    idle = await open_ws(srv.ws_url, user.token, ping_interval=None)  # answers, never initiates
    await idle.join_ok("general")
    other = await open_ws(srv.ws_url, peer.token)
    await other.join_ok("general")
    # Two sockets opened after it, one after the other, that never answer: each is dropped
    # a ping interval and a ping timeout after its last frame, later than the idle socket
    # would be at its first and then its second unanswered ping, were answering not enough.
    for _ in range(2):
        sentinel = await RawWS.open("127.0.0.1", srv.port, token=dead.token)
        await sentinel.send_json({"type": "join", "room": "general"})
        assert OP_PING in await read_until_dropped(sentinel, within=30)
        sentinel.close()
    ack = await other.send_ok("general", "are you there")
    msg = await idle.recv_type("message", seq=ack["seq"])
    assert msg["text"] == "are you there"
    assert other.seen_of("presence", username=user.username, online=False) == []
    await idle.close()
    await other.close()


async def answer_server_pings(raw: RawWS, count: int) -> None:
    """Read until the server has pinged `count` times, answering each: as many ping
    intervals have passed on the server's clock."""
    pings = 0
    while pings < count:
        opcode, payload = await raw.read_frame(within=10)
        if opcode == OP_PING:
            pings += 1
            await raw.send_frame(OP_PONG, payload)


async def test_client_ping_gets_its_payload_back_in_order(server_factory: ServerFactory) -> None:
    """A client's ping is answered with a pong carrying the same payload, and counts as
    life: the server does not ping a client that keeps pinging it."""
    srv = server_factory(["--ping-interval", "1", "--ping-timeout", "1"])
    async with AsyncApi(srv.url) as api:
        user = await api.register()
    raw = await RawWS.open("127.0.0.1", srv.port, token=user.token)
    assert raw.status == 101
    opcode, _ = await raw.read_frame()  # hello
    assert opcode == OP_TEXT
    # the sentinel, opened later and silent, is pinged three times: had the server pinged
    # the pinging socket in that time, that ping would come before one of its pongs
    sentinel = await RawWS.open("127.0.0.1", srv.port, token=user.token)
    three_intervals = asyncio.ensure_future(answer_server_pings(sentinel, 3))
    beats = 0
    while not three_intervals.done():
        payload = f"beat {beats}".encode()
        await raw.send_frame(OP_PING, payload)
        assert await raw.read_frame(within=5) == (OP_PONG, payload)
        beats += 1
        await asyncio.sleep(0.25)  # a sign of life four times a ping interval
    await three_intervals
    await raw.send_frame(OP_PING, b"last")  # a server ping sent before this comes first
    assert await raw.read_frame(within=5) == (OP_PONG, b"last")
    sentinel.close()
    raw.close()
