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

__all__ = ["OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT", "RawWS", "encode_frame"]

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
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


class RawWS:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
    ) -> RawWS:
        reader, writer = await asyncio.open_connection(host, port)
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
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
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
        """(opcode, payload) of the next server frame; raises IncompleteReadError at EOF."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), within)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        key = await self.reader.readexactly(4) if b1 & 0x80 else b""
        payload = await self.reader.readexactly(n)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return b0 & 0x0F, payload

    def close(self) -> None:
        self.writer.close()
