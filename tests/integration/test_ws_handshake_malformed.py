"""A malformed WebSocket handshake to /chat is refused with 400 before any socket opens, on
both socket paths (Parley's own upgrade and aiohttp's stock one), and the server goes on:
RFC 6455 4.2.1's checks of Upgrade, Connection, Sec-WebSocket-Version and Sec-WebSocket-Key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import register
from tests.support.server import ServerProcess

KEY = base64.b64encode(b"0123456789abcdef").decode()
GOOD = {
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Protocol": "parley.v1",
}


@pytest.fixture(scope="module", params=["own", "stock"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per socket path for the module (the handshakes here change nothing)."""
    args = ["--stock-websocket"] if request.param == "stock" else []
    proc = ServerProcess(tmp_path_factory.mktemp(request.param), args)
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    return register(server.url)


async def status_and_headers(server: ServerProcess, headers: dict[str, str]) -> list[str]:
    """The response's status line and header lines to a raw GET /chat with `headers`."""
    url = urlsplit(server.ws_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"GET {url.path} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return head.decode("latin-1").split("\r\n")[:-2]
    finally:
        writer.close()


@pytest.mark.parametrize(
    "change",
    [
        {"Upgrade": "h2c"},
        {"Connection": "keep-alive"},
        {"Sec-WebSocket-Version": "12"},  # 13, and the drafts 8 and 7, are taken
        {"Sec-WebSocket-Version": ""},
        {"Sec-WebSocket-Key": "not base64!"},
        {"Sec-WebSocket-Key": base64.b64encode(b"fifteen bytes..").decode()},
        {"Sec-WebSocket-Key": ""},
    ],
)
async def test_a_malformed_handshake_is_refused_with_400(
    server: ServerProcess, token: str, change: dict[str, str]
) -> None:
    headers = {**GOOD, "Authorization": f"Bearer {token}", **change}
    head = await status_and_headers(server, {k: v for k, v in headers.items() if v})
    assert head[0].startswith("HTTP/1.1 400"), head


async def test_the_same_handshake_well_formed_opens_with_the_right_accept(
    server: ServerProcess, token: str
) -> None:
    head = await status_and_headers(server, {**GOOD, "Authorization": f"Bearer {token}"})
    assert head[0].startswith("HTTP/1.1 101"), head
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    accept = base64.b64encode(hashlib.sha1(KEY.encode() + guid).digest()).decode()
    assert fields["sec-websocket-accept"] == accept
    assert fields["sec-websocket-protocol"] == "parley.v1"
    assert fields["upgrade"].lower() == "websocket"
