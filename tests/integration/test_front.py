"""The front door (server/front.py): a signed-in client's /chat upgrade opens its socket
without aiohttp's request machinery, and everything else reaches aiohttp as before."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct

import pytest

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.rawws import (
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    RawWS,
    encode_frame,
    upgrade_request,
)
from tests.support.server import ServerProcess, TlsServer

BOUND = 10.0  # seconds to wait for an answer the server gives much sooner

_VARYING = re.compile(rb"(Date|Sec-WebSocket-Accept): [^\r]*")


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server


async def _head_of_answer(port: int, *writes: bytes, pause: float = 0.0) -> bytes:
    """The head of the server's answer to `writes` (sent `pause` seconds apart)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("subprotocol", ["parley.v1", None])
async def test_its_101_is_the_one_aiohttp_makes(
    server: ServerProcess, api: AsyncApi, alice: User, subprotocol: str | None
) -> None:
    """An `Origin` sends the same handshake through aiohttp: both 101s are the same but
    for the date and the key's answer."""
    port = server.port
    before = await _opened(api)
    ours = await _head_of_answer(port, upgrade_request(port, alice.token, subprotocol=subprotocol))
    assert await _opened(api) == {"front": before["front"] + 1, "aiohttp": before["aiohttp"]}
    origin = f"Origin: http://127.0.0.1:{port}"
    aiohttps = await _head_of_answer(
        port, upgrade_request(port, alice.token, origin, subprotocol=subprotocol)
    )
    assert await _opened(api) == {"front": before["front"] + 1, "aiohttp": before["aiohttp"] + 1}
    assert ours.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert _VARYING.sub(b"", ours) == _VARYING.sub(b"", aiohttps)
    assert (b"Sec-WebSocket-Protocol: parley.v1" in ours) == (subprotocol is not None)


async def test_more_than_64_kib_sent_behind_the_head_is_all_answered_in_order(
    server: ServerProcess, alice: User
) -> None:
    """What comes before the 101 is kept (reading pauses past 64 KiB, then resumes)."""
    join = encode_frame(OP_TEXT, json.dumps({"type": "join", "room": "general"}).encode())
    sends = b"".join(
        encode_frame(OP_TEXT, json.dumps(_send(i)).encode()) for i in range(25)
    )  # 25 x 3 KiB, within the rate limit's burst
    assert len(sends) > 2**16
    raw = await RawWS.open("127.0.0.1", server.port, token=alice.token, early=join + sends)
    try:
        assert raw.status == 101
        acked: list[str] = []
        kinds: list[str] = []
        while len(acked) < 25:
            frame = json.loads((await raw.read_frame())[1])
            kinds.append(frame["type"])
            if frame["type"] == "ack":
                acked.append(frame["client_id"])
        assert kinds[:2] == ["hello", "joined"]
        assert acked == [f"c{i}" for i in range(25)]
    finally:
        raw.close()


async def _opened(api: AsyncApi) -> dict[str, int]:
    """parley_sockets_opened, by the way the handshakes took."""
    text = (await api.get("/metrics")).text
    found = re.findall(r'^parley_sockets_opened_total\{by="(\w+)"\} (\S+)$', text, re.M)
    return {by: int(float(count)) for by, count in found}


def _send(i: int) -> dict[str, str]:
    return {"type": "send", "room": "general", "text": f"{i} " + "x" * 3000, "client_id": f"c{i}"}


