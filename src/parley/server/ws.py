"""GET /chat: the WebSocket handshake checks, then what each socket's frames mean.

parley.v1 sockets speak JSON frames; a socket without a subprotocol is the
tutorial's plain-text client, auto-joined to `general`. After the 101 and the greeting,
the socket leaves aiohttp for an `UpgradedSocket` (server/upgraded.py); with
`--stock-websocket` it stays on aiohttp's WebSocketResponse, one reader loop per socket.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web
from msgspec import UNSET

from parley.core import DM, GENERAL, Ending, SocketState, guest_key
from parley.protocol import (
    Ack,
    Change,
    Delete,
    Edit,
    Error,
    ErrorCode,
    Hello,
    HistoryReply,
    HistoryRequest,
    Join,
    Leave,
    ProtocolError,
    React,
    Read,
    RoomInfo,
    Send,
    SetTopic,
    Typing,
    decode_client_frame,
    encode,
    quick_send,
    reply_id,
)
from parley.protocol.http import error_body
from parley.server.auth import client_address, origin_allowed, request_token
from parley.server.chat import ChatService, store_error
from parley.server.connection import Connection, Flusher, Mode
from parley.server.frames import close_reply, pong_frame, text_frame, text_frames
from parley.server.httpconn import hand_over, refused_before, signed_in
from parley.server.metrics import OPENED
from parley.server.state import ACCOUNTS, CONFIG, NODE
from parley.server.upgraded import CLOSE_TIMEOUT, UpgradedSocket, take_head, upgrade_response
from parley.store import Appended, MessageQuery, RoomRecord, StoreUnavailable
from parley.store.batch import Answered, QueuedSend

__all__ = [
    "MAX_FRAME",
    "SUBPROTOCOL",
    "Session",
    "StockEnd",
    "chat_socket",
    "greet_then_hand_over",
    "open_chat",
    "open_socket",
    "room_info",
    "session_for",
    "socket_handler",
]

log = logging.getLogger("parley.ws")

MAX_FRAME: Final = 1024 * 1024
MAX_INFLIGHT: Final = 256  # unacked sends per socket before we stop reading it
SUBPROTOCOL: Final = "parley.v1"
_ENDED: Final = frozenset((WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR))


class StockEnd:
    """On aiohttp's stock path, the close handshake is aiohttp's own (it must know, or it
    answers the client's close frame again with 1000), in a task."""

    __slots__ = ("ws",)

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    def close_handshake(self, code: int, reason: str, ending: Ending) -> asyncio.Task[bool]:
        drain = ending is Ending.HANDSHAKE
        closing = self.ws.close(code=code, message=reason.encode(), drain=drain)
        return asyncio.get_running_loop().create_task(closing)


async def _identify(request: web.Request) -> tuple[str, str | None]:
    """(username, token_hash) or raise 401/403 before the upgrade."""
    config = request.app[CONFIG]
    token = request_token(request)
    if token is None and config.guests:
        return f"guest-{secrets.token_hex(2)}", None  # no identity: any origin may use it
    if not origin_allowed(request, config.allow_origins, config.trusted_proxies):
        raise web.HTTPForbidden(text="foreign origin")
    if not token or refused_before(request, token):
        found = None
    else:
        found = await request.app[ACCOUNTS].authenticate(token)
    if found is None:
        raise web.HTTPUnauthorized(text="sign in first")
    signed_in(request)
    return found


def _refusal(exc: ProtocolError) -> web.HTTPException:
    """A handshake refused for a limit: 429 with the API's JSON error and Retry-After."""
    retry_after = exc.retry_after or 1.0
    return web.HTTPTooManyRequests(
        body=error_body(exc.code, exc.message, retry_after),
        content_type="application/json",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


async def _accept(request: web.Request) -> tuple[web.StreamResponse, Connection | None]:
    """The handshake: who it is, then the upgrade. No connection if the peer already left."""
    node = request.app[NODE]
    if node.draining:
        raise web.HTTPServiceUnavailable(text="shutting down")
    try:
        username, token_hash = await _identify(request)
    except StoreUnavailable:
        raise web.HTTPServiceUnavailable(text="storage unavailable; retry") from None
    config = request.app[CONFIG]
    if token_hash is not None:
        return await open_socket(
            request, username, token_hash, node.flusher, stock=config.stock_websocket
        )
    address = client_address(request, config.trusted_proxies)  # guests spend its allowances
    try:
        node.admit_guest(address)
    except ProtocolError as exc:
        raise _refusal(exc) from None
    conn = None
    try:
        response, conn = await open_socket(
            request, username, None, node.flusher, address, stock=config.stock_websocket
        )
    finally:
        if conn is None:  # no socket came of it: its place is free again
            node.release_guest(guest_key(address))
    return response, conn


async def open_socket(
    request: web.Request,
    username: str,
    token_hash: str | None,
    flusher: Flusher,
    address: str = "",
    *,
    stock: bool = False,
    max_msg_size: int = MAX_FRAME,
) -> tuple[web.StreamResponse, Connection | None]:
    """The upgrade: the 101, on an `UpgradedSocket` of ours or (`stock`) on aiohttp's own
    WebSocketResponse. No connection if the peer already left."""
    if stock:
        return await _open_stock(request, username, token_hash, flusher, address, max_msg_size)
    response, protocol = upgrade_response(request, (SUBPROTOCOL,))
    head = take_head(await response.prepare(request))
    await response.write_eof()  # aiohttp writes nothing more: the head is ours to write
    transport = request.transport
    if transport is None:
        return response, None
    sock = UpgradedSocket(transport, max_msg_size)
    mode = Mode.JSON if protocol == SUBPROTOCOL else Mode.PLAIN
    conn = Connection(sock, transport, username, mode, token_hash, flusher, address)
    if head is not None:  # None: aiohttp wrote it (only a changed aiohttp would)
        conn.send_head(head)  # with the greeting, in one write (`_start_upgraded`)
    return response, conn


async def _open_stock(
    request: web.Request,
    username: str,
    token_hash: str | None,
    flusher: Flusher,
    address: str,
    max_msg_size: int,
) -> tuple[web.StreamResponse, Connection | None]:
    ws = web.WebSocketResponse(
        protocols=(SUBPROTOCOL,),
        compress=False,  # per-message deflate costs more CPU than chat frames save
        max_msg_size=max_msg_size,
        heartbeat=None,  # the node's keepalive sweep pings: no timer per socket
        autoping=False,  # pings and pongs reach the reader loop, so a pong counts as life
        autoclose=False,  # the reader loop answers a close: aiohttp's answer is always 1000
        timeout=CLOSE_TIMEOUT,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws, None
    mode = Mode.JSON if ws.ws_protocol == SUBPROTOCOL else Mode.PLAIN
    conn = Connection(StockEnd(ws), transport, username, mode, token_hash, flusher, address)
    return ws, conn


Accept = Callable[[web.Request], Awaitable[tuple[web.StreamResponse, Connection | None]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def socket_handler(
    accept: Accept, new_session: Callable[[web.Request, Connection], Session]
) -> Handler:
    """A GET handler: `accept` does the handshake, then the socket's frames go to the
    session `new_session` makes. /chat is one; the conformance tests' echo endpoint
    (tests/support/echo_server.py) is another, on the very same path."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response, conn = await accept(request)
        if conn is None:
            return response
        OPENED.aiohttp += 1
        session = new_session(request, conn)
        if isinstance(response, web.WebSocketResponse):
            await _stock_reader_loop(response, conn, session)
        else:
            await _start_upgraded(request, conn, session)
        return response

    return handler


async def _start_upgraded(request: web.Request, conn: Connection, session: Session) -> None:
    """Greet the client, then hand the connection over from aiohttp to its `UpgradedSocket`
    (what the client sent meanwhile waits in aiohttp's buffer); this request's task ends
    with it."""
    await greet_then_hand_over(conn, session, partial(hand_over, request))


async def greet_then_hand_over(
    conn: Connection, session: Session, hand_over: Callable[[UpgradedSocket], bytes | None]
) -> None:
    """Greet the client, then give the connection to its `UpgradedSocket`: `hand_over`
    does, and returns what the client sent meanwhile (None: the connection is gone)."""
    sock = conn.ws
    assert isinstance(sock, UpgradedSocket)
    session.attach()
    try:
        await session.start()  # False: it closed the socket; the close handshake goes on
    except BaseException:
        # Aborted first: what the client sent meanwhile must not run after a failed greeting.
        if conn.state is SocketState.OPEN:
            conn.flush()  # the 101, as before the failure
            conn.close(WSCloseCode.INTERNAL_ERROR, "server error", Ending.ABORT)
        sock.greeted(session, hand_over(sock))
        raise
    conn.flush()  # the 101 and the greeting: one write (a close wrote them already)
    sock.greeted(session, hand_over(sock))


async def open_chat(
    node: ChatService,
    transport: asyncio.Transport,
    who: tuple[str, str],
    protocol: str | None,
    head: bytes,
    hand_over: Callable[[UpgradedSocket], bytes | None],
) -> None:
    """A signed-in chat socket whose handshake aiohttp never saw (server/front.py): `head`
    is its 101, `who` its (username, token_hash), `protocol` the subprotocol chosen."""
    OPENED.front += 1
    sock = UpgradedSocket(transport, MAX_FRAME)
    mode = Mode.JSON if protocol == SUBPROTOCOL else Mode.PLAIN
    conn = Connection(sock, transport, who[0], mode, who[1], node.flusher)
    conn.send_head(head)
    await greet_then_hand_over(conn, session_for(node, conn), hand_over)


async def _stock_reader_loop(ws: web.WebSocketResponse, conn: Connection, session: Session) -> None:
    """aiohttp's stock path: one reader loop per socket, for the socket's whole life."""
    session.attach()
    try:
        if not await session.start():
            return
        while True:
            # What the last frame queued goes out now, not at the end of this loop
            # iteration: if aiohttp finds the next one broken, its close frame (written
            # within `receive`) must follow the answers, not precede them.
            conn.flush()
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                # While a frame is being handled the client's pongs wait unread in the
                # queue: the keepalive must not take that silence for a dead peer.
                conn.handling()
                await session.on_text(msg.data)
            elif kind is WSMsgType.PING:
                conn.send_frame(pong_frame(msg.data))
            elif kind is WSMsgType.BINARY:
                session.on_binary(msg.data)
            elif kind is WSMsgType.CLOSE:  # nothing to answer if we closed first
                conn.close(close_reply(msg.data), ending=Ending.ANSWER)
                # Ours must be out before this handler returns: aiohttp would close
                # the socket then, with 1000.
                await conn.finish_close()
                break
            elif kind in _ENDED:  # our close (already CLOSING), or aiohttp's own
                code = ws.close_code or WSCloseCode.ABNORMAL_CLOSURE
                conn.close(code, ending=Ending.BY_LIBRARY)
                break
            conn.heard(conn.loop.time())
    finally:
        session.detach()
        conn.flush()
        conn.end()
        _drop_tracebacks(ws.exception())


def _chat_session(request: web.Request, conn: Connection) -> Session:
    return session_for(request.app[NODE], conn)


def session_for(node: ChatService, conn: Connection) -> ChatSession:
    """The chat's session for a socket of `conn.mode`."""
    return JsonSession(node, conn) if conn.mode is Mode.JSON else PlainSession(node, conn)


chat_socket: Final[Handler] = socket_handler(_accept, _chat_session)  # GET /chat


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Forget where a socket's stored error was raised.

    aiohttp keeps the error that ended a socket (a reset, say), and the frames of its
    traceback refer back to the socket: a reference cycle per closed socket, with the
    socket's whole request and transport in it, that only the cyclic GC frees. After
    many sockets drop at once that was one collection of a second and more (1.6 s for
    19,000 sockets, measured) with the loop stopped. Without the tracebacks, reference
    counting frees each socket as it closes.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__context__ or exc.__cause__


class Session(ABC):
    """What one socket's frames mean."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def attach(self) -> None:  # noqa: B027 - a default, not a stub: nothing to register
        """The socket is open: make it reachable (before `start`)."""

    def detach(self) -> None:  # noqa: B027 - a default, not a stub: nothing to forget
        """The socket is gone: forget it."""

    async def start(self) -> bool:
        """Greet the client; False if the socket was closed instead."""
        return True

    @abstractmethod
    async def on_text(self, data: str) -> None:
        """One text frame from the client."""

    def on_text_now(self, data: str) -> bool:
        """Handle a text frame at once if that needs no waiting; False: not taken, it goes
        to `on_text` in turn."""
        return False

    def on_texts_now(self, texts: Sequence[str]) -> int:
        """`on_text_now` for the text frames of one read, in order: how many were taken
        (it stops at the first not taken, which goes to `on_text`, the rest in turn)."""
        for taken, text in enumerate(texts):
            if not self.on_text_now(text):
                return taken
        return len(texts)

    def on_binary(self, data: bytes) -> None:  # noqa: B027 - a default, not a stub
        """Binary frames are not part of the protocol; ignored unless a subclass objects."""


class ChatSession(Session):
    """A chat client's socket, which the chat service serves; subclasses speak a mode."""

    __slots__ = ("node",)

    def __init__(self, node: ChatService, conn: Connection) -> None:
        super().__init__(conn)
        self.node = node

    def attach(self) -> None:
        self.node.attach(self.conn)

    def detach(self) -> None:
        self.node.detach(self.conn)

    async def wait_for_slot(self) -> None:
        """With MAX_INFLIGHT sends in flight, stop reading this socket until one commits:
        the client's frames wait in the kernel's buffers, which slows it down."""
        conn = self.conn
        if conn.inflight >= MAX_INFLIGHT:
            conn.slot_freed = asyncio.get_running_loop().create_future()
            await conn.slot_freed

    def pipeline(
        self,
        room: str,
        text: str,
        client_id: str | None,
        answer: Callable[[Appended], None],
        reply_to: int | None = None,
        attachments: Sequence[str] = (),
    ) -> None:
        """Queue a checked send to the room keyed `room` for the store's group commit, not
        waiting for it and without a future (`ChatService.submit_then`): the socket's
        sends are stored in the order they came, and answered in that order, after the
        COMMIT; `answer` must call `slot_back`. Mind `wait_for_slot` first."""
        self.conn.inflight += 1  # first: a store that is closed answers at once
        try:
            self.node.submit_then(self.conn, room, text, client_id, answer, reply_to, attachments)
        except ProtocolError:
            self.slot_back()
            raise

    def slot_back(self, answered: int = 1) -> None:
        """Sends of this socket's were answered: as many more may be in flight."""
        conn = self.conn
        conn.inflight -= answered
        waiter, conn.slot_freed = conn.slot_freed, None
        if waiter is not None and not waiter.done():  # done: its reader was cancelled
            waiter.set_result(None)


class JsonSession(ChatSession):
    """parley.v1: JSON frames, answered with acks, errors and events."""

    __slots__ = ()

    async def start(self) -> bool:
        try:
            await self.hello()
        except StoreUnavailable:  # no hello without the rooms: ask the client to come back
            self.conn.close(WSCloseCode.TRY_AGAIN_LATER, "storage unavailable")
            await self.conn.finish_close()
            return False
        return True

    def on_binary(self, data: bytes) -> None:
        self.error(ProtocolError(ErrorCode.BAD_REQUEST, "send JSON in text frames"))

    async def hello(self) -> None:
        conn = self.conn
        admin = False
        if conn.guest:
            rooms = [RoomInfo(GENERAL, self.node.last_seq(GENERAL))]
        else:
            conn.reads_before_hello = {}
            try:
                seen, admin = await self.node.hello_rooms(conn)
            except ProtocolError as exc:  # storage unavailable
                raise StoreUnavailable(exc.message) from None
            finally:
                heard, conn.reads_before_hello = conn.reads_before_hello, None
            if conn.admin_before_hello is not None:  # changed while it was read: the newer
                admin, conn.admin_before_hello = conn.admin_before_hello, None
            rooms = [room_info(ref, r, heard.get(r.room, 0)) for ref, r in seen]
        conn.send(encode(Hello(conn.username, rooms, admin)))

    def error(self, exc: ProtocolError) -> None:
        self.conn.send_frame(self._error_frame(exc))

    def _error_frame(self, exc: ProtocolError) -> bytes:
        return text_frame(self._error_payload(exc))

    def _error_payload(self, exc: ProtocolError) -> bytes:
        if log.isEnabledFor(logging.DEBUG):
            fields = {"user": self.conn.username, "code": exc.code.value}
            log.debug("frame refused", extra={**fields, "request_id": exc.request_id})
        return encode(Error.from_exception(exc))

    async def on_text(self, data: str) -> None:
        try:
            frame = decode_client_frame(data)
        except ProtocolError as exc:  # it carries the frame's id when that was readable
            self.error(exc)
            return
        try:
            if isinstance(frame, Send):
                await self.start_send(frame)
            elif isinstance(frame, Join):
                await self.node.join(self.conn, frame.room, frame.since, frame.request_id)
            elif isinstance(frame, Leave):
                self.node.leave(self.conn, frame.room)
            elif isinstance(frame, HistoryRequest):
                query = MessageQuery(frame.room, frame.limit, frame.after, frame.before)
                messages = await self.node.history(self.conn, query)
                reply = HistoryReply(frame.room, messages, reply_id(frame.request_id))
                self.conn.send(encode(reply))
            elif isinstance(frame, Typing):
                await self.node.typing(self.conn, frame.room)
            elif isinstance(frame, Read):
                await self.node.read(self.conn, frame.room, frame.seq, conn=self.conn)
            elif isinstance(frame, Edit | Delete | React | SetTopic):
                await self.change(frame)
        except ProtocolError as exc:
            exc.request_id = frame.request_id
            self.error(exc)

    async def change(self, frame: Change) -> None:
        """An edit, delete, reaction or topic: acked with its event's seq after COMMIT."""
        try:
            changed = await self.node.change(self.conn, frame, self.conn)
        except ProtocolError as exc:
            exc.ref = frame.client_id
            raise
        ack = Ack(frame.client_id, frame.room, changed.seq, reply_id(frame.request_id))
        self.conn.send(encode(ack))

    def on_text_now(self, data: str) -> bool:
        conn = self.conn
        frame = quick_send(data)
        if frame is None or (room := self._shortcut_room(frame, 0)) is None:
            return False
        try:
            self.node.check_send(conn, frame.text, frame.attachments)
            self.submit(frame, room)
        except ProtocolError as exc:
            self.error(_answering(frame, exc))
        conn.heard(conn.loop.time())
        return True

    def _shortcut_room(self, frame: Send, queued: int) -> str | None:
        """The key of the room of a send the shortcut takes (with `queued` sends of the
        same read not queued yet); None: not taken, the reader loop decodes it again and
        answers what is wrong. Not taken: a reply (checked against the store), a room not
        known to this socket (a known reference passed the full decoding when first used),
        a NUL in the client_id, no slot free."""
        conn = self.conn
        if (
            frame.reply_to is not None
            or (room := conn.key_of(frame.room)) is None
            or "\x00" in frame.client_id
            or conn.inflight + queued >= MAX_INFLIGHT
        ):
            return None
        return room

    def on_texts_now(self, texts: Sequence[str]) -> int:
        """The sends among `texts` are checked one by one and queued together: one call
        into the chat service for a whole read's sends (`queue_sends`), answered together.
        A refusal queues those before it first, so that every answer keeps its frame's
        place. A read of one frame takes `on_text_now`, the path of a single send: the
        batch's lists cost more than they save for one (measured at 1 in flight)."""
        if len(texts) == 1:
            return 1 if self.on_text_now(texts[0]) else 0
        conn = self.conn
        node = self.node
        sends: list[QueuedSend] = []
        taken = 0
        try:
            for data in texts:
                frame = quick_send(data)
                if frame is None or (room := self._shortcut_room(frame, len(sends))) is None:
                    break
                taken += 1
                try:
                    node.check_send(conn, frame.text, frame.attachments)
                except ProtocolError as exc:
                    self.queue_sends(sends)
                    sends = []
                    self.error(_answering(frame, exc))
                else:
                    sends.append((room, frame))
        finally:
            self.queue_sends(sends)
        if taken:
            conn.heard(conn.loop.time())
        return taken

    def queue_sends(self, sends: Sequence[QueuedSend]) -> None:
        """Queue checked sends (each the key of its room and its frame) for the store's
        group commit (`ChatService.submit_all`); `acked_all` answers them after the COMMIT,
        all those of a batch at once. Mind MAX_INFLIGHT first. While shutting down, each is
        refused in turn."""
        if not sends:
            return
        conn = self.conn
        conn.inflight += len(sends)  # first: a store that is closed answers at once
        try:
            self.node.submit_all(conn, sends, self.acked_all)
        except ProtocolError as exc:
            for _, frame in sends:
                self.slot_back()
                self.error(_answering(frame, exc))

    async def start_send(self, frame: Send) -> None:
        """Check now and queue for the store (keeps this socket's order); ack on COMMIT.

        No task per message: the ack is a callback on the store's future, so sends pipeline.
        """
        conn = self.conn
        try:
            self.node.check_send(conn, frame.text, frame.attachments)
            room = await self.node.may_use(conn, frame.room)
            await self.node.check_reply(room, frame.room, frame.reply_to)
            await self.wait_for_slot()
            self.submit(frame, room)
        except ProtocolError as exc:
            exc.ref = frame.client_id
            raise

    def submit(self, frame: Send, room: str) -> None:
        """Queue a checked send to the room keyed `room` (`pipeline`); `acked` answers it
        after the COMMIT. Mind `wait_for_slot` first."""
        answer = partial(self.acked, frame)
        self.pipeline(room, frame.text, frame.client_id, answer, frame.reply_to, frame.attachments)

    def acked(self, frame: Send, result: Appended) -> None:
        self.acked_all([(frame, result)])

    def acked_all(self, answered: Answered) -> None:
        """The answers of sends (each token: the send's frame), in their order: an ack, or
        the error of a send the store refused. Their frames are queued together, and their
        slots given back at once. (Written out: per send, this is the whole cost of an
        answer.)"""
        self.slot_back(len(answered))
        conn = self.conn
        payloads = []
        for frame, result in answered:
            if isinstance(result, BaseException):
                error = _answering(frame, store_error(result, frame.room))
                payloads.append(self._error_payload(error))
                continue
            msg, created = result
            # A resent client_id is acked as first stored, which may be another room (a
            # new message is where its frame said; a room the socket lost since: its name)
            if created or conn.key_of(frame.room) in (msg.room, None):
                ref = frame.room
            else:
                ref = conn.ref_of(msg.room)
            ack = Ack(frame.client_id, ref, msg.seq, reply_id(frame.request_id))
            payloads.append(encode(ack))
        conn.send_frame(text_frames(payloads))


def _answering(frame: Send, exc: ProtocolError) -> ProtocolError:
    """`exc` as the answer to the send `frame`: its client_id as `ref`, its id echoed."""
    exc.ref, exc.request_id = frame.client_id, frame.request_id
    return exc


class PlainSession(ChatSession):
    """The tutorial's client: every text frame is a message to `general`.

    Its sends pipeline like parley.v1's (`pipeline`): the client hears each message as
    its own line once committed, and a refusal as an error line, where the message would
    have been: after the lines of the sends before it, before those of the sends after it.
    """

    __slots__ = ("_answered_count", "_refusals", "_sent", "_shown")

    def __init__(self, node: ChatService, conn: Connection) -> None:
        super().__init__(node, conn)
        # Sends are answered in the order they were sent: a refusal made after the n-th
        # send waits in `_refusals` until n of them are answered.
        self._sent = 0
        self._answered_count = 0
        self._refusals: deque[tuple[int, ProtocolError]] | None = None
        self._shown = 0  # the seq of its last stored message: an error line comes after it

    async def start(self) -> bool:
        try:
            self.node.join_plain(self.conn)
        except ProtocolError as exc:  # rate_limited: opening sockets in a loop
            self.error(exc)
            self.conn.close(WSCloseCode.TRY_AGAIN_LATER, exc.message)
            await self.conn.finish_close()
            return False
        return True

    def error(self, exc: ProtocolError) -> None:
        """Say `exc` in its turn: after the answers of the sends still in flight."""
        if self._answered_count == self._sent:
            self._say(exc)
            return
        if self._refusals is None:
            self._refusals = deque()
        self._refusals.append((self._sent, exc))

    def _say(self, exc: ProtocolError) -> None:
        """The error line, once this node has delivered the socket's earlier messages (at
        once on a single node; through Redis their lines may still be on the way)."""
        wait = "" if exc.retry_after is None else f" (retry after {_tenths_up(exc.retry_after)} s)"
        line = f"* error {exc.code.value}: {exc.message}{wait}".encode()
        self.node.after_delivered(GENERAL, self._shown, partial(self.conn.send, line))

    def on_text_now(self, data: str) -> bool:
        conn = self.conn
        if conn.inflight >= MAX_INFLIGHT:
            return False  # the reader loop waits for a slot
        self.send(data)
        conn.heard(conn.loop.time())
        return True

    async def on_text(self, data: str) -> None:
        await self.wait_for_slot()
        self.send(data)

    def send(self, text: str) -> None:
        """Check now, then queue for the store; the fan-out shows it once committed."""
        try:
            self.node.check_send(self.conn, text)
            self._sent += 1  # first: a store that is closed answers at once
            try:
                self.pipeline(GENERAL, text, None, self._answered)
            except ProtocolError:
                self._sent -= 1
                raise
        except ProtocolError as exc:
            self.error(exc)

    def _answered(self, result: Appended) -> None:
        """After the COMMIT, and after the fan-out showed the message (if the broker is this
        node's): only a failure has an answer, an error line; then the refusals made
        after this send and before the next one."""
        self.slot_back()
        self._answered_count += 1
        if isinstance(result, BaseException):
            self._say(store_error(result, GENERAL))  # in its turn: answers run in order
        else:
            self._shown = result[0].seq
        refusals = self._refusals
        while refusals and refusals[0][0] <= self._answered_count:
            self._say(refusals.popleft()[1])


def room_info(ref: str, room: RoomRecord, heard_read: int = 0) -> RoomInfo:
    """A room in `hello`, as the user calls it and sees it (api.py `_room_entry` is its
    GET /api/rooms twin)."""
    return RoomInfo(
        ref,
        room.last_seq,
        max(room.last_read, heard_read),
        room.kind,
        room.topic,
        room.unread,
        room.mentions,
        room.private,
        list(room.members) if room.kind == DM else UNSET,
    )


def _tenths_up(seconds: float) -> str:
    """A wait for a human: in tenths of a second, rounded up (never "0.0")."""
    return f"{max(math.ceil(seconds * 10), 1) / 10:.1f}"
