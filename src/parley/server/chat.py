"""The chat node: joins, sends, history and typing over store + broker + hub.

This is the one place where the sans-I/O rules of `core/` meet the store and the
broker; the WebSocket and HTTP handlers are thin callers of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, Final, Protocol

import msgspec
from aiohttp import WSCloseCode

from parley.broker import Broker, ClusterEvent, TokenRevoked, TypingSignal, UserTokensRevoked
from parley.core import (
    GENERAL,
    Action,
    ActionLimits,
    Ending,
    Feed,
    Gap,
    Hub,
    KeepalivePolicy,
    PresenceGrace,
    SocketState,
    Verdict,
    check_text,
    guest_key,
    one_line,
    references,
)
from parley.presence import MemoryPresence, PresenceTracker
from parley.protocol import (
    MAX_TEXT_CHARS,
    CloseCode,
    ErrorCode,
    Joined,
    Message,
    MessageEvent,
    Presence,
    ProtocolError,
    TypingEvent,
    encode,
    reply_id,
)
from parley.server import metrics
from parley.server.connection import Connection, Flusher
from parley.server.frames import PING, text_frame
from parley.store import MessageQuery, RoomRecord, Store, StoreUnavailable, UnknownRoom

__all__ = ["ChatNode", "Identity", "as_seen", "limit_key", "store_error"]

log = logging.getLogger("parley.chat")

REPLAY_PAGE: Final = 500
GAP_GRACE: Final = 0.05  # a reordered message usually arrives within this; then read the store
TYPING_EVERY: Final = 1.0  # at most one typing event per user and room per second


class Identity(Protocol):
    """Who acts: a WebSocket connection or an HTTP request's user."""

    @property
    def username(self) -> str: ...

    @property
    def guest(self) -> bool: ...


