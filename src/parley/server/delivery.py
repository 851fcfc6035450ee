"""What reaches this node's sockets: messages, presence, typing and read markers, in order,
none twice.

`Delivery` is the broker's event handler (broker/base.py `BrokerEventHandler`) and the
presence tracker's sink: the per-room feed (core/feed.py) puts what the broker delivers in
order, the hub (core/hub.py) says who listens, and the fan-out frames each event once per
way of calling its room. Whatever the broker may have lost is read from the store: a gap
the feed reports, a room catching up before a join, a resync the broker asks for; and a
join with `since` replays what the socket missed (docs/architecture.md, "The resume
path"). The rules (who may join what, how often) are the chat service's (server/chat.py).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final, TypeVar, cast

import msgspec

from parley.broker import (
    AccessCut,
    BrokerEventHandler,
    ClusterEvent,
    Notified,
    ReadMarked,
    RoleChanged,
    TokenRevoked,
    TypingSignal,
    UserBanned,
    UserTokensRevoked,
)
from parley.core import (
    GENERAL,
    RACE_WINDOW,
    ExpiringMap,
    Feed,
    Gap,
    Hub,
    PresenceGrace,
    RecentEvents,
    SeqWaiters,
    SocketState,
    one_line,
)
from parley.presence import PresenceSink, PresenceTracker
from parley.protocol import (
    AccountChanged,
    CloseCode,
    DeleteEvent,
    EditEvent,
    ErrorCode,
    MemberEvent,
    Message,
    MessageEvent,
    Notify,
    Presence,
    ProtocolError,
    ReadEvent,
    Removed,
    RoomEvent,
    TypingEvent,
    encode,
)
from parley.server import metrics
from parley.server.connection import Connection, Flusher, Mode
from parley.server.frames import text_frame
from parley.server.registry import Registry
from parley.store import MessageQuery, RoomRecord, Store, StoreUnavailable

__all__ = [
    "GAP_GRACE",
    "REPLAY_PAGE",
    "Delivery",
    "Subscribed",
    "as_seen",
    "read_events",
    "read_page",
]

S = TypeVar("S", Message, RoomEvent)

REPLAY_PAGE: Final = 500
LOSSES: Final = frozenset(("left", "removed"))  # member changes that take a room away
GAP_GRACE: Final = 0.05  # a reordered message usually arrives within this; then read the store
_ONLY_MESSAGES: Final = {MessageEvent}
_ROOM: Final = attrgetter("room")
_SEQ: Final = attrgetter("seq")


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A socket subscribed to a room, its live events buffered until it goes live."""

    room: str  # the room's key
    last_seq: int  # everything up to it is replayed, everything after it is live
    online: list[str]  # who is online in the room
    came: bool  # the user's first connection here: the room must hear of it


