"""A WebSocket after its upgrade: the transport taken from aiohttp, run by a protocol of ours.

aiohttp does the handshake and the sign-in, an HTTP request like any other; once the 101
is out (and the client greeted), `httpconn.hand_over` gives the transport to an
`UpgradedSocket`. From then on an idle socket holds no task, no coroutine frame and no
request: only this object, aiohttp's frame parser, its `Connection` and the registry's
entries. Frames are dispatched to the `Session` by callbacks, right where they are parsed:
at once when that needs no waiting (`on_text_now`, pings, pongs), and otherwise by a task
that lives only while such a frame is handled (`on_text`), with the frames behind it
queued in turn. Too many queued stops reading the socket: the kernel's buffers slow the
client down.

The parser is aiohttp's `WebSocketReader` (compiled; it checks fragmentation, control
frames, close codes, UTF-8 and the size limit); this object is the queue it feeds, a
subclass of aiohttp's `WebSocketDataQueue` whose queue is never built: every frame is
taken by `feed_data`. That class's own state (a deque and its bound methods, 0.8 KiB)
stays unallocated, and its size stays 0, so the parser never stalls on it.

The close handshake is ours too: `close_handshake` writes the close frame, then either
closes the transport (an answer to the client's close) or waits `CLOSE_TIMEOUT` for the
client's answer, as aiohttp's `WebSocketResponse.close` did.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSCloseCode, WSMessage, WSMsgType, hdrs, web
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http_websocket import WebSocketError, WSMessageTextBytes
from aiohttp.http_writer import StreamWriter

from parley.core import Ending, SocketState
from parley.server.frames import close_frame, close_reply, pong_frame
from parley.server.headers import SERVER

if TYPE_CHECKING:
    from parley.server.ws import Session

__all__ = [
    "CLOSE_TIMEOUT",
    "HandshakeInvalid",
    "UpgradedSocket",
    "handshake_answer",
    "switching_head",
    "take_head",
    "upgrade_response",
]

log = logging.getLogger("parley.ws")

CLOSE_TIMEOUT: Final = 2.0  # seconds the client has to answer our close frame
# What may wait behind a frame being handled before reading stops (as aiohttp's queue:
# the payloads plus 128 bytes per frame, up to twice its 64 KiB chunk).
QUEUE_HIGH: Final = 128 * 1024
QUEUE_LOW: Final = QUEUE_HIGH // 2
_FRAME_OVERHEAD: Final = 128
_LOST: Final = WSMessage(WSMsgType.CLOSED, None, None)  # the transport is gone, in turn
_TEXT: Final = WSMsgType.TEXT  # (a global: an enum's member is slow to look up)
_OPEN: Final = SocketState.OPEN

_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
_VERSIONS: Final = frozenset(("13", "8", "7"))  # as aiohttp takes them

Frame = WSMessage | WSMessageTextBytes


class _HeldResponse(web.StreamResponse):
    """A response whose head aiohttp serializes but does not write (as it does for its own
    `WebSocketResponse`): `take_head` takes it, to go out with what follows in one write."""

    _send_headers_immediately = False


def take_head(writer: AbstractStreamWriter | None) -> bytes | None:
    """The serialized head of a `_HeldResponse` that `writer` prepared, taken from it:
    aiohttp then writes nothing of it (its `write_eof` only marks the response done). None
    if there is no such head (already written, or another writer)."""
    if not isinstance(writer, StreamWriter) or writer._headers_written:
        return None
    head, writer._headers_buf = writer._headers_buf, None
    writer._headers_written = True
    return head


class HandshakeInvalid(Exception):
    """The request is no valid WebSocket handshake (the message is aiohttp's own)."""


def handshake_answer(
    headers: Mapping[str, str], protocols: Sequence[str]
) -> tuple[str, str | None]:
    """The `Sec-WebSocket-Accept` for a WebSocket handshake with `headers` (RFC 6455 4.2),
    and the subprotocol it picked (the client's first one that is in `protocols`).
    aiohttp's `WebSocketResponse` checks the same, and says the same when refusing."""
    if headers.get(hdrs.UPGRADE, "").lower().strip() != "websocket":
        raise HandshakeInvalid('Can "Upgrade" only to "WebSocket".')
    if "upgrade" not in _tokens(headers.get(hdrs.CONNECTION, "")):
        raise HandshakeInvalid("No CONNECTION upgrade hdr")
    version = headers.get(hdrs.SEC_WEBSOCKET_VERSION, "")
    if version not in _VERSIONS:
        raise HandshakeInvalid(f"Unsupported version: {version}")
    key = headers.get(hdrs.SEC_WEBSOCKET_KEY, "")
    try:
        valid_key = len(base64.b64decode(key)) == 16
    except binascii.Error:
        valid_key = False
    if not valid_key:
        raise HandshakeInvalid(f"Handshake error: {key!r}")
    offered = (p.strip() for p in headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(","))
    protocol = next((p for p in offered if p in protocols), None)
    accept = base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()
    return accept, protocol


def upgrade_response(
    request: web.BaseRequest, protocols: Sequence[str]
) -> tuple[web.StreamResponse, str | None]:
    """The 101 that accepts the WebSocket handshake of `request` (`handshake_answer`), and
    the subprotocol it picked; 400 if the request is no valid handshake. Once prepared,
    its head waits for `take_head`."""
    try:
        accept, protocol = handshake_answer(request.headers, protocols)
    except HandshakeInvalid as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    response = _HeldResponse(status=101)
    response.headers[hdrs.UPGRADE] = "websocket"
    response.headers[hdrs.CONNECTION] = "upgrade"
    response.headers[hdrs.SEC_WEBSOCKET_ACCEPT] = accept
    if protocol is not None:
        response.headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = protocol
    response.force_close()  # no HTTP request follows on this connection
    return response, protocol


def switching_head(accept: str, protocol: str | None) -> bytes:
    """The 101 `upgrade_response` makes, as aiohttp serializes it (with the `Server` our
    `on_response_prepare` hook adds), for a handshake that aiohttp never saw."""
    chosen = "" if protocol is None else f"Sec-WebSocket-Protocol: {protocol}\r\n"
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{chosen}"
        f"Date: {rfc822_formatted_time()}\r\nServer: {SERVER}\r\n\r\n"
    ).encode("latin-1")


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