class ChatNode:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        *,
        rate_limit: int,
        action_limits: float = 1.0,
        presence_grace: float = 0.0,
        max_guests_per_address: int = 0,
        presence: PresenceTracker | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.presence = presence or MemoryPresence()
        self.hub: Hub[Connection] = Hub()
        self.flusher = Flusher()
        self.feed = Feed()
        self.limits = ActionLimits.scaled(rate_limit, action_limits)
        self.grace = PresenceGrace(presence_grace)
        self._grace_timer: asyncio.TimerHandle | None = None
        self.connections: set[Connection] = set()
        self.by_token: dict[str, set[Connection]] = {}
        self.max_guests_per_address = max_guests_per_address  # 0: no cap
        self._guests: dict[str, int] = {}  # open guest sockets per limit key (their address)
        self.draining = False
        self._all_detached = asyncio.Event()  # set when draining and the last socket is gone
        self._filling: set[str] = set()
        self._typing_seen: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[asyncio.Future[tuple[Message, bool]]] = set()  # sends not committed
        self._resyncing = False
        self._resync_again = False

    async def start(self) -> None:
        for room, seq in (await self.store.last_seqs()).items():
            self.feed.floor(room, seq)
        await self.presence.start(self)
        await self.broker.start(self)

    # --- connections ------------------------------------------------------------

    def admit_guest(self, address: str) -> None:
        """A guest socket from `address` may open: within the cap of open guest sockets per
        address, and the address's allowance of sockets opened (each one's presence costs
        the room's members two frames, so one that loops must be bounded); else
        rate_limited."""
        key = guest_key(address)
        cap = self.max_guests_per_address
        open_now = self._guests.get(key, 0)
        if cap > 0 and open_now >= cap:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many guest connections open from here", retry_after=1.0
            )
        self._spend_key(key, Action.GUEST_SOCKET)
        # counted now, not at `attach`: handshakes in flight at once must not all pass
        self._guests[key] = open_now + 1

    def release_guest(self, key: str) -> None:
        """A guest socket admitted by `admit_guest` is gone (or never opened)."""
        left = self._guests.pop(key, 1) - 1
        if left > 0:
            self._guests[key] = left

    def attach(self, conn: Connection) -> None:
        self.connections.add(conn)
        if conn.token_hash:
            self.by_token.setdefault(conn.token_hash, set()).add(conn)
        metrics.CONNECTIONS.inc()

    def join_plain(self, conn: Connection) -> None:
        """A plain-text socket's one room: `general`, joined when it opens. That counts as a
        join of the account's; a guest's socket spent its address's allowance of guest
        sockets at the handshake instead (`admit_guest`)."""
        if not conn.guest:
            self.spend(conn, Action.JOIN)
        conn.rooms.add(GENERAL)
        if self.hub.subscribe(conn, conn.username, GENERAL, plain=True):
            self._came(GENERAL, conn.username)

    def detach(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if conn.guest:
            self.release_guest(conn.limit_key)
        if self.draining and not self.connections:
            self._all_detached.set()
        metrics.CONNECTIONS.dec()
        if conn.token_hash:
            peers = self.by_token.get(conn.token_hash)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_token[conn.token_hash]
        for room in list(conn.rooms):
            self._unsubscribe(conn, room)

    async def keep_alive(self, policy: KeepalivePolicy) -> None:
        """Ping silent sockets, drop the ones that stopped answering; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(policy.tick)
            try:
                self._sweep(policy, loop.time())
            except Exception:  # one bad socket must not end keepalive for the node
                log.exception("keepalive sweep failed")

    def _sweep(self, policy: KeepalivePolicy, now: float) -> None:
        for conn in tuple(self.connections):
            verdict = conn.keepalive(policy, now)
            if verdict is Verdict.PING:
                conn.send_frame(PING)
            elif verdict is Verdict.DROP:
                conn.close(WSCloseCode.ABNORMAL_CLOSURE, "keepalive timeout", Ending.ABORT)

    async def drain(self, close_code: int) -> None:
        """Shutdown: let in-flight sends commit and ack, then close every socket."""
        self.draining = True
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        for conn in list(self.connections):
            conn.close(close_code, "server shutting down", Ending.HALF_CLOSE)
        # Each socket's reader loop ends when its client answers the close frame.
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_detached.wait(), 5.0)

    # --- access -----------------------------------------------------------------

    async def visible_room(self, who: Identity, ref: str) -> RoomRecord:
        """The room `who` calls `ref` (core/roomnames.py) if they may use it; not_found
        exactly as for a missing room."""
        if who.guest and ref != GENERAL:
            raise ProtocolError(ErrorCode.FORBIDDEN, "guests may only use the general room")
        try:
            record = await self.store.visible_room(ref, who.username)
        except StoreUnavailable:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None
        if record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no room {ref!r}")
        return record

    async def may_use(self, conn: Connection, ref: str) -> str:
        """`visible_room` for a socket, remembered: access is never taken away from a member,
        so a socket asks the store about a room once, not on every send. The room's key."""
        key = conn.key_of(ref)
        if key is None:
            key = (await self.visible_room(conn, ref)).room
            conn.allow(ref, key)
        return key

    async def rooms_of(self, who: Identity) -> list[tuple[str, RoomRecord]]:
        """The rooms `who` sees, each with what they call it, by that reference."""
        try:
            return references(await self.store.list_rooms(who.username))
        except StoreUnavailable:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None

    async def create_room(self, who: Identity, name: str, private: bool) -> RoomRecord:
        """A new room `who` owns; conflict only when `who` sees a room of that name (a
        private room hidden from them never says it exists). The caller spends the
        allowance (before it reads the body)."""
        try:
            record = await self.store.create_room(name, private, who.username)
        except StoreUnavailable:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None
        if record is None:
            raise ProtocolError(ErrorCode.CONFLICT, f"room {name!r} exists")
        return record

    # --- commands -----------------------------------------------------------------

    def spend(self, who: Identity, action: Action) -> None:
        """Count one `action` against `who`'s allowance, or refuse it with rate_limited."""
        self._spend_key(limit_key(who), action)

    def _spend_key(self, key: str, action: Action) -> None:
        retry_after = self.limits.check(action, key, time.monotonic())
        if retry_after:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, self.limits.refusal(action), retry_after=retry_after
            )

    async def join(
        self, conn: Connection, ref: str, since: int | None, request_id: int | None = None
    ) -> None:
        """A client's join frame; `joined` echoes its `request_id`."""
        self.spend(conn, Action.JOIN)
        record = await self.visible_room(conn, ref)
        room = record.room
        if ref != room:  # a joined room is known by its key (Connection.key_of)
            conn.allow(ref, room)
        await self._catch_up(room, record.last_seq)
        if room in conn.rooms:  # a re-join restarts the subscription (and its replay)
            went = self.hub.unsubscribe(conn, conn.username, room)
        else:
            went = False
            conn.rooms.add(room)
        last_seq = self.feed.last_seq.get(room)
        if last_seq is None:
            last_seq = self.feed.floor(room, record.last_seq)
        alias = ref if ref != room else None
        came = self.hub.subscribe(conn, conn.username, room, alias=alias)
        here = [*self.hub.online(room), *self.grace.lingering(room)]
        online = await self.presence.online(room, here)
        conn.send(encode(Joined(ref, last_seq, online, reply_id(request_id))))
        if came and not went:
            self._came(room, conn.username)
        if since is not None and since < last_seq:
            await self._replay(conn, room, since, last_seq)
        for frame in self.hub.go_live(conn, room):
            conn.send_frame(frame)

    def leave(self, conn: Connection, ref: str) -> None:
        """A client's leave frame."""
        self.spend(conn, Action.LEAVE)
        room = conn.key_of(ref)
        if room is not None:
            self._unsubscribe(conn, room)

    def _unsubscribe(self, conn: Connection, room: str) -> None:
        if room not in conn.rooms:
            return
        conn.rooms.discard(room)
        if self.hub.unsubscribe(conn, conn.username, room):
            self._went(room, conn.username)

    def check_send(self, who: Identity, text: str) -> None:
        """The synchronous checks of a send: text, then the sender's rate."""
        reason = check_text(text, MAX_TEXT_CHARS)
        if reason:
            code = ErrorCode.TOO_LARGE if len(text) > MAX_TEXT_CHARS else ErrorCode.BAD_REQUEST
            raise ProtocolError(code, reason)
        self.spend(who, Action.SEND)

    def submit(
        self,
        who: Identity,
        room: str,
        text: str,
        client_id: str | None,
        on_done: Callable[[asyncio.Future[tuple[Message, bool]]], None] | None = None,
    ) -> asyncio.Future[tuple[Message, bool]]:
        """Queue a message for the store. When it is committed it is published (if new),
        then `on_done` runs (the ack): one callback per message, not two. Checks are the
        caller's."""
        if self.draining:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down")
        future = self.store.append_soon(room, who.username, text, client_id)
        self._inflight.add(future)
        future.add_done_callback(partial(self._committed, time.perf_counter(), on_done))
        return future

    def _committed(
        self,
        started: float,
        on_done: Callable[[asyncio.Future[tuple[Message, bool]]], None] | None,
        future: asyncio.Future[tuple[Message, bool]],
    ) -> None:
        self._inflight.discard(future)
        if not future.cancelled() and future.exception() is None:
            msg, created = future.result()
            metrics.ACKS.observe(time.perf_counter() - started, created=created)
            if created:
                self.broker.publish_message(msg)
        if on_done is not None:
            on_done(future)

    async def send(
        self, who: Identity, room: str, text: str, client_id: str | None, ref: str | None = None
    ) -> tuple[Message, bool]:
        """Store and publish to the room keyed `room`, which `who` calls `ref` (default: the
        key); returns once committed: (the message as `who` sees it, created). Checks are
        the caller's."""
        try:
            msg, created = await self.submit(who, room, text, client_id)
        except Exception as exc:
            raise store_error(exc, ref or room) from None
        return as_seen(msg, ref or room), created

    async def history(self, who: Identity, query: MessageQuery) -> list[Message]:
        """A page of the room `who` calls `query.room`, in those words."""
        self.spend(who, Action.HISTORY)
        record = await self.visible_room(who, query.room)
        page = await self._read(dataclasses.replace(query, room=record.room))
        if record.room == query.room:
            return page
        return [as_seen(msg, query.room) for msg in page]

    async def members(self, who: Identity, ref: str) -> list[str]:
        record = await self.visible_room(who, ref)
        try:
            return await self.store.members(record.room)
        except StoreUnavailable:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None

    async def typing(self, conn: Connection, ref: str) -> None:
        self.spend(conn, Action.TYPING)
        room = await self.may_use(conn, ref)
        now = time.monotonic()
        key = (room, conn.username)
        if now - self._typing_seen.get(key, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typing_seen[key] = now
        if len(self._typing_seen) > 10_000:
            self._typing_seen = {k: t for k, t in self._typing_seen.items() if now - t < 5}
        self.broker.publish_event(TypingSignal(room, conn.username))

    async def revoke(self, token_hash: str) -> None:
        self.broker.publish_event(TokenRevoked(token_hash))

    async def revoke_user(self, username: str, keep: str | None = None) -> None:
        """Close, on every node, the sockets of every session of `username` but `keep`."""
        self.broker.publish_event(UserTokensRevoked(username, keep))

    # --- what the broker delivers ---------------------------------------------------

    def on_message(self, msg: Message) -> None:
        deliverable, gap = self.feed.accept(msg)
        for message in deliverable:
            self._fan_out(message)
        if gap is not None:
            self._fill_later(gap)

    def on_presence(self, room: str, username: str, online: bool) -> None:
        """The presence tracker: `username` came online / went offline in `room` (cluster-wide)."""
        self._presence(room, username, online=online)

    def resync_from_store(self) -> None:
        """Broker hook (after a reconnect, and now and then): deliver from the store what the
        broker may have dropped, in every room this node has subscribers in."""
        if self._resyncing:
            self._resync_again = True
            return
        self._resyncing = True
        self._spawn(self._resync())

    def on_event(self, event: ClusterEvent) -> None:
        if isinstance(event, TypingSignal):
            self._typing_out(event)
        elif isinstance(event, TokenRevoked):
            self._signed_out(event.token_hash)
        elif isinstance(event, UserTokensRevoked):
            name = event.username.lower()
            for token_hash, conns in list(self.by_token.items()):
                if token_hash != event.keep and any(c.username.lower() == name for c in conns):
                    self._signed_out(token_hash)

    def _signed_out(self, token_hash: str) -> None:
        for conn in list(self.by_token.pop(token_hash, ())):
            conn.close(CloseCode.SIGNED_OUT, "signed out")

    # --- fan-out --------------------------------------------------------------------

    def _fan_out(self, msg: Message) -> None:
        subs = self.hub.rooms.get(msg.room)
        if subs is None:
            return  # nobody on this node listens: not even worth encoding
        frame = _message_frame(msg)
        if subs.aliases:  # someone calls this room by another name: their own frames
            framed_as = _framed_as(lambda ref: _message_frame(as_seen(msg, ref)))
            self.hub.deliver(msg.room, frame, framed_as)
            _send_each(subs.live, subs.aliases, frame, framed_as)
        else:
            self.hub.deliver(msg.room, frame)
            self.flusher.broadcast(subs.live, frame)
        if subs.plain:
            line = f"{msg.username}: {one_line(msg.text)}"  # one message, one line
            self.flusher.broadcast(subs.plain, text_frame(line.encode()))

    def _came(self, room: str, username: str) -> None:
        """`username`'s first connection here joined `room`: announce it, unless the room
        was never told that the user left (back within the grace)."""
        if not self.grace.back(room, username):
            self.presence.came(room, username)

    def _went(self, room: str, username: str) -> None:
        """`username`'s last connection here left `room`: announce it now, or, when the
        user flaps (left again within the grace), once the grace is over."""
        if not self.grace.enabled:
            self.presence.went(room, username)
            return
        loop = asyncio.get_running_loop()
        deadline = self.grace.hold(room, username, loop.time())
        if deadline is None:
            self.presence.went(room, username)
            return
        timer = self._grace_timer
        if timer is None or deadline < timer.when():  # held ones fall due in any order
            if timer is not None:
                timer.cancel()
            self._grace_timer = loop.call_at(deadline, self._grace_over)

    def _grace_over(self) -> None:
        self._grace_timer = None
        loop = asyncio.get_running_loop()
        for room, username in self.grace.due(loop.time()):
            self.presence.went(room, username)
        deadline = self.grace.next_deadline()
        if deadline is not None:
            self._grace_timer = loop.call_at(deadline, self._grace_over)

    def _presence(self, room: str, username: str, *, online: bool) -> None:
        """Tell the room's other users; a user's own sockets know without being told."""
        subs = self.hub.rooms.get(room)
        if subs is None:
            return
        framed_as = _framed_as(lambda ref: text_frame(encode(Presence(ref, username, online))))
        frame = framed_as(room)
        _send_each(subs.live, subs.aliases, frame, framed_as, but=username)
        for conn, buffered in subs.replaying.items():
            if conn.username != username:
                alias = subs.aliases.get(conn)
                buffered.append(frame if alias is None else framed_as(alias))

    def _typing_out(self, event: TypingSignal) -> None:
        subs = self.hub.rooms.get(event.room)
        if subs is None:
            return
        framed_as = _framed_as(lambda ref: text_frame(encode(TypingEvent(ref, event.username))))
        _send_each(subs.live, subs.aliases, framed_as(event.room), framed_as, but=event.username)

    # --- catching up from the store ----------------------------------------------------

    async def _replay(self, conn: Connection, room: str, since: int, upto: int) -> None:
        """Send messages (since, upto] from the store, a page at a time, minding backpressure."""
        after = since
        while after < upto and conn.state is SocketState.OPEN:
            page = await self._read(MessageQuery(room, limit=REPLAY_PAGE, after=after))
            page = [m for m in page if m.seq <= upto]
            if not page:
                return
            ref = conn.ref_of(room)
            for msg in page:
                conn.send_frame(_message_frame(as_seen(msg, ref)))
            after = page[-1].seq
            await conn.drain()

    def _fill_later(self, gap: Gap) -> None:
        if gap.room not in self._filling:
            self._filling.add(gap.room)
            self._spawn(self._fill(gap.room))

    async def _fill(self, room: str) -> None:
        """Read a missing range from the store and feed it through in order."""
        try:
            await asyncio.sleep(GAP_GRACE)
            while (gap := self.feed.pending_gap(room)) is not None:
                try:
                    page = await self._read(
                        MessageQuery(room, limit=REPLAY_PAGE, after=gap.first - 1)
                    )
                except ProtocolError:
                    await asyncio.sleep(1.0)  # store down: try again; the feed holds the rest
                    continue
                for msg in page:
                    self.on_message(msg)
                if not page:
                    await asyncio.sleep(GAP_GRACE)
        finally:
            self._filling.discard(room)

    async def _catch_up(self, room: str, upto: int) -> None:
        """Feed `room` from the store until this node has delivered everything up to `upto`."""
        while (last := self.feed.last_seq.get(room)) is not None and last < upto:
            page = await self._read(MessageQuery(room, limit=REPLAY_PAGE, after=last))
            if not page:
                return
            for msg in page:
                self.on_message(msg)

    async def _resync(self) -> None:
        try:
            while True:
                self._resync_again = False
                try:
                    stored = await self.store.last_seqs()
                    for room in list(self.hub.rooms):
                        await self._catch_up(room, stored.get(room, 0))
                except (StoreUnavailable, ProtocolError):
                    await asyncio.sleep(1.0)  # store down too: try again
                    self._resync_again = True
                if not self._resync_again:
                    return
        finally:
            self._resyncing = False

    async def _read(self, query: MessageQuery) -> list[Message]:
        try:
            return await self.store.messages(query)
        except StoreUnavailable:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def as_seen(msg: Message, ref: str) -> Message:
    """`msg` as a user who calls its room `ref` sees it."""
    return msg if msg.room == ref else msgspec.structs.replace(msg, room=ref)


def _message_frame(msg: Message) -> bytes:
    return text_frame(encode(MessageEvent(*msgspec.structs.astuple(msg))))


def _framed_as(build: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """`build`, once per reference: one frame for all who call the room alike."""
    return functools.cache(build)


def _send_each(
    conns: Iterable[Connection],
    aliases: Mapping[Connection, str],
    frame: bytes,
    framed_as: Callable[[str], bytes],
    but: str | None = None,
) -> None:
    """`frame` to each of `conns` (but user `but`'s), framed as its alias for an aliased one."""
    for conn in conns:
        if conn.username != but:
            alias = aliases.get(conn)
            conn.send_frame(frame if alias is None else framed_as(alias))


def store_error(exc: BaseException, room: str) -> ProtocolError:
    """What a failed append means to the client."""
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UnknownRoom):
        return ProtocolError(ErrorCode.NOT_FOUND, f"no room {room!r}")
    if not isinstance(exc, StoreUnavailable):
        log.exception("append failed", exc_info=exc)
    return ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry")


def limit_key(who: Identity) -> str:
    """Whose allowances an action spends: the account's, or a guest socket's address's."""
    return who.limit_key if isinstance(who, Connection) else who.username