class Delivery(BrokerEventHandler, PresenceSink):
    """Fan-out, replay, gap filling, catch-up and resync for this node's subscribers; the
    broker's event handler and the presence tracker's sink, declared."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        presence: PresenceTracker,
        presence_grace: float = 0.0,
    ) -> None:
        self.store = store
        self.registry = registry  # whose sockets a revocation closes
        self.presence = presence
        self.hub: Hub[Connection] = Hub()
        self.flusher = Flusher()
        self.feed = Feed()
        # what a join with a recent `since` replays from memory (core/recent.py)
        self.recent: RecentEvents[bytes] = RecentEvents(_event_frame)
        self._after: SeqWaiters = SeqWaiters()  # see `after_delivered`
        # (room, username lowercased) -> the count of cuts when it was cut: `cut_since`
        self._cuts: ExpiringMap[tuple[str, str], int] = ExpiringMap(RACE_WINDOW)
        self._cut_count = 0
        self.grace = PresenceGrace(presence_grace)
        self._grace_timer: asyncio.TimerHandle | None = None
        self._filling: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resyncing = False
        self._resync_again = False

    async def start(self) -> None:
        """Start each room's feed after what the store holds; join the cluster's presence."""
        for room, seq in (await self.store.last_seqs()).items():
            self.feed.floor(room, seq)
        await self.presence.start(self)

    async def close(self) -> None:
        """Leave the cluster's presence: this node's users go offline for the others now."""
        await self.presence.close()

    def last_seq(self, room: str) -> int:
        """The last message of `room` this node delivered (0: none yet)."""
        return self.feed.last_seq.get(room, 0)

    def after_delivered(self, room: str, seq: int, then: Callable[[], None]) -> None:
        """Call `then` once this node has delivered `room` up to `seq` (now, if it has)."""
        if self.last_seq(room) >= seq:
            then()
        else:
            self._after.add(room, seq, then)

    # --- subscriptions ----------------------------------------------------------------

    async def subscribe(self, conn: Connection, ref: str, record: RoomRecord) -> Subscribed:
        """`conn` joins the room `record`, which it calls `ref`, caught up to what the store
        holds; until `go_live`, what arrives for it is buffered. The caller answers the
        join with what this returns, then calls `go_live` at once."""
        room = record.room
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
        return Subscribed(room, last_seq, online, came and not went)

    async def go_live(self, conn: Connection, joined: Subscribed, since: int | None) -> None:
        """After the join's answer: announce the user if they just came, replay what the
        socket missed since `since` (up to the `last_seq` it was told), then the buffer,
        then live events."""
        room, last_seq = joined.room, joined.last_seq
        if joined.came:
            self._came(room, conn.username)
        if since is not None and since < last_seq:
            await self._replay(conn, room, since, last_seq)
        for frame in self.hub.go_live(conn, room):
            conn.send_frame(frame)

    def subscribe_plain(self, conn: Connection) -> None:
        """A plain-text socket's one room, `general`: messages only, no replay."""
        conn.rooms.add(GENERAL)
        if self.hub.subscribe(conn, conn.username, GENERAL, plain=True):
            self._came(GENERAL, conn.username)

    def unsubscribe(self, conn: Connection, room: str, *, announce: bool = True) -> None:
        """`conn` leaves `room`; the user's last socket there leaving is announced, unless
        (`announce` False) their coming never was (a join undone before `go_live`)."""
        if room not in conn.rooms:
            return
        conn.rooms.discard(room)
        if self.hub.unsubscribe(conn, conn.username, room) and announce:
            self._went(room, conn.username)

    def unsubscribe_all(self, conn: Connection) -> None:
        """`conn` is gone: out of every room it joined."""
        for room in list(conn.rooms):
            self.unsubscribe(conn, room)

    # --- what the broker delivers (BrokerEventHandler) ----------------------------------

    def on_stored_all(self, events: Sequence[RoomEvent]) -> None:
        """`on_stored` for a batch of this node's sends, in their order: a message that is
        the next of its room, with nobody waiting on its seq, is delivered here without
        the calls and lists `on_stored` makes per event (written out: this is per send)."""
        if len(events) > 1 and self._run_of_one_room(events):
            return
        advance = self.feed.advance
        listened = self.hub.rooms
        add = self.recent.add
        for event in events:
            if type(event) is MessageEvent and not self._after.waiting and advance(event):
                add(event, self._fan_out(event) if event.room in listened else None)
            else:
                self.on_stored(event)

    def _run_of_one_room(self, events: Sequence[RoomEvent]) -> bool:
        """`events` are the next messages of one room, in order (a read's sends, most
        often): deliver them in one step. False: they are not, nothing was done."""
        first, last = events[0], events[-1]
        room = first.room
        if (
            self._after.waiting
            or list(map(_SEQ, events)) != list(range(first.seq, last.seq + 1))
            or set(map(type, events)) != _ONLY_MESSAGES
            or set(map(_ROOM, events)) != {room}
            or not self.feed.advance_run(room, first.seq, last.seq)
        ):
            return False
        messages = cast("Sequence[MessageEvent]", events)
        if room in self.hub.rooms:
            self.recent.extend(room, messages, [self._fan_out(m) for m in messages])
        else:
            self.recent.extend(room, messages, [None] * len(messages))
        return True

    def on_stored(self, event: RoomEvent) -> None:
        deliverable, gap = self.feed.accept(event)
        listened = self.hub.rooms  # (a room nobody here listens to: no call to fan out)
        for ready in deliverable:
            frame = self._fan_out(ready) if ready.room in listened else None
            self.recent.add(ready, frame)
            if isinstance(ready, MemberEvent) and ready.change in LOSSES:
                self._cut(AccessCut(ready.room, ready.username))
            if self._after.waiting:  # right after its seq: before the events after it
                for then in self._after.due(ready.room, ready.seq):
                    then()
        if gap is not None:
            self._fill_later(gap)

    def on_event(self, event: ClusterEvent) -> None:
        if isinstance(event, TypingSignal):
            self._typing_out(event)
        elif isinstance(event, TokenRevoked):
            self.registry.sign_out(event.token_hash)
        elif isinstance(event, UserTokensRevoked):
            self.registry.sign_out_user(event.username, event.keep)
        elif isinstance(event, UserBanned):
            self.registry.sign_out_user(event.username, None, CloseCode.BANNED)
        elif isinstance(event, RoleChanged):
            self._role_out(event)
        elif isinstance(event, ReadMarked):
            self._read_out(event)
        elif isinstance(event, Notified):
            self._notify_out(event)
        elif isinstance(event, AccessCut):
            self._cut(event)

    def resync_from_store(self) -> None:
        """Deliver from the store what the broker may have dropped, in every room this node
        has subscribers in (after the broker reconnects, and now and then)."""
        if self._resyncing:
            self._resync_again = True
            return
        self._resyncing = True
        self._spawn(self._resync())

    # --- what the presence tracker tells (PresenceSink) ---------------------------------

    def on_presence(self, room: str, username: str, online: bool) -> None:
        """`username` came online / went offline in `room` (cluster-wide)."""
        self._presence(room, username, online=online)

    # --- fan-out --------------------------------------------------------------------

    def _fan_out(self, event: RoomEvent) -> bytes | None:
        """Deliver `event` to the room's sockets here; its frame, if it was worth making."""
        subs = self.hub.rooms.get(event.room)
        if subs is None:
            return None  # nobody on this node listens: not even worth encoding
        frame = _event_frame(event)
        if subs.aliases:  # someone calls this room by another name: their own frames
            framed_as = _framed_as(lambda ref: _event_frame(as_seen(event, ref)))
            self.hub.deliver(event.room, frame, framed_as)
            _send_each(subs.live, subs.aliases, frame, framed_as)
        else:
            self.hub.deliver(event.room, frame)
            self.flusher.broadcast(subs.live, frame)
        if subs.plain and (line := plain_line(event)) is not None:
            self.flusher.broadcast(subs.plain, text_frame(line.encode()))
        return frame

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

    def _role_out(self, event: RoleChanged) -> None:
        """The user's admin role changed: their parley.v1 sockets here hear it (one whose
        `hello` is being built gets the change in it: its read of the role may be older)."""
        frame = encode(AccountChanged(event.admin))
        for conn in self.registry.sockets_named(event.username):
            if conn.mode is not Mode.JSON:
                continue
            if conn.reads_before_hello is None:
                conn.send(frame)
            else:
                conn.admin_before_hello = event.admin

    def _read_out(self, event: ReadMarked) -> None:
        """The user's read marker moved: tell each of their parley.v1 sockets here but the
        one that moved it, in its own words for the room."""
        here = event.node == self.registry.node
        for conn in self.registry.sockets_of(event.username):
            if conn.mode is not Mode.JSON or (here and conn.id == event.socket):
                continue
            if (heard := conn.reads_before_hello) is not None:  # `hello` will carry it
                heard[event.room] = max(heard.get(event.room, 0), event.seq)
            else:
                conn.send(encode(ReadEvent(_socket_ref(conn, event.room, event.ref), event.seq)))

    def _notify_out(self, event: Notified) -> None:
        """A message is for some users: tell their parley.v1 sockets that have not joined
        its room (the joined ones get the message itself)."""
        frames: dict[str, bytes] = {}  # by what the socket calls the room
        for username in event.users:
            named = event.refs.get(username, event.room)  # as in the user's room list
            for conn in self.registry.sockets_of(username):
                if conn.mode is not Mode.JSON or event.room in conn.rooms:
                    continue
                ref = _socket_ref(conn, event.room, named)
                if (frame := frames.get(ref)) is None:
                    frame = frames[ref] = encode(Notify(ref, event.seq, event.username, event.text))
                conn.send(frame)

    def cut_mark(self) -> int:
        """A mark to pass to `cut_since`, taken before a join checks its access."""
        return self._cut_count

    def cut_since(self, room: str, username: str, mark: int) -> bool:
        """Whether `username` lost the room keyed `room` after `mark` was taken: a join
        that checked its access before that, and subscribed after, must check again."""
        cut = self._cuts.get((room, username.lower()), time.monotonic())
        return cut is not None and cut > mark

    def _cut(self, event: AccessCut) -> None:
        """`event.username` left the room or was removed: each of their parley.v1 sockets
        here leaves it, forgets that it may use it, and hears `removed`. A plain-text socket
        is only ever in `general`, which nobody loses (a public room is left, not lost)."""
        self._cut_count += 1
        self._cuts.set((event.room, event.username.lower()), self._cut_count, time.monotonic())
        for conn in list(self.registry.sockets_of(event.username)):
            if conn.mode is not Mode.JSON:  # the tutorial's socket: `general` only, for good
                continue
            ref = conn.ref_of(event.room)
            self.unsubscribe(conn, event.room)
            conn.forget(event.room)
            conn.send(encode(Removed(ref)))

    # --- catching up from the store ----------------------------------------------------

    async def _replay(self, conn: Connection, room: str, since: int, upto: int) -> None:
        """Send events (since, upto]: from memory when they are recent (no waiting, so the
        replay leaves in the same write as `joined`), else from the store, a page at a
        time, minding backpressure."""
        if conn.ref_of(room) == room and (frames := self.recent.frames(room, since, upto)):
            metrics.REPLAYS.memory += 1
            for frame in frames:
                conn.send_frame(frame)
            return
        metrics.REPLAYS.store += 1
        after = since
        while after < upto and conn.state is SocketState.OPEN:
            page = await read_events(self.store, room, after)
            page = [e for e in page if e.seq <= upto]
            if not page:
                return
            ref = conn.ref_of(room)
            for event in page:
                conn.send_frame(_event_frame(as_seen(event, ref)))
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
                    page = await read_events(self.store, room, gap.first - 1)
                except ProtocolError:
                    await asyncio.sleep(1.0)  # store down: try again; the feed holds the rest
                    continue
                for event in page:
                    self.on_stored(event)
                if not page:
                    await asyncio.sleep(GAP_GRACE)
        finally:
            self._filling.discard(room)

    async def _catch_up(self, room: str, upto: int) -> None:
        """Feed `room` from the store until this node has delivered everything up to `upto`."""
        while (last := self.feed.last_seq.get(room)) is not None and last < upto:
            page = await read_events(self.store, room, last)
            if not page:
                return
            for event in page:
                self.on_stored(event)

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def read_page(store: Store, query: MessageQuery) -> list[Message]:
    """A page of messages from `store`; unavailable (to retry) while the store is down."""
    try:
        return await store.messages(query)
    except StoreUnavailable:
        raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None


