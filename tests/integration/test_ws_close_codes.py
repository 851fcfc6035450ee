"""RFC 6455 7.4: the close handshake echoes a valid code and answers an invalid one with 1002.

Against the real `parley serve`, in both socket modes, on our socket path and on the stock
aiohttp one (`--stock-websocket`). Autobahn's cases 7.7 and 7.9 check the same on the echo
endpoint (tests/conformance); this is the fast check on /chat itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Iterator

import httpx
import pytest

from tests.support.rawws import OP_CLOSE, OP_TEXT, RawWS, encode_frame
from tests.support.server import ServerProcess

# Registered codes a peer may send: echoed. 1012-1014 are registered with IANA since RFC 6455.
VALID = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999)
# Reserved (1004-1006, 1015: never on the wire), unassigned (0-999, 1016-2999) or undefined.
INVALID = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)


@pytest.fixture(scope="module", params=["override", "stock"])
def guest_chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """A --guests server (plain sockets) and a registered user's token (JSON sockets)."""
    args = ["--guests", "--register-limit", "0"]
    if request.param == "stock":
        args.append("--stock-websocket")
    proc = ServerProcess(tmp_path_factory.mktemp("close"), args)
    try:
        proc.start()
        account = {"username": f"closer{request.param}", "password": "correct horse"}
        resp = httpx.post(f"{proc.url}/api/register", json=account)
        assert resp.status_code == 201, resp.text
        yield proc, resp.json()["token"]
    finally:
        proc.stop()


async def close_with(server: ServerProcess, token: str | None, payload: bytes) -> bytes:
    """Open a socket (JSON if `token`, else plain), send a close frame with `payload`, and
    return the payload of the server's close frame."""
    subprotocol = "parley.v1" if token else None
    ws = await RawWS.open("127.0.0.1", server.port, token=token, subprotocol=subprotocol)
    try:
        assert ws.status == 101
        await ws.send_frame(OP_CLOSE, payload)
        while True:  # a JSON socket's hello may come first
            opcode, data = await ws.read_frame()
            if opcode == OP_CLOSE:
                return data
    finally:
        ws.close()


def close_code(payload: bytes) -> int:
    assert len(payload) >= 2, payload
    code: int = struct.unpack("!H", payload[:2])[0]
    return code


@pytest.mark.parametrize("mode", ["plain", "json"])
@pytest.mark.parametrize("code", VALID)
async def test_a_valid_close_code_is_echoed(
    guest_chat: tuple[ServerProcess, str], mode: str, code: int
) -> None:
    server, token = guest_chat
    reply = await close_with(server, token if mode == "json" else None, struct.pack("!H", code))
    assert close_code(reply) == code


@pytest.mark.parametrize("mode", ["plain", "json"])
@pytest.mark.parametrize("code", INVALID)
async def test_an_invalid_or_reserved_close_code_gets_1002(
    guest_chat: tuple[ServerProcess, str], mode: str, code: int
) -> None:
    server, token = guest_chat
    payload = struct.pack("!H", code) + b"bye"
    reply = await close_with(server, token if mode == "json" else None, payload)
    assert close_code(reply) == 1002


@pytest.mark.parametrize("mode", ["plain", "json"])
async def test_a_close_without_a_code_gets_1000(
    guest_chat: tuple[ServerProcess, str], mode: str
) -> None:
    server, token = guest_chat
    assert close_code(await close_with(server, token if mode == "json" else None, b"")) == 1000


async def read_until_eof(ws: RawWS) -> list[tuple[int, bytes]]:
    frames = []
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            frames.append(await ws.read_frame())
    return frames


async def test_answers_to_frames_before_a_broken_one_precede_the_close_frame(
    guest_chat: tuple[ServerProcess, str],
) -> None:
    """A frame the reader loop answers, then one with a reserved bit set, in one packet:
    the answer goes out, then aiohttp's close (1002), and nothing after it (RFC 6455 5.5.1)."""
    server, token = guest_chat
    ws = await RawWS.open("127.0.0.1", server.port, token=token)
    try:
        assert ws.status == 101
        _, hello = await ws.read_frame()
        assert json.loads(hello)["type"] == "hello"
        broken = bytearray(encode_frame(OP_TEXT, b"{}"))
        broken[0] |= 0x40  # RSV1: no extension was negotiated
        await ws.send_bytes(encode_frame(OP_TEXT, b"{not json") + bytes(broken))
        frames = await read_until_eof(ws)
    finally:
        ws.close()
    assert [op for op, _ in frames] == [OP_TEXT, OP_CLOSE], frames
    assert json.loads(frames[0][1])["type"] == "error"
    assert close_code(frames[1][1]) == 1002
