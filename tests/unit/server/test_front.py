"""Which first reads the front door takes (server/front.py); the rest goes to aiohttp."""

from __future__ import annotations

import asyncio

import pytest

from parley.server.front import _bearer, _chat_upgrade

HEAD = (
    "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def _head(*more: str, first: str = "GET /chat HTTP/1.1") -> bytes:
    return (
        HEAD.replace("GET /chat HTTP/1.1", first) + "".join(f"{m}\r\n" for m in more) + "\r\n"
    ).encode()


async def test_a_plain_chat_upgrade_is_taken() -> None:
    message = _chat_upgrade(_head("Authorization: Bearer abc"), asyncio.get_running_loop())
    assert message is not None
    assert message.headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize(
    "head",
    [
        _head(first="GET /chat?x=1 HTTP/1.1"),
        _head(first="GET /chat/ HTTP/1.1"),
        _head(first="POST /chat HTTP/1.1"),
        _head(first="GET /chat HTTP/1.0"),
        _head("Origin: http://h"),
        _head("Content-Length: 3"),
        _head("Transfer-Encoding: chunked"),
        _head("Expect: 100-continue"),
        _head("Bad Header: x"),
        _head("X: a\x00b"),
        b"GET /chat HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n",  # two requests
    ],
)
async def test_anything_else_is_left_to_aiohttp(head: bytes) -> None:
    assert _chat_upgrade(head, asyncio.get_running_loop()) is None


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        (None, None),
    ],
)
async def test_the_bearer_token(authorization: str | None, token: str | None) -> None:
    more = () if authorization is None else (f"Authorization: {authorization}",)
    message = _chat_upgrade(_head(*more), asyncio.get_running_loop())
    assert message is not None
    assert _bearer(message) == token
