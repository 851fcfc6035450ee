"""A hand-rolled WebSocket client over a raw TCP stream.

Used where the `websockets` library is too well-behaved: a client that never answers pings,
frames that are malformed on purpose, garbage after the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "RawWS",
    "encode_frame",
    "upgrade_request",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One frame as a client sends it (masked unless mask=False)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + _xor(payload, key)


def upgrade_request(
    port: int, token: str | None, *more: str, subprotocol: str | None = "parley.v1"
) -> bytes:
    """A WebSocket handshake request for /chat on 127.0.0.1:`port`, with a bearer `token`,
    `subprotocol` and the header lines `more`."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /chat HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *([f"Authorization: Bearer {token}"] if token else []),
        *([f"Sec-WebSocket-Protocol: {subprotocol}"] if subprotocol else []),
        *more,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _xor(payload: bytes, key: bytes) -> bytes:
    """Mask or unmask: XOR with the 4-byte key repeated (one big-int XOR, not a byte loop)."""
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class _ReaderKeepingData(asyncio.StreamReader):
    """A StreamReader that hands out every byte received before a reset, then the reset.

    asyncio's own raises a reset at once, dropping the bytes already buffered: a close frame
    the server sent just before its RST would look like a socket dropped without one.
    """

    reset: BaseException | None = None

    def set_exception(self, exc: BaseException) -> None:
        self.reset = exc
        self.feed_eof()


async def _open_connection(host: str, port: int) -> tuple[_ReaderKeepingData, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = _ReaderKeepingData(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class RawWS:
    def __init__(self, reader: _ReaderKeepingData, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.response_headers: dict[str, str] = {}

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        token: str | None = None,
        subprotocol: str | None = "parley.v1",
        path: str = "/chat",
        extra_headers: dict[str, str] | None = None,
        early: bytes = b"",
    ) -> RawWS:
        """The handshake; `early` goes out in the same write as the request, before the 101
        (frames the server must keep until the socket is its own)."""
        reader, writer = await _open_connection(host, port)
        raw = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if token:
            lines.append(f"Authorization: Bearer {token}")
        for name, value in (extra_headers or {}).items():
            lines.append(f"{name}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + early)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        raw.status = int(status_line.split()[1])
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                raw.response_headers[name.strip().lower()] = value.strip()
        return raw

    async def send_frame(self, opcode: int, payload: bytes, **kw: Any) -> None:
        self.writer.write(encode_frame(opcode, payload, **kw))
        await self.writer.drain()

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_json(self, obj: Any) -> None:
        await self.send_frame(OP_TEXT, json.dumps(obj).encode())

    async def read_frame(self, within: float = 10.0) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame; raises IncompleteReadError at EOF, or
        the reset once every byte received before it has been read."""
        try:
            b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), within)
        except asyncio.IncompleteReadError as exc:
            if self.reader.reset is not None and not exc.partial:
                raise self.reader.reset from None
            raise
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        key = await self.reader.readexactly(4) if b1 & 0x80 else b""
        payload = await self.reader.readexactly(n)
        if key:
            payload = _xor(payload, key)
        return b0 & 0x0F, payload

    def close(self) -> None:
        self.writer.close()
