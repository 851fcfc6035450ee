"""The reconnect storm's client: a bare asyncio protocol, so that a reconnect costs the
generator little more than the kernel's part of it.

The general client (client.py, picows) spends most of a reconnect in Python around the
connection: URL and proxy handling, a listener and a transport object, the handshake's
random key and its check, a coroutine, a future and a timeout per step of the join. A storm
client instead keeps the handshake's bytes, built once per token, writes them as the TCP
connection is made, and runs the rest as a state machine in `data_received`: the 101 (its
status and `Sec-WebSocket-Accept` checked), `hello`, the `join` it answers with, `joined`,
then the frames. Server frames are parsed in place; a `message` frame's seq is read from its
bytes (`stats.message_seq`), only control frames are decoded as JSON. Every seq received is
recorded, so loss and doubles are counted exactly as before (`stats.check_sequence`).

The handshake key is random per process, not per connection (RFC 6455 asks a browser for a
fresh one each time; the server cannot tell, and checks only its form).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import msgspec

from parley_bench.client import ROOM, ConnectResult, Target, masked_text_frame
from parley_bench.stats import message_seq, parse_marker

__all__ = ["StormClient", "StormGroup", "connect_group"]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OK_STATUS: Final = b"HTTP/1.1 101 "
_END_OF_HEAD: Final = b"\r\n\r\n"
_json_decode = msgspec.json.decode
_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets

# the client's states, in order
_CONNECTING: Final = 0
_UPGRADING: Final = 1  # request written, waiting for the 101
_HELLO: Final = 2  # parley.v1: waiting for hello
_JOINING: Final = 3  # parley.v1: join sent, waiting for joined
_LIVE: Final = 4
_CLOSED: Final = 5


class StormGroup:
    """What the clients of one process share: the target, the prebuilt handshakes (one per
    token), the expected accept value, and the counters the driver reads."""

    def __init__(self, target: Target, local_addr: str) -> None:
        url = urllib.parse.urlsplit(target.url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.address = (self.host, self.port)
        self.local_addr = (local_addr, 0)
        self.parley = target.parley
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        head = (
            f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        )
        if target.parley:
            head += "Sec-WebSocket-Protocol: parley.v1\r\n"
        self.requests = [
            f"{head}Authorization: Bearer {token}\r\n\r\n".encode() for token in target.tokens
        ] or [f"{head}\r\n".encode()]
        self.errors: dict[str, int] = {}  # server errors after joining
        self.frames = 0  # text frames received, for waiting until the server is quiet

    def error(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1


class StormClient(asyncio.Protocol):
    """One connection of the storm, reused for every reconnect. Attributes are public: the
    workload reads them (`seqs`, `last_seq`, `resume_target`, `resumed_ns`, `connected`)."""

    def __init__(self, group: StormGroup, index: int) -> None:
        self.group = group
        self.request = group.requests[index % len(group.requests)]
        self.transport: asyncio.Transport | None = None
        self.state = _CLOSED
        self.buffer = b""
        self.since: int | None = None  # the next join's since (parley.v1)
        self.ready: asyncio.Future[None] | None = None  # done once joined (or upgraded)
        self.seqs: list[int] = []
        self.last_seq = -1  # highest seq seen (Parley) / sender seq (plain text)
        self.resume_target = -1  # joined.last_seq of the last join
        self.first_target = -1  # joined.last_seq of the first join (the storm's start)
        self.resumed_ns = 0

    @property
    def connected(self) -> bool:
        return _UPGRADING < self.state < _CLOSED

    # --- connecting -----------------------------------------------------------------

    async def connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect, upgrade and (parley.v1) join; returns once joined, raises on failure."""
        group = self.group
        self.state = _CONNECTING
        self.buffer = b""
        self.ready = ready = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            # The port is picked at connect, for this destination: a bind to (addr, 0)
            # would pick one among all the address's ports, past every TIME_WAIT left on
            # it by earlier runs (a search that grows with them, and can fail).
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind(group.local_addr)
            await loop.sock_connect(sock, group.address)
        except BaseException:
            sock.close()
            raise
        await loop.create_connection(self._self, sock=sock)
        await ready

    def _self(self) -> StormClient:
        return self

    def abort(self) -> None:
        """Drop the connection with a TCP reset (no FIN, and no TIME_WAIT left behind)."""
        transport = self.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            transport.abort()

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.state = _UPGRADING
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        state, self.state = self.state, _CLOSED
        if state < _LIVE:
            self._fail(ConnectionError("disconnected"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        pos = 0
        if self.state == _UPGRADING:
            pos = self._upgraded(buffer)
            if pos <= 0:
                return
        self.buffer = buffer[self._frames(buffer, pos) :]

    # --- the handshake's answer and the frames ----------------------------------------

    def _upgraded(self, buffer: bytes) -> int:
        """Where the frames start after a valid 101; 0 while incomplete, -1 when refused."""
        end = buffer.find(_END_OF_HEAD)
        if end < 0:
            self.buffer = buffer
            return 0
        head = buffer[:end]
        if not head.startswith(_OK_STATUS) or self.group.accept not in head:
            self._fail(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
            return -1
        if self.group.parley:
            self.state = _HELLO
        else:
            self.state = _LIVE
            self._done()
        return end + len(_END_OF_HEAD)

    def _frames(self, buffer: bytes, pos: int) -> int:
        """Handle every whole frame from `pos` on; returns where the first partial one starts."""
        size = len(buffer)
        while pos + 2 <= size:
            length = buffer[pos + 1] & 0x7F
            start = pos + 2
            if length >= 126:
                width = 2 if length == 126 else 8
                if start + width > size:
                    break
                length = int.from_bytes(buffer[start : start + width], "big")
                start += width
            end = start + length
            if end > size:
                break
            opcode = buffer[pos] & 0x8F  # FIN and the opcode
            pos = end
            if opcode == 0x81:
                self._text(buffer, start, end)
            elif opcode == 0x89:  # ping
                self._write(0x8A, buffer[start:end])
            elif opcode == 0x88:  # close: answer it, the server ends the connection
                self._write(0x88, buffer[start : start + 2])
            elif opcode != 0x8A:  # a fragment: the server never sends one
                self._fail(ValueError(f"unexpected frame {opcode:#x}"))
                return size
            if self.state == _CLOSED:
                return size
        return pos

    def _text(self, buffer: bytes, start: int, end: int) -> None:
        self.group.frames += 1
        if not self.group.parley:
            marker = parse_marker(buffer, start, end)
            if marker is not None:
                self.seqs.append(marker[1])
                self.last_seq = marker[1]
            return
        seq = message_seq(buffer, start, end)
        if seq is None:
            self._control(_json_decode(buffer[start:end]))
            return
        self.seqs.append(seq)
        if seq > self.last_seq:
            self.last_seq = seq
        if self.state == _LIVE and not self.resumed_ns and seq >= self.resume_target:
            self.resumed_ns = time.monotonic_ns()

    def _control(self, obj: Any) -> None:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "hello" and self.state == _HELLO:
            self.state = _JOINING
            since = "" if self.since is None else f',"since":{self.since}'
            join = f'{{"type":"join","room":"{ROOM}"{since}}}'
            self._send(masked_text_frame(join.encode()))
        elif kind == "joined" and self.state == _JOINING:
            last = obj.get("last_seq")
            self.resume_target = last if isinstance(last, int) else -1
            self.state = _LIVE
            if self.last_seq >= self.resume_target and not self.resumed_ns:
                self.resumed_ns = time.monotonic_ns()
            self._done()
        elif kind == "error":
            self.group.error(f"server error: {obj.get('code')}")
            if self.state < _LIVE:
                self._fail(RuntimeError(f"server error: {obj.get('code')}"))

    # --- helpers ------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self.transport is not None:
            self.transport.write(frame)

    def _write(self, opcode: int, payload: bytes) -> None:
        self._send(bytes((opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload)

    def _done(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(exc)
        self.abort()


async def connect_group(
    clients: Sequence[StormClient],
    *,
    concurrency: int,
    deadline_s: float,
    since: Callable[[StormClient], int | None] | None = None,
) -> ConnectResult:
    """Connect (and join) every client, `concurrency` of them in flight: each of that many
    tasks connects one client after another. At the deadline the rest are given up."""
    loop = asyncio.get_running_loop()
    group_errors: dict[str, int] = {}
    pending = iter(clients)
    connected = 0
    t0 = time.monotonic()

    async def lane() -> None:
        nonlocal connected
        for client in pending:
            client.since = since(client) if since is not None else None
            try:
                await client.connect(loop)
            except Exception as exc:
                key = type(exc).__name__ + ": " + str(exc)[:80]
                group_errors[key] = group_errors.get(key, 0) + 1
                client.abort()
            else:
                connected += 1

    lanes = [loop.create_task(lane()) for _ in range(min(concurrency, len(clients)))]
    _, late = await asyncio.wait(lanes, timeout=deadline_s) if lanes else (set(), set())
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
        for client in clients:
            if client.state < _LIVE:
                client.abort()
        group_errors["deadline"] = len(clients) - connected - sum(group_errors.values())
    return ConnectResult(connected, len(clients) - connected, time.monotonic() - t0, group_errors)
