"""Server-side WebSocket frames built once and written as bytes to many sockets.

A server frame is never masked, so the bytes of a broadcast are the same for
every recipient: we build header + payload once and hand that object to each
transport, instead of letting the library frame it again per socket.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["PING", "close_frame", "pong_frame", "text_frame"]

_FIN_TEXT: Final = 0x81
_FIN_CLOSE: Final = 0x88
_FIN_PONG: Final = 0x8A

PING: Final = b"\x89\x00"  # a keepalive ping with no payload


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, size) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, size) + payload


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame (a control frame: payload at most 125 bytes)."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return bytes((_FIN_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """The answer to a client's ping: its payload back (a control frame: at most 125 bytes)."""
    return bytes((_FIN_PONG, len(payload))) + payload