async def test_a_head_split_over_two_reads_is_upgraded_by_aiohttp(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    before = await _opened(api)
    request = upgrade_request(server.port, alice.token)
    head = await _head_of_answer(server.port, request[:40], request[40:], pause=0.2)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert (await _opened(api))["aiohttp"] == before["aiohttp"] + 1


async def test_a_connection_silent_at_first_is_aiohttps(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    """Silent past the wait (0.5 s), a connection goes to aiohttp: it answers it in full."""
    before = await _opened(api)
    request = upgrade_request(server.port, alice.token)
    head = await _head_of_answer(server.port, request, pause=0.8)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert (await _opened(api))["aiohttp"] == before["aiohttp"] + 1
    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert (await _head_of_answer(server.port, healthz, pause=0.8)).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    ("more", "by"),
    [
        ((), "front"),  # the plain case, for reference
        (("Content-Length: 0",), "aiohttp"),  # a body: aiohttp's to read
        (("X-Forwarded-For: 10.1.2.3",), "front"),  # only guests' limits read it
        (("Authorization: Bearer second",), "front"),  # the first one counts, as in aiohttp
    ],
)
async def test_other_heads_open_a_socket_one_way_or_the_other(
    server: ServerProcess, api: AsyncApi, alice: User, more: tuple[str, ...], by: str
) -> None:
    before = await _opened(api)
    request = upgrade_request(server.port, alice.token, *more, subprotocol=None)
    assert (await _head_of_answer(server.port, request)).startswith(b"HTTP/1.1 101 ")
    assert (await _opened(api))[by] == before[by] + 1


async def test_a_token_that_is_not_live_gets_aiohttps_401(
    server: ServerProcess, api: AsyncApi
) -> None:
    head = await _head_of_answer(server.port, upgrade_request(server.port, "not-a-token"))
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"Content-Security-Policy:" in head  # aiohttp's answer, with our headers


# --- the edges (from the review of the front door) ---------------------------------


async def _answered_as_by_aiohttp(port: int, token: str, *more: str) -> bytes:
    """Check that a handshake with the header lines `more` gets the status line that
    aiohttp's path gives it (our own `Origin` sends it there); that line."""
    origin = f"Origin: http://127.0.0.1:{port}"
    by_aiohttp = await _first_line(port, upgrade_request(port, token, *more, origin))
    assert await _first_line(port, upgrade_request(port, token, *more)) == by_aiohttp
    return by_aiohttp


async def _served_with_user(
    server_factory: ServerFactory, *flags: str
) -> tuple[ServerProcess, User]:
    """A server of its own started with `flags`, and a user registered on it."""
    srv = server_factory(list(flags))
    async with AsyncApi(srv.url) as api:
        return srv, await api.register()


async def _first_line(port: int, request: bytes) -> bytes:
    """The status line of the server's first answer to `request`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND)
    finally:
        writer.close()


async def _open_sockets(api: AsyncApi, until: int) -> int:
    """parley_connections, once it is `until` (or BOUND has passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while True:
        text = (await api.get("/metrics")).text
        found = int(float(re.findall(r"^parley_connections (\S+)$", text, re.M)[0]))
        if found == until or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "more",
    [
        ("Expect: 100-continue",),  # aiohttp: "100 Continue" first (its expect handler)
        ("Expect: something-else",),  # aiohttp: 417 Expectation Failed
    ],
)
async def test_an_expect_header_is_answered_as_aiohttp_answers_it(
    server: ServerProcess, alice: User, more: tuple[str, ...]
) -> None:
    by_aiohttp = await _answered_as_by_aiohttp(server.port, alice.token, *more)
    assert not by_aiohttp.startswith(b"HTTP/1.1 101 ")  # the reference


@pytest.mark.parametrize(
    "more",
    [
        ("Connection: close",),  # a second Connection header: the first one counts
        ("authorization: Bearer not-live",),  # a second, different token: the first counts
        ("X-Pad: " + "p" * 8200,),  # a head too long for the front door
        ("X-Name: caf\xe9",),
    ],
)
async def test_more_heads_are_answered_as_aiohttp_answers_them(
    server: ServerProcess, alice: User, more: tuple[str, ...]
) -> None:
    await _answered_as_by_aiohttp(server.port, alice.token, *more)


async def test_a_token_that_is_not_utf8_is_refused_401_on_either_path(
    server: ServerProcess,
) -> None:
    """Like any token that is not live. (Both paths answer 500 and log a traceback for
    each such request: `hash_token` cannot encode the parser's surrogate escape.)"""
    port = server.port
    bad = upgrade_request(port, "TOKEN").replace(b"TOKEN", b"tok\xff")
    origin = f"Origin: http://127.0.0.1:{port}".encode()
    by_aiohttp = await _first_line(port, bad.replace(b"\r\n\r\n", b"\r\n" + origin + b"\r\n\r\n"))
    assert await _first_line(port, bad) == by_aiohttp
    assert by_aiohttp == b"HTTP/1.1 401 Unauthorized\r\n"


async def test_a_silent_connection_is_closed_at_a_head_timeout_below_the_wait(
    server_factory: ServerFactory, tmp_path: object
) -> None:
    """--header-timeout 0.1: aiohttp's path closes a silent connection 0.1 s after its
    connect. The front door keeps it for FIRST_READ_WAIT (0.5 s) first, so a head sent
    at 0.3 s still opens a socket. (The sleep proves that something did happen: the
    close, due 0.2 s before.)"""
    srv, alice = await _served_with_user(server_factory, "--header-timeout", "0.1")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        await asyncio.sleep(0.3)
        try:
            writer.write(upgrade_request(srv.port, alice.token))
            await writer.drain()
        except ConnectionError:
            return  # closed already: as it should be
        answer = await asyncio.wait_for(reader.read(100), BOUND)
    except ConnectionError:
        return
    finally:
        writer.close()
    assert not answer.startswith(b"HTTP/1.1 101 ")


async def test_clients_that_vanish_during_the_token_check_leave_nothing_behind(
    server_factory: ServerFactory,
) -> None:
    """Each sends its head and resets the connection at once (SO_LINGER 0)."""
    server, alice = await _served_with_user(server_factory)
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(upgrade_request(server.port, alice.token))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # one more, kept: when it is greeted, all the earlier heads have been judged
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request(server.port, alice.token))
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND)).startswith(b"HTTP/1.1 101")
    writer.close()
    async with AsyncApi(server.url) as api:
        assert await _open_sockets(api, until=0) == 0
    assert "Traceback" not in server.log()


