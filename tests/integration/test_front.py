"""The front door (server/front.py): a signed-in client's /chat upgrade opens its socket
without aiohttp's request machinery, and everything else reaches aiohttp as before."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re

import pytest

from tests.support.api import AsyncApi, User
from tests.support.rawws import OP_TEXT, RawWS, encode_frame
from tests.support.server import ServerProcess

_VARYING = re.compile(rb"(Date|Sec-WebSocket-Accept): [^\r]*")


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server


def _upgrade(port: int, token: str, subprotocol: str | None, *more: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /chat HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Authorization: Bearer {token}",
        *([f"Sec-WebSocket-Protocol: {subprotocol}"] if subprotocol else []),
        *more,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


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
    ours = await _head_of_answer(port, _upgrade(port, alice.token, subprotocol))
    assert await _opened(api) == {"front": before["front"] + 1, "aiohttp": before["aiohttp"]}
    origin = f"Origin: http://127.0.0.1:{port}"
    aiohttps = await _head_of_answer(port, _upgrade(port, alice.token, subprotocol, origin))
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
    request = _upgrade(server.port, alice.token, "parley.v1")
    head = await _head_of_answer(server.port, request[:40], request[40:], pause=0.2)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert (await _opened(api))["aiohttp"] == before["aiohttp"] + 1


async def test_a_connection_silent_at_first_is_aiohttps(
    server: ServerProcess, api: AsyncApi, alice: User
) -> None:
    """Silent past the wait (0.5 s), a connection goes to aiohttp: it answers it in full."""
    before = await _opened(api)
    request = _upgrade(server.port, alice.token, "parley.v1")
    head = await _head_of_answer(server.port, request, pause=0.8)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert (await _opened(api))["aiohttp"] == before["aiohttp"] + 1
    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert (await _head_of_answer(server.port, healthz, pause=0.8)).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "more",
    [
        (),  # the plain case, for reference
        ("Content-Length: 0",),
        ("X-Forwarded-For: 10.1.2.3",),
        ("Authorization: Bearer second",),  # the first one counts, as aiohttp takes it
    ],
)
async def test_other_heads_are_answered_as_aiohttp_answers_them(
    server: ServerProcess, alice: User, more: tuple[str, ...]
) -> None:
    head = await _head_of_answer(server.port, _upgrade(server.port, alice.token, None, *more))
    assert head.startswith(b"HTTP/1.1 101 ")


async def test_a_token_that_is_not_live_gets_aiohttps_401(
    server: ServerProcess, api: AsyncApi
) -> None:
    head = await _head_of_answer(server.port, _upgrade(server.port, "not-a-token", "parley.v1"))
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"Content-Security-Policy:" in head  # aiohttp's answer, with our headers
