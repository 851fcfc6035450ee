"""One client socket as the chat sees it: who it is, what it joined, and its outbox.

Frames sent to a socket during one loop iteration are coalesced into a single
transport write: under load a socket gets one syscall per iteration, not one per
message. One callback per iteration flushes every socket that has output, so a
broadcast to N sockets costs N list appends plus one scheduled call. A client
that stops reading and lets more than `MAX_BUFFERED` bytes pile up is closed
(1008): one slow reader must not hold the server's memory hostage.

Its state (open, closing, closed) is the sans-I/O `core.SocketLifecycle`; every reason to
close goes through `Connection.close`, which does that transition, then the I/O.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from enum import Enum
from typing import Final, Protocol

from aiohttp import WSCloseCode

from parley.core import Close, Ending, SocketLifecycle, SocketState, guest_key
from parley.server.frames import close_frame, text_frame
from parley.store import RoomRecord

__all__ = ["DRAIN_STALL", "Connection", "Flusher", "Mode", "SocketEnd"]

MAX_BUFFERED: Final = 8 * 1024 * 1024
DRAIN_STALL: Final = 30.0  # seconds a replay waits for a reader that takes nothing
_OPEN: Final = SocketState.OPEN
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
        dirty, open_ = self._dirty, _OPEN
        for conn in conns:
            if conn.state is not open_:
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


class SocketEnd(Protocol):
    """What does a socket's close handshake: ours (`upgraded.UpgradedSocket`) or, on
    aiohttp's stock path, its `WebSocketResponse` (`ws.StockEnd`)."""

    def close_handshake(self, code: int, reason: str, ending: Ending) -> asyncio.Task[bool] | None:
        """Write the close frame (HANDSHAKE or ANSWER), then end the connection; a task
        if that is left to one (`Connection.finish_close` awaits it)."""


class Mode(Enum):
    JSON = "parley.v1"
    PLAIN = "plain"