async def read_events(store: Store, room: str, after: int) -> list[RoomEvent]:
    """A page of the room's events after `after`; unavailable while the store is down."""
    try:
        return await store.events(room, after, REPLAY_PAGE)
    except StoreUnavailable:
        raise ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry") from None


def as_seen(msg: S, ref: str) -> S:
    """`msg` (a message or any event) as a user who calls its room `ref` sees it."""
    return msg if msg.room == ref else msgspec.structs.replace(msg, room=ref)


def plain_line(event: RoomEvent) -> str | None:
    """What the tutorial's plain-text client shows of an event: one line, or nothing."""
    if isinstance(event, MessageEvent):  # one message, one line
        files = ", ".join(one_line(f.name) for f in event.attachments)
        text = one_line(event.text)
        if files:
            text = f"{text} (attached: {files})" if text else f"(attached: {files})"
        return f"{event.username}: {text}"
    if isinstance(event, EditEvent):
        return f"* {event.username} edited: {one_line(event.text)}"
    if isinstance(event, DeleteEvent):
        return f"* {event.username} deleted a message"
    return None


def _socket_ref(conn: Connection, key: str, ref: str) -> str:
    """What `conn` calls the room keyed `key`: its own reference once it used the room,
    else `ref` (what its user calls it)."""
    own = conn.ref_of(key)
    return own if conn.key_of(own) == key else ref


def _event_frame(event: RoomEvent) -> bytes:
    return text_frame(encode(event))


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
