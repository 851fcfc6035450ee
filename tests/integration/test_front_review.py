"""Review of the front door (server/front.py): a head it takes must be answered as aiohttp's
path answers it. `Origin: http://127.0.0.1:PORT` (our own origin, so allowed) sends the
very same request through aiohttp's path, which is the reference."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import ssl
import struct
from pathlib import Path

import pytest
import trustme

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.rawws import OP_CLOSE, OP_PING, OP_TEXT, RawWS, encode_frame
from tests.support.server import ServerProcess

BOUND = 10.0  # seconds to wait for an answer the server gives much sooner


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server


def _upgrade(port: int, token: str, *more: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /chat HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Authorization: Bearer {token}",
        "Sec-WebSocket-Protocol: parley.v1",
        *more,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _first_line(port: int, request: bytes) -> bytes:
    """The status line of the server's first answer to `request`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND)
    finally:
        writer.close()


async def _opened(api: AsyncApi) -> dict[str, int]:
    text = (await api.get("/metrics")).text
    found = re.findall(r'^parley_sockets_opened_total\{by="(\w+)"\} (\S+)$', text, re.M)
    return {by: int(float(count)) for by, count in found}


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
    port = server.port
    origin = f"Origin: http://127.0.0.1:{port}"
    by_aiohttp = await _first_line(port, _upgrade(port, alice.token, *more, origin))
    assert not by_aiohttp.startswith(b"HTTP/1.1 101 ")  # the reference
    assert await _first_line(port, _upgrade(port, alice.token, *more)) == by_aiohttp


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
    port = server.port
    origin = f"Origin: http://127.0.0.1:{port}"
    by_aiohttp = await _first_line(port, _upgrade(port, alice.token, *more, origin))
    assert await _first_line(port, _upgrade(port, alice.token, *more)) == by_aiohttp


async def test_a_token_that_is_not_utf8_is_refused_401_on_either_path(
    server: ServerProcess,
) -> None:
    """Like any token that is not live. (Both paths answer 500 and log a traceback for
    each such request: `hash_token` cannot encode the parser's surrogate escape.)"""
    port = server.port
    bad = _upgrade(port, "TOKEN").replace(b"TOKEN", b"tok\xff")
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
    srv = server_factory(["--header-timeout", "0.1"])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        await asyncio.sleep(0.3)
        try:
            writer.write(_upgrade(srv.port, alice.token))
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
    server = server_factory([])
    async with AsyncApi(server.url) as api:
        alice = await api.register()
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(_upgrade(server.port, alice.token))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # one more, kept: when it is greeted, all the earlier heads have been judged
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_upgrade(server.port, alice.token))
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), BOUND)).startswith(b"HTTP/1.1 101")
    writer.close()
    async with AsyncApi(server.url) as api:
        assert await _open_sockets(api, until=0) == 0
    assert "Traceback" not in server.log()


async def test_sigterm_while_handshakes_are_under_way_exits_cleanly(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory([])
    async with AsyncApi(srv.url) as api:
        alice = await api.register()
    writers = []
    for _ in range(100):
        _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(_upgrade(srv.port, alice.token))
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
        assert await _first_line(srv.port, _upgrade(srv.port, alice.token)) == (
            b"HTTP/1.1 101 Switching Protocols\r\n"
        )
        assert await _opened(api) == {"front": 0, "aiohttp": 1}


async def test_over_tls_the_front_door_opens_the_socket(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(cert_file), append=i > 0)
    cert.private_key_pem.write_to_path(str(key_file))
    srv = server_factory(tls=(str(cert_file), str(key_file)), verify=False)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    async with AsyncApi(srv.url, verify=ctx) as api:
        alice = await api.register()
        port = srv.port
        heads = []
        for more in ((), (f"Origin: https://127.0.0.1:{port}",)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            writer.write(_upgrade(port, alice.token, *more))
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
        _upgrade(server.port, alice.token),
    )
    assert await _first_line(server.port, bad_key) == b"HTTP/1.1 400 Bad Request\r\n"
    assert await _opened(api) == before