class UpgradedSocket(WebSocketDataQueue, asyncio.Protocol):
    """One WebSocket's transport protocol, frame sink and close handshake."""

    __slots__ = (
        "_chunk",
        "_closing_timer",
        "_end_after_handler",
        "_handler",
        "_queued",
        "_queued_size",
        "_reading_stopped",
        "_transport",
        "parser",
        "session",
    )

    def __init__(self, transport: asyncio.Transport, max_msg_size: int) -> None:
        # WebSocketDataQueue.__init__ is not called on purpose: its queue is never used.
        self._transport = transport
        self.session: Session | None = None  # None once the chat let go of the socket
        self.parser: WebSocketReader | None = WebSocketReader(
            self, max_msg_size, compress=False, decode_text=True
        )
        self._handler: asyncio.Task[None] | None = None  # while a frame is being handled
        self._end_after_handler = False  # closed meanwhile: let go once its frame is done
        self._queued: deque[Frame] | None = None  # frames behind it, in turn
        self._queued_size = 0
        self._reading_stopped = False
        self._closing_timer: asyncio.TimerHandle | None = None
        # While a read is parsed: its text frames that nothing is ahead of, handled together
        # once the parser is done with the read (`_texts_now`), or before any other frame.
        self._chunk: list[Frame] | None = None

    def greeted(self, session: Session, leftover: bytes | None) -> None:
        """From now on `session` hears this socket's frames (its greeting is done, or
        failed), first those in `leftover` (what came before the hand-over; None: the
        transport was lost meanwhile). If the chat closed the socket while greeting it, the
        chat lets go of it now: not before, while the greeting ran."""
        self.session = session
        if leftover is None:
            self.connection_lost(None)
            return
        cause = session.conn.close_cause
        if cause is not None and cause.ending is Ending.HANDSHAKE:
            self._end()
        if leftover:
            self.data_received(leftover)

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Not called: `hand_over` gives an open transport (this one) to the socket."""

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        self._chunk = []
        try:
            parser.feed_data(data)
        finally:
            chunk, self._chunk = self._chunk, None
            if chunk:
                self._take_texts(chunk)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; `connection_lost` follows

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
        self.parser = None  # it refers back to this socket: no cycle left behind
        self._take_in_turn(_LOST)

    # --- the parser's queue ----------------------------------------------------------

    def feed_data(self, data: Frame, size: int) -> None:
        """The parser's next frame: handled now if nothing is ahead of it, else queued. A
        text frame with nothing ahead of it waits for the end of the read, with the others
        of the read (`_take_chunk`): the session takes them in one call."""
        # The hot path first (a send with nothing ahead of it): into the read's chunk.
        if self._handler is None and data.type is _TEXT and self.session is not None:
            chunk = self._chunk
            if chunk is not None:
                chunk.append(data)
                return
            self._take_texts([data])  # (only a parser fed from outside `data_received`)
            return
        self._take_chunk()  # the text frames before this one go first
        self._take_in_turn(data)

    def _take_chunk(self) -> None:
        """Handle the text frames the read gathered so far (`feed_data`)."""
        chunk = self._chunk
        if chunk:
            self._chunk = []
            self._take_texts(chunk)

    def _take_texts(self, frames: list[Frame]) -> None:
        """Text frames that nothing is ahead of, in turn: those the session's shortcut
        takes at once, the first it does not take in a task, and the rest queued behind it."""
        session = self.session
        if session is None:
            return  # a close is under way: nothing the client sends counts
        texts = [frames[0].data] if len(frames) == 1 else [frame.data for frame in frames]
        taken = self._texts_now(session, texts)
        if taken < len(texts):
            self._start(_wait_for(session, texts[taken]))
            for frame in frames[taken + 1 :]:
                self._take_in_turn(frame)

    def _texts_now(self, session: Session, texts: list[str]) -> int:
        """The session's shortcut for text frames: how many it took, in order. Frames after
        our close count for nothing; a failure is logged and closes the socket with 1011,
        as one in `on_text` does (inside the parser it would pass for a broken stream)."""
        if session.conn.state is not _OPEN:
            return len(texts)
        try:
            return session.on_texts_now(texts)
        except Exception:
            log.exception("frame handling failed")
            session.conn.close(WSCloseCode.INTERNAL_ERROR, "server error")
            return len(texts)

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        """The parser found the stream broken; it parses nothing more."""
        self._take_chunk()  # what came before the broken frame is answered first
        self._take_in_turn(WSMessage(WSMsgType.ERROR, exc, None))

    def feed_eof(self) -> None:
        """Not called: the transport tells `connection_lost`."""

    # --- frames in turn --------------------------------------------------------------

    def _take_in_turn(self, frame: Frame) -> None:
        if self._handler is None:
            self._begin(frame)
            return
        queued = self._queued
        if queued is None:
            queued = self._queued = deque()
        queued.append(frame)
        self._queued_size += _frame_size(frame) + _FRAME_OVERHEAD
        if self._queued_size > QUEUE_HIGH and not self._reading_stopped:
            self._reading_stopped = True
            if not self._transport.is_closing():
                self._transport.pause_reading()

    def _begin(self, frame: Frame) -> None:
        """Handle `frame`; if that needs waiting, in a task that goes on with the frames
        queued behind it."""
        work = self._handle(frame)
        if work is not None:
            self._start(work)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        self._handler = asyncio.get_running_loop().create_task(self._handle_in_turn(work))

    async def _handle_in_turn(self, work: Coroutine[Any, Any, None]) -> None:
        session = self.session
        try:
            await work
        except Exception:
            log.exception("frame handling failed")
            if session is not None:
                session.conn.close(WSCloseCode.INTERNAL_ERROR, "server error")
            self._end_after_handler = True
        self._handler = None
        if self._end_after_handler:
            # Only now: a join awaiting the store when the socket closed has subscribed
            # since, and letting go (`_end`) unsubscribes it too.
            self._end()
        elif session is not None:
            session.conn.heard(session.conn.loop.time())
        try:
            self._next()
        except Exception:
            log.exception("frame handling failed")
            if self.session is not None:
                self.session.conn.close(WSCloseCode.INTERNAL_ERROR, "server error")
            self._end()

    def _next(self) -> None:
        """Take the queued frames in turn until one needs waiting (its task goes on)."""
        while self._handler is None and (queued := self._queued):
            frame = queued.popleft()
            self._queued_size -= _frame_size(frame) + _FRAME_OVERHEAD
            if not queued:
                self._queued = None
                self._queued_size = 0
            if self._reading_stopped and self._queued_size <= QUEUE_LOW:
                self._reading_stopped = False
                if not self._transport.is_closing():
                    self._transport.resume_reading()
            self._begin(frame)

    def _handle(self, frame: Frame) -> Coroutine[Any, Any, None] | None:
        """What the reader loop of aiohttp's path does with one frame (ws.socket_handler);
        a coroutine if the frame needs waiting."""
        kind = frame.type
        session = self.session
        if kind is WSMsgType.CLOSE:
            self._closed_by_peer(frame.data)
            return None
        if kind is WSMsgType.ERROR:
            self._broken(frame.data)
            return None
        if kind is WSMsgType.CLOSED:
            self._lost()
            return None
        if session is None:
            return None  # a close is under way: nothing the client sends counts
        conn = session.conn
        if kind is WSMsgType.TEXT:
            if self._texts_now(session, [frame.data]):
                return None
            return _wait_for(session, frame.data)
        if kind is WSMsgType.PING:
            conn.send_frame(pong_frame(frame.data))
        elif kind is WSMsgType.BINARY:
            session.on_binary(frame.data)
        conn.heard(conn.loop.time())
        return None

    # --- closing ---------------------------------------------------------------------

    def close_handshake(self, code: int, reason: str, ending: Ending) -> None:
        """Our close frame (what was queued before it is out already). An answer to the
        client's close ends the connection at once; our own waits for the client's."""
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(close_frame(code, reason))
        if ending is Ending.ANSWER:
            transport.close()
        else:
            loop = asyncio.get_running_loop()
            self._closing_timer = loop.call_later(CLOSE_TIMEOUT, self._close_unanswered)
        # The chat lets go of the socket soon, not at once: the close may have been called
        # from a loop over the chat's sockets. (Before `greeted` there is no session yet:
        # `greeted` lets go then.)
        asyncio.get_running_loop().call_soon(self._end)

    def _close_unanswered(self) -> None:
        """The client did not answer our close in time: drop the connection, and what is
        still queued for a peer that may read nothing (a close for being too slow)."""
        self._closing_timer = None
        self._transport.abort()

    def _closed_by_peer(self, code: int) -> None:
        """The client's close frame: answered if it came first, else it answers ours."""
        session = self.session
        if session is not None and session.conn.state is SocketState.OPEN:
            session.conn.close(close_reply(code), ending=Ending.ANSWER)
            return
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
        self._transport.close()
        self._end()

    def _broken(self, exc: BaseException) -> None:
        """A frame the parser refused: its close code (1002, 1007, 1009), after whatever
        was said before it."""
        if isinstance(exc, WebSocketError):
            code = exc.code
        else:  # not the client's doing: ours, or the parser's
            log.error("frame parsing failed", exc_info=exc)
            code = WSCloseCode.INTERNAL_ERROR
        exc.__traceback__ = None  # the frames of the parser: nothing to keep
        session = self.session
        # Once we closed (ours went out, or a half close ended our writing), no close frame
        if session is not None and session.conn.state is SocketState.OPEN:
            session.conn.flush()
            session.conn.close(code, ending=Ending.BY_LIBRARY)
            self._transport.write(close_frame(code, ""))
        self._transport.close()
        self._end()

    def _lost(self) -> None:
        """The transport is gone (the client's EOF or a reset, or our abort)."""
        session = self.session
        if session is not None:
            session.conn.close(WSCloseCode.ABNORMAL_CLOSURE, ending=Ending.BY_LIBRARY)
        self._end()

    def _end(self) -> None:
        """The chat lets go of the socket: it leaves the node, and its state is CLOSED;
        after the frame being handled, if one is (it may be awaiting the store)."""
        session = self.session
        if session is None:
            return
        if self._handler is not None:
            self._end_after_handler = True
            return
        self.session = None
        conn = session.conn
        session.detach()
        conn.flush()
        conn.end()


def _wait_for(session: Session, text: str) -> Coroutine[Any, Any, None]:
    """`on_text` for a frame the shortcut did not take."""
    # While a frame is being handled the client's pongs wait unread in the queue: the
    # keepalive must not take that silence for a dead peer.
    session.conn.handling()
    return session.on_text(text)


def _frame_size(frame: Frame) -> int:
    data = frame.data
    return len(data) if isinstance(data, str | bytes) else 0