async def test_sigterm_while_handshakes_are_under_way_exits_cleanly(
    server_factory: ServerFactory,
) -> None:
    srv, alice = await _served_with_user(server_factory)
    writers = []
    for _ in range(100):
        _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(upgrade_request(srv.port, alice.token))
        writers.append(writer)
    silent = [(await asyncio.open_connection("127.0.0.1", srv.port))[1] for _ in range(20)]
    await asyncio.gather(*(w.drain() for w in writers))
    code = await asyncio.to_thread(srv.terminate)
    for w in writers + silent:
        w.close()
    log = srv.log()
    assert code == 0, log
    for sign in ("Traceback", "was never retrieved", "Task was destroyed"):
        assert sign not in log, log


async def test_silent_connections_count_under_the_cap_from_their_connect(
    server_factory: ServerFactory,
) -> None:
    """Two connections that say nothing, under a cap of one: once they count (SLOW_HEAD
    after the connect, after the front door's wait), the second is refused 429."""
    srv = server_factory(["--max-unauthenticated-per-address", "1", "--header-timeout", "60"])
    conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(2)]
    try:
        reads = [asyncio.ensure_future(reader.read()) for reader, _ in conns]
        done, _pending = await asyncio.wait(reads, timeout=BOUND, return_when="FIRST_COMPLETED")
        assert len(done) == 1
        assert done.pop().result().startswith(b"HTTP/1.1 429 ")
    finally:
        for read in reads:
            read.cancel()
        for _, writer in conns:
            writer.close()


async def test_the_stock_path_has_no_front_door(server_factory: ServerFactory) -> None:
    srv = server_factory(["--stock-websocket"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
        assert await _first_line(srv.port, upgrade_request(srv.port, alice.token)) == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
        )
        assert await _opened(api) == {"front": 0, "aiohttp": 1}


async def test_over_tls_the_front_door_opens_the_socket(tls_server: TlsServer) -> None:
    srv, ctx = tls_server
    async with AsyncApi(srv.url, verify=ctx) as api:
        alice = await api.register()
        port = srv.port
        heads = []
        for more in ((), (f"Origin: https://127.0.0.1:{port}",)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            writer.write(upgrade_request(port, alice.token, *more))
            heads.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND))
            writer.close()
        assert await _opened(api) == {"front": 1, "aiohttp": 1}
    varying = re.compile(rb"(Date|Sec-WebSocket-Accept): [^\r]*")
    assert heads[0].startswith(b"HTTP/1.1 101 ")
    assert varying.sub(b"", heads[0]) == varying.sub(b"", heads[1])


async def _frames_until_close(port: int, token: str, early: bytes, origin: bool) -> list[object]:
    """The opcodes the server sends after the 101 (the close frame's code, not its
    opcode), up to its close."""
    extra = {"Origin": f"http://127.0.0.1:{port}"} if origin else {}
    raw = await RawWS.open("127.0.0.1", port, token=token, extra_headers=extra, early=early)
    try:
        assert raw.status == 101
        seen: list[object] = []
        while True:
            opcode, payload = await raw.read_frame()
            if opcode == OP_CLOSE:
                seen.append(("close", struct.unpack("!H", payload[:2])[0]))
                return seen
            seen.append(opcode)
    finally:
        raw.close()


@pytest.mark.parametrize(
    "early",
    [
        encode_frame(OP_PING, b"p") + encode_frame(OP_CLOSE, struct.pack("!H", 1000)),
        encode_frame(OP_TEXT, b"x" * 70_000) + encode_frame(OP_CLOSE, struct.pack("!H", 1000)),
        encode_frame(OP_TEXT, b"{}", mask=False) + encode_frame(OP_CLOSE, struct.pack("!H", 1000)),
        b"\xc1" + encode_frame(OP_TEXT, b"{}")[1:],  # a broken frame: RSV1 set
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # a request pipelined after
    ],
    ids=["ping-close", "70k-text-close", "unmasked", "rsv1", "pipelined-request"],
)
async def test_frames_behind_the_head_are_answered_as_aiohttp_answers_them(
    server: ServerProcess, alice: User, early: bytes
) -> None:
    port = server.port
    by_aiohttp = await _frames_until_close(port, alice.token, early, origin=True)
    assert await _frames_until_close(port, alice.token, early, origin=False) == by_aiohttp


async def test_a_refused_handshake_is_not_counted_as_an_opened_socket(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    """A signed-in upgrade whose key is no key: the front door leaves it to aiohttp,
    which answers 400. parley_sockets_opened counts WebSockets opened."""
    before = await _opened(api)
    bad_key = re.sub(
        rb"Sec-WebSocket-Key: [^\r]*",
        b"Sec-WebSocket-Key: nokey",
        upgrade_request(server.port, alice.token),
    )
    assert await _first_line(server.port, bad_key) == b"HTTP/1.1 400 Bad Request\r\n"
    assert await _opened(api) == before
