"""A connection's first read, looked at before aiohttp sees it: the chat's own door.

Most connections to /chat are a client (re)joining: one request head, a WebSocket upgrade
with a bearer token, then frames for as long as the socket lives. aiohttp's way through
that (a request handler with its parser, three timers and a task waiting for requests; a
request object, a second task and the router; a response prepared through signals, then
the connection let go of) was a quarter of the server's Python time per reconnect in a
storm. So the first read of a new connection comes here. If it holds one whole request
head that is such an upgrade, aiohttp's own parser parses it, the token is checked, and the
socket opens at once (`ws.open_chat`). Anything else goes to aiohttp's `ParleyHandler` with
every byte read so far, as if it had been there from the connect, and aiohttp answers it
exactly as before: another path, a guest, a browser (its `Origin` is checked there), a head
split over reads, a body, an invalid handshake, a token that is not live, a store that is
down, a server shutting down, and a connection silent for `FIRST_READ_WAIT`. So every
refusal is aiohttp's own, byte for byte; the 101 here is the one aiohttp would make.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, cast

from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage

from parley.server.chat import ChatService
from parley.server.httpconn import MakeHandler
from parley.server.state import ACCOUNTS, CONFIG, NODE
from parley.server.upgraded import (
    HandshakeInvalid,
    UpgradedSocket,
    handshake_answer,
    switching_head,
)
from parley.server.ws import SUBPROTOCOL, open_chat

__all__ = ["FIRST_READ_WAIT", "FirstRead", "FrontDoor"]

log = logging.getLogger("parley.ws")

# A connection that has sent nothing this long after its connect goes to aiohttp, whose
# head timeout and per-address cap (both counted from the connect) then govern it.
FIRST_READ_WAIT: Final = 0.5
EARLY_LIMIT: Final = 2**16  # bytes read behind the head, before the 101, until reading pauses
MAX_HEAD: Final = 8190  # aiohttp's own limit on a request line and on a header field
_CHAT_HEAD: Final = b"GET /chat HTTP/1.1\r\n"
_END_OF_HEAD: Final = b"\r\n\r\n"
# aiohttp's answers to these differ: a body, an Origin to check, a 100 Continue or a 417.
_NOT_HERE: Final = ("Origin", "Content-Length", "Transfer-Encoding", "Expect")


class FrontDoor:
    """The protocol factory of a server's connections (`FirstRead`s), and what they share:
    the chat, the accounts, how to make an aiohttp handler, and the connections that have
    not spoken yet (one timer for all of them)."""

    __slots__ = ("_silent", "_timer", "_wait", "accounts", "loop", "make_handler", "node")

    def __init__(self, app: web.Application, make_handler: MakeHandler) -> None:
        self.node: ChatService = app[NODE]
        self.accounts = app[ACCOUNTS]
        self.make_handler = make_handler
        # A head timeout shorter than the wait is aiohttp's to apply, in time.
        timeout = app[CONFIG].header_timeout
        self._wait = min(FIRST_READ_WAIT, timeout) if timeout > 0 else FIRST_READ_WAIT
        self.loop = asyncio.get_running_loop()
        self._silent: dict[FirstRead, float] = {}  # in the order they connected
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self) -> FirstRead:
        return FirstRead(self)

    def connected(self, first: FirstRead, now: float) -> None:
        self._silent[first] = now
        if self._timer is None:
            self._timer = self.loop.call_at(now + self._wait, self._hand_over_silent)

    def spoke(self, first: FirstRead) -> None:
        self._silent.pop(first, None)

    def _hand_over_silent(self) -> None:
        """Every connection silent for the wait goes to aiohttp."""
        self._timer = None
        now = self.loop.time()
        silent = self._silent
        while silent:
            first, since = next(iter(silent.items()))
            if since + self._wait > now:
                self._timer = self.loop.call_at(since + self._wait, self._hand_over_silent)
                return
            del silent[first]
            first.to_aiohttp()


class FirstRead(asyncio.Protocol):
    """A new connection until its first read is judged: a chat socket opened here, or a
    connection handed to aiohttp."""

    __slots__ = ("_connected_at", "_door", "_head_end", "_lost", "_opening", "_read", "_transport")

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._connected_at = 0.0
        self._read = b""  # all that came so far, the head first
        self._head_end = 0
        self._opening: asyncio.Task[None] | None = None
        self._lost = False

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        # (TCP_NODELAY is set: the event loop sets it on every accepted connection)
        self._connected_at = now = self._door.loop.time()
        self._door.connected(self, now)

    def data_received(self, data: bytes) -> None:
        if self._opening is not None:  # frames sent behind the head, before the 101
            self._read += data
            if len(self._read) - self._head_end > EARLY_LIMIT and self._transport is not None:
                self._transport.pause_reading()
            return
        self._door.spoke(self)
        self._read = data
        self._judge(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        self._door.spoke(self)

    # --- the judgement ---------------------------------------------------------------

    def _judge(self, data: bytes) -> None:
        """Open a chat socket here, or give the connection to aiohttp."""
        end = data.find(_END_OF_HEAD, 0, MAX_HEAD) if data.startswith(_CHAT_HEAD) else -1
        message = _chat_upgrade(data[: end + 4], self._door.loop) if end > 0 else None
        token = _bearer(message) if message is not None else None
        if message is None or token is None or self._door.node.draining:
            self.to_aiohttp()
            return
        try:
            accept, protocol = handshake_answer(message.headers, (SUBPROTOCOL,))
        except HandshakeInvalid:
            self.to_aiohttp()
            return
        self._head_end = end + 4
        self._opening = self._door.loop.create_task(self._open(token, accept, protocol))

    async def _open(self, token: str, accept: str, protocol: str | None) -> None:
        """Check the token, then open the chat socket; aiohttp answers what fails."""
        door = self._door
        try:
            who = await door.accounts.authenticate(token)
        except Exception:  # a store that is down, say: aiohttp asks again, and answers
            self.to_aiohttp()
            return
        if who is None or door.node.draining:
            # aiohttp answers; a token found not live is not looked up again
            self.to_aiohttp(refused_token=token if who is None else None)
            return
        if self._lost:
            return
        transport = self._transport
        assert transport is not None
        try:
            head = switching_head(accept, protocol)
            await open_chat(door.node, transport, who, protocol, head, self._hand_over)
        except Exception:  # as aiohttp logs a request handler's error, and ends it
            log.exception("error opening a chat socket")
            if transport.get_protocol() is self:
                transport.abort()

    def _hand_over(self, sock: UpgradedSocket) -> bytes | None:
        """After the 101: the connection is `sock`'s; returned, what came behind the head
        (None: the connection is gone)."""
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            return None
        transport.set_protocol(sock)
        early, self._read = self._read[self._head_end :], b""
        if not transport.is_reading():
            transport.resume_reading()
        return early

    def to_aiohttp(self, refused_token: str | None = None) -> None:
        """aiohttp takes the connection, with all that was read, as if from the connect
        (and knowing `refused_token` is not live)."""
        transport = self._transport
        if self._lost or transport is None:
            return
        handler = self._door.make_handler(self._connected_at)
        handler.refused_token = refused_token
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if not transport.is_reading():
            transport.resume_reading()
        data, self._read = self._read, b""
        if data:
            handler.data_received(data)


def _chat_upgrade(head: bytes, loop: asyncio.AbstractEventLoop) -> RawRequestMessage | None:
    """`head` parsed by aiohttp's parser, if it is one GET /chat upgrade without a body, an
    `Origin` or a query (None: aiohttp is to answer it)."""
    # (the loop: a head with a body has the parser make a stream for it, which is dropped)
    parser = HttpRequestParser(None, loop, 2**16, max_line_size=MAX_HEAD, max_field_size=MAX_HEAD)
    try:
        messages, _upgraded, tail = parser.feed_data(head)
    except HttpProcessingError:
        return None
    if len(messages) != 1 or tail:
        return None
    message = messages[0][0]
    if (
        message.method != "GET"
        or message.path != "/chat"
        or message.version != HttpVersion11
        or any(name in message.headers for name in _NOT_HERE)
    ):
        return None
    return message


def _bearer(message: RawRequestMessage) -> str | None:
    """The request's bearer token; None if it has none (aiohttp tells it what it lacks)."""
    scheme, _, value = message.headers.get("Authorization", "").partition(" ")
    token = value.strip()
    return token if scheme.lower() == "bearer" and token else None
