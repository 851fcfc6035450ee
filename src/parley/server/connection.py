"""One client socket as the chat sees it: who it is, what it joined, and its outbox.

Frames sent to a socket during one loop iteration are coalesced into a single
transport write: under load a socket gets one syscall per iteration, not one per
message. One callback per iteration flushes every socket that has output, so a
broadcast to N sockets costs N list appends plus one scheduled call. A client
that stops reading and lets more than `MAX_BUFFERED` bytes pile up is closed
(1008): one slow reader must not hold the server's memory hostage.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterable
from enum import Enum
from typing import Final

from aiohttp import WSCloseCode, web

from parley.core import guest_key
from parley.server.frames import close_frame, text_frame

__all__ = ["BUSY", "DRAIN_STALL", "Connection", "Flusher", "Mode"]

MAX_BUFFERED: Final = 8 * 1024 * 1024
DRAIN_STALL: Final = 30.0  # seconds a replay waits for a reader that takes nothing
BUSY: Final = math.inf  # `heard_at` while the socket's last frame is still being handled
_ids = itertools.count(1)


class Flusher:
    """Writes out, once per loop iteration, every socket that queued frames in it."""

    __slots__ = ("_dirty", "_loop", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[Connection] = []
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def mark(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def broadcast(self, conns: Iterable[Connection], frame: bytes) -> None:
        """`conn.send_frame(frame)` for each of `conns`, unrolled: this loop body runs once
        per delivery, the hottest code of a fan-out."""
        dirty = self._dirty
        for conn in conns:
            if conn.closing:
                continue
            out = conn._out
            out.append(frame)
            if len(out) == 1:
                dirty.append(conn)
        if dirty and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class Mode(Enum):
    JSON = "parley.v1"
    PLAIN = "plain"


class Connection:
    __slots__ = (
        "_flusher",
        "_keys",
        "_loop",
        "_out",
        "_refs",
        "closing",
        "guest",
        "heard_at",
        "id",
        "inflight",
        "limit_key",
        "mode",
        "pinged_at",
        "rooms",
        "slot_freed",
        "token_hash",
        "transport",
        "username",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        username: str,
        mode: Mode,
        token_hash: str | None,
        flusher: Flusher,
        address: str = "",
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.transport = transport
        self.username = username
        self.mode = mode
        self.token_hash = token_hash
        self.guest = token_hash is None
        # Whose allowances (core/limits.py) this socket spends: a guest's name is new on
        # every socket, so guests count per client address, every guest socket from it alike.
        self.limit_key = guest_key(address) if self.guest else username
        self.rooms: set[str] = set()  # joined, by key
        # The rooms this socket was found to be allowed to use: the client's reference ->
        # the room's key, and back where they differ (core/roomnames.py). Created on first
        # use, since every field of an idle socket is paid for thousands of times.
        self._keys: dict[str, str] | None = None
        self._refs: dict[str, str] | None = None
        self.inflight = 0  # sends not yet committed
        self.slot_freed: asyncio.Future[None] | None = None  # set while waiting for one
        self.closing = False
        self._out: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._flusher = flusher
        self.heard_at = self._loop.time()  # the client's last frame
        self.pinged_at: float | None = None  # our last keepalive ping

    def __hash__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.username} {self.mode.value}>"

    def heard(self) -> None:
        """The client's frame was handled: it is alive, and no longer busy."""
        self.heard_at = self._loop.time()

    def key_of(self, ref: str) -> str | None:
        """The key of the room the client calls `ref`, if found allowed before (access is
        never taken away); None when the store must be asked."""
        return None if self._keys is None else self._keys.get(ref)

    def ref_of(self, key: str) -> str:
        """What the client calls the room keyed `key` (most often: the key itself)."""
        return key if self._refs is None else self._refs.get(key, key)

    def allow(self, ref: str, key: str) -> None:
        """The client may use the room it calls `ref`, which is keyed `key`."""
        if self._keys is None:
            self._keys = {}
        self._keys[ref] = key
        if ref != key:
            if self._refs is None:
                self._refs = {}
            self._refs[key] = ref

    def send(self, payload: bytes) -> None:
        """Queue one JSON (or plain text) payload as a text frame."""
        self.send_frame(text_frame(payload))

    def send_frame(self, frame: bytes) -> None:
        """Queue an already built frame; written at the end of this loop iteration."""
        if self.closing:
            return
        self._out.append(frame)
        if len(self._out) == 1:
            self._flusher.mark(self)

    def flush(self) -> None:
        if not self._out:
            return
        out, self._out = self._out, []
        if self.closing:
            return
        if self.transport.is_closing():
            return
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            self._loop.create_task(self.close(WSCloseCode.POLICY_VIOLATION, "too slow"))

    async def drain(self, high_water: int = 1024 * 1024) -> None:
        """Wait until the socket has taken most of what we wrote (replays of long history).

        A reader that takes nothing for DRAIN_STALL seconds is dropped: while this waits,
        the keepalive sees the socket as busy, not silent.
        """
        self.flush()
        stalled_since = self._loop.time()
        low = self.transport.get_write_buffer_size()
        while not self.closing and low > high_water:
            if self.transport.is_closing():
                return
            await asyncio.sleep(0.005)
            size = self.transport.get_write_buffer_size()
            now = self._loop.time()
            if size < low:
                low, stalled_since = size, now
            elif now - stalled_since > DRAIN_STALL:
                self.drop()
                return

    def shut_down(self, code: int, reason: str) -> bool:
        """Server shutdown: send what is queued and a close frame, then half-close (FIN).

        The client may still be sending; closing the socket outright with its data unread
        would make the kernel answer with a reset, and the client could lose our close frame.
        So we only stop writing, and the reader loop goes on until the client's close frame.
        Returns False where a half-close is impossible (TLS): use `close` then.
        """
        if self.closing or not self.transport.can_write_eof():
            return False
        self.flush()
        self.closing = True
        self.transport.write(close_frame(code, reason))
        self.transport.write_eof()
        return True

    def drop(self) -> None:
        """A peer that stopped answering: no close handshake, just let the socket go."""
        self.closing = True
        self.transport.abort()

    async def close(self, code: int, reason: str = "", *, drain: bool = True) -> None:
        """Send what is queued, then the close frame. `drain=False` answers a client's own
        close: it need not wait for a peer that may already be gone."""
        if self.closing:
            return
        self.flush()
        self.closing = True
        await self.ws.close(code=code, message=reason.encode(), drain=drain)
