"""Server-side WebSocket frames built once and written as bytes to many sockets.

A server frame is never masked, so the bytes of a broadcast are the same for
every recipient: we build header + payload once and hand that object to each
transport, instead of letting the library frame it again per socket.
"""

from __future__ import annotations

import struct
from typing import Final

from aiohttp import WSCloseCode

__all__ = [
    "PING",
    "binary_frame",
    "close_frame",
    "close_reply",
    "pong_frame",
    "text_frame",
    "text_frames",
]

_FIN_TEXT: Final = 0x81
_FIN_BINARY: Final = 0x82
_FIN_CLOSE: Final = 0x88
_FIN_PONG: Final = 0x8A

PING: Final = b"\x89\x00"  # a keepalive ping with no payload
# RFC 6455 7.4.2: 3000-3999 registered with IANA by libraries and frameworks, 4000-4999
# for private use (Parley's own: protocol.CloseCode). No names: a peer may send any.
_REGISTERED_OR_PRIVATE: Final = range(3000, 5000)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame carrying `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:  # an ack, most events: built here, one call less per frame
        return bytes((_FIN_TEXT, size)) + payload
    return _data_frame(_FIN_TEXT, payload)


def text_frames(payloads: list[bytes]) -> bytes:
    """`text_frame` of each of `payloads`, one after the other (a batch's acks): one call."""
    return b"".join(
        [bytes((_FIN_TEXT, len(p))) + p if len(p) < 126 else text_frame(p) for p in payloads]
    )


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, final binary frame carrying `payload`."""
    return _data_frame(_FIN_BINARY, payload)


def _data_frame(first: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame (a control frame: payload at most 125 bytes)."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return bytes((_FIN_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """The answer to a client's ping: its payload back (a control frame: at most 125 bytes)."""
    return bytes((_FIN_PONG, len(payload))) + payload


def close_reply(code: int) -> int:
    """The code that answers a client's close frame carrying `code` (0: it carried none).

    RFC 6455 7.4: a valid code is echoed; one that is reserved or unassigned (0-999,
    1004-1006, 1015, 1016-2999, 5000 and up) is a protocol error, 1002. The registered
    1012-1014 are valid. aiohttp's parser turns most invalid codes into 1002 itself but
    lets 1006 through (it is in its enum, meant for local use only), and would answer
    every close with 1000.
    """
    if code == 0:
        return WSCloseCode.OK
    if (
        WSCloseCode.OK <= code <= WSCloseCode.UNSUPPORTED_DATA
        or WSCloseCode.INVALID_TEXT <= code <= WSCloseCode.BAD_GATEWAY
        or code in _REGISTERED_OR_PRIVATE
    ):
        return code
    return WSCloseCode.PROTOCOL_ERROR
