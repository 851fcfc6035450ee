"""The trivial sink: the cheapest broadcast server we can write, to find the generator's ceiling.

`/`     : every text frame is broadcast to every connection (like the peers), but the
          frames received in one loop tick are encoded once and written to each socket
          in one write, so the sink spends far less per delivery than the generator.
`/frames`: broadcast like `/`, but each frame is written to each socket at once, one write
          per frame per client, as Node's ws and the Python tutorial do: the generator then
          pays one read per frame, its most expensive case.
`/echo` : every text frame goes back to its sender only (the ingest workload's "ack").
"""

from __future__ import annotations

import asyncio
import signal
import struct

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

__all__ = ["frame_header", "serve_sink"]


def frame_header(length: int) -> bytes:
    """Header of an unmasked, final text frame carrying `length` payload bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", length)
    return bytes((0x81, 127)) + struct.pack("!Q", length)


class _Room:
    def __init__(self) -> None:
        self.members: set[asyncio.Transport] = set()
        self.pending: list[bytes] = []
        self.scheduled = False

    def publish(self, payload: bytes) -> None:
        self.pending.append(frame_header(len(payload)) + payload)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def publish_now(self, payload: bytes) -> None:
        data = frame_header(len(payload)) + payload
        for raw in self.members:
            if not raw.is_closing():
                raw.write(data)

    def flush(self) -> None:
        self.scheduled = False
        data = b"".join(self.pending)
        self.pending.clear()
        for raw in self.members:
            if not raw.is_closing():
                raw.write(data)


class _Broadcast(WSListener):
    def __init__(self, room: _Room, coalesce: bool) -> None:
        super().__init__()
        self.room = room
        self.raw: asyncio.Transport | None = None
        self.publish = room.publish if coalesce else room.publish_now

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.raw = transport.underlying_transport
        self.room.members.add(self.raw)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.raw is not None:
            self.room.members.discard(self.raw)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.publish(frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()


class _Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            transport.send(WSMsgType.TEXT, frame.get_payload_as_bytes())
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()


async def serve_sink(host: str, port: int) -> None:
    rooms = {True: _Room(), False: _Room()}

    def factory(request: WSUpgradeRequest) -> WSListener:
        if request.path.startswith(b"/echo"):
            return _Echo()
        coalesce = not request.path.startswith(b"/frames")
        return _Broadcast(rooms[coalesce], coalesce)

    server = await ws_create_server(factory, host, port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