class Connection(SocketLifecycle):
    """A socket and its sans-I/O lifecycle in one object (not one holding the other): the
    fan-out reads `state` once per delivery, and each socket's fields are paid for
    thousands of times. Close it with `close`, not `begin_close` (the transition alone)."""

    __slots__ = (
        "_closer",
        "_flusher",
        "_keys",
        "_out",
        "_refs",
        "admin_before_hello",
        "guest",
        "hello_rooms",
        "id",
        "inflight",
        "limit_key",
        "loop",
        "mode",
        "reads_before_hello",
        "rooms",
        "slot_freed",
        "token_hash",
        "transport",
        "username",
        "ws",
    )

    def __init__(
        self,
        ws: SocketEnd,
        transport: asyncio.Transport,
        username: str,
        mode: Mode,
        token_hash: str | None,
        flusher: Flusher,
        address: str = "",
    ) -> None:
        self.loop = asyncio.get_running_loop()  # also the clock its lifecycle is told
        super().__init__(self.loop.time())
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
        # While `hello` is being built: the read markers heard meanwhile (room key -> seq),
        # for `hello` to carry, since nothing may reach the client before it.
        self.reads_before_hello: dict[str, int] | None = None
        self.admin_before_hello: bool | None = None  # the last role change heard meanwhile
        # What `hello` read, kept for the socket's first join: the cut mark taken before
        # the read, and each room by what the client calls it (ChatService.hello_rooms).
        self.hello_rooms: tuple[int, dict[str, RoomRecord]] | None = None
        self._out: list[bytes] = []
        self._flusher = flusher
        self._closer: asyncio.Task[bool] | None = None  # a close handshake's task, if any

    def __hash__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.username} {self.mode.value} {self.state.value}>"

    def key_of(self, ref: str) -> str | None:
        """The key of the room the client calls `ref`, if joined or found allowed before
        (until `forget`); None when the store must be asked."""
        if self._keys is not None and (key := self._keys.get(ref)) is not None:
            return key
        # Joined under its own name: most rooms, and no mapping paid for. Unless the client
        # calls the room keyed `ref` something else (`ref` then means another room to it).
        if ref in self.rooms and (self._refs is None or ref not in self._refs):
            return ref
        return None

    def ref_of(self, key: str) -> str:
        """What the client calls the room keyed `key` (most often: the key itself)."""
        return key if self._refs is None else self._refs.get(key, key)

    def allow(self, ref: str, key: str, *, joining: bool = False) -> None:
        """The client may use the room it calls `ref`, which is keyed `key`; from now on
        frames call that room `ref`. A room joined under its key needs no entry: `rooms`
        knows it (most rooms, and no mapping paid for)."""
        if ref == key:
            if self._refs is not None:
                self._refs.pop(key, None)
            if joining:
                return
        elif self._refs is None:
            self._refs = {key: ref}
        else:
            self._refs[key] = ref
        if self._keys is None:
            self._keys = {}
        self._keys[ref] = key

    def forget(self, key: str) -> None:
        """The user lost the room keyed `key` (removed, or left): the store must be asked
        again before this socket uses it. The caller unsubscribes it first."""
        if self._refs is not None:
            self._refs.pop(key, None)
        if self._keys is not None:
            for ref in [ref for ref, known in self._keys.items() if known == key]:
                del self._keys[ref]

    def send(self, payload: bytes) -> None:
        """Queue one JSON (or plain text) payload as a text frame."""
        self.send_frame(text_frame(payload))

    def send_frame(self, frame: bytes) -> None:
        """Queue an already built frame; written at the end of this loop iteration. Once
        the socket is closing, nothing more goes out."""
        if self.state is not _OPEN:
            return
        self._out.append(frame)
        if len(self._out) == 1:
            self._flusher.mark(self)

    def flush(self) -> None:
        if not self._out:
            return
        if self.state is not _OPEN:  # an abort, or aiohttp's own close: nothing goes out
            self._out = []
            return
        self._write_queued()
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.close(WSCloseCode.POLICY_VIOLATION, "too slow")

    def _write_queued(self) -> None:
        out, self._out = self._out, []
        if out and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def drain(self, high_water: int = 1024 * 1024) -> None:
        """Wait until the socket has taken most of what we wrote (replays of long history).

        A reader that takes nothing for DRAIN_STALL seconds is dropped: while this waits,
        the keepalive sees the socket as busy, not silent.
        """
        self.flush()
        loop = self.loop
        stalled_since = loop.time()
        low = self.transport.get_write_buffer_size()
        while self.state is _OPEN and low > high_water:
            if self.transport.is_closing():
                return
            await asyncio.sleep(0.005)
            size = self.transport.get_write_buffer_size()
            now = loop.time()
            if size < low:
                low, stalled_since = size, now
            elif now - stalled_since > DRAIN_STALL:
                self.close(WSCloseCode.ABNORMAL_CLOSURE, "stalled reader", Ending.ABORT)
                return

    def close(self, code: int, reason: str = "", ending: Ending = Ending.HANDSHAKE) -> bool:
        """The one way a socket closes, for every reason: OPEN -> CLOSING now, then the
        I/O `ending` calls for. False if a close was already under way (that one stands).

        HANDSHAKE and ANSWER go through the socket's own close handshake (`SocketEnd`;
        on aiohttp's stock path, aiohttp must know, or it answers the client's close frame
        again with 1000): `finish_close` awaits it if it runs in a task.
        HALF_CLOSE (shutdown) only stops writing: closing the socket outright with the
        client's data unread would make the kernel answer with a reset, and the client
        could lose our close frame; the reader loop goes on until the client's close
        frame. Where a half-close is impossible (TLS), it is a HANDSHAKE.
        """
        if ending is Ending.HALF_CLOSE and not self.transport.can_write_eof():
            ending = Ending.HANDSHAKE
        if not self.begin_close(Close(code, reason, ending)):
            return False
        if ending is Ending.ABORT or ending is Ending.BY_LIBRARY:
            self._out = []
            if ending is Ending.ABORT:
                self.transport.abort()
            return True
        self._write_queued()  # what was said before the close goes out before it
        if ending is Ending.HALF_CLOSE:
            self.transport.write(close_frame(code, reason))
            self.transport.write_eof()
        else:
            self._closer = self.ws.close_handshake(code, reason, ending)
        return True

    async def finish_close(self) -> None:
        """Wait until the close handshake begun by `close` is done, if a task does it."""
        if self._closer is not None:
            await self._closer
