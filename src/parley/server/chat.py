"""The chat service: the rules of joins, sends, history, typing and rooms.

What a socket or an HTTP request asks goes through here, and only here: access to rooms
(core/roomnames.py), the allowances (core/limits.py), the text and typing rules
(core/names.py, core/throttle.py), the store and the broker. It owns the node's two other
parts and asks them for the rest:

- `Registry` (server/registry.py): the open sockets, by token; keepalive; closing them all;
- `Delivery` (server/delivery.py): what reaches the sockets, as the broker's event handler
  and the presence tracker's sink (fan-out, replay, gap filling, catch-up, resync).

The WebSocket sessions (ws.py) and the HTTP handlers (api.py) are thin callers of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, Protocol

import msgspec
from aiohttp import WSCloseCode

from parley.broker import (
    AccessCut,
    Broker,
    Notified,
    ReadMarked,
    RoleChanged,
    TokenRevoked,
    TypingSignal,
    UserTokensRevoked,
)
from parley.core import (
    DM,
    GENERAL,
    Action,
    ActionLimits,
    KeepalivePolicy,
    TypingThrottle,
    first_use_counts,
    guest_key,
    name_of,
    ref_of,
    references,
    text_refusal,
)
from parley.core.search import match_ranges, query_words
from parley.presence import MemoryPresence, PresenceTracker
from parley.protocol import (
    MAX_TEXT_CHARS,
    Change,
    CloseCode,
    Delete,
    Edit,
    ErrorCode,
    Joined,
    Message,
    MessageEvent,
    ProtocolError,
    React,
    SetTopic,
    as_message,
    encode,
    reply_id,
)
from parley.protocol.fields import FILE_ID_PATTERN, MAX_EMOJI_CHARS
from parley.protocol.http import SearchHit
from parley.server import metrics
from parley.server.admin import AdminService
from parley.server.connection import Connection, Flusher
from parley.server.delivery import Delivery, Subscribed, as_seen, read_page
from parley.server.registry import Registry, close_signed_out
from parley.store import (
    Appended,
    AuditEntry,
    Changed,
    ChangeRequest,
    DeleteRequest,
    EditRequest,
    MemberChange,
    MessageQuery,
    NotAllowed,
    ReactRequest,
    RoomRecord,
    Store,
    Stored,
    StoreStats,
    StoreUnavailable,
    TopicRequest,
    UnknownFile,
    UnknownRoom,
    UnknownTarget,
)
from parley.store.batch import Answered, BatchAnswer, QueuedSend, Sink
from parley.store.roles import CLI_ACTOR

__all__ = ["ChatService", "Identity", "as_seen", "limit_key", "store_error"]

log = logging.getLogger("parley.chat")

DRAIN_SENDS: Final = 10.0  # seconds a shutdown waits for sends in flight to commit
# What an audit entry of the command line does to the account's sockets (`follow_audit`)
_CLI_SIGN_OUTS: Final = {"ban": CloseCode.BANNED, "reset_password": CloseCode.SIGNED_OUT}
_CLI_ROLES: Final = {"grant": True, "revoke": False}  # the role an audit action leaves
_FILE_ID: Final = re.compile(FILE_ID_PATTERN)
AUDIT_LOOKBACK: Final = 100  # audit ids read again each round (`_AuditCursor`)
AUDIT_READ: Final = AUDIT_LOOKBACK + 100  # entries read at most each round
_SEND: Final = Action.SEND


class Identity(Protocol):
    """Who acts: a WebSocket connection or an HTTP request's user."""

    @property
    def username(self) -> str: ...

    @property
    def guest(self) -> bool: ...


class ChatService:
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
        self.registry = Registry()
        self.admin = AdminService(store, broker)
        self.delivery = Delivery(store, self.registry, presence or MemoryPresence(), presence_grace)
        self.limits = ActionLimits.scaled(rate_limit, action_limits)
        self._sends = self.limits.limiter(_SEND)  # (`check_send`: looked up once)
        self.typists = TypingThrottle()
        self.max_guests_per_address = max_guests_per_address  # 0: no cap
        self.draining = False
        self._inflight: set[asyncio.Future[Stored]] = set()  # sends not committed
        self._unanswered = 0  # sends of `submit_then` and `submit_all` not committed
        # One object for all: the store gives a batch's answers to each sink once.
        self._each_sink: Sink = self._answered_each
        self._all_answered: asyncio.Event | None = None  # set while draining, when that is 0
        # The people of each DM this node has seen used: a DM's message notifies them.
        # Nobody joins or leaves a DM, so this never goes stale.
        self._dm_members: dict[str, tuple[str, ...]] = {}
        self._notifying: set[asyncio.Task[None]] = set()  # strong references
        self.registry.recheck = self._recheck_session

    async def start(self) -> None:
        """Open the store, then start delivering (the broker's handler is the delivery)."""
        await self.store.open()
        await self.delivery.start()
        await self.broker.start(self.delivery)

    async def close(self) -> None:
        """After `drain` and the sockets' end: leave the cluster, close the store."""
        await self.broker.close()
        await self.delivery.close()
        await self.store.close()

    async def drain(self, close_code: int) -> None:
        """Shutdown: let in-flight sends commit and ack, then close every socket."""
        self.draining = True
        self._all_answered = asyncio.Event()
        waits: list[asyncio.Future[Any]] = list(self._inflight)
        answered = asyncio.ensure_future(self._all_answered.wait()) if self._unanswered else None
        if answered is not None:
            waits.append(answered)
        if waits:
            await asyncio.wait(waits, timeout=DRAIN_SENDS)
        if answered is not None:
            answered.cancel()
        await self.registry.close_all(close_code)

    async def keep_alive(self, policy: KeepalivePolicy) -> None:
        """Ping silent sockets, drop the ones that stopped answering; runs until cancelled."""
        await self.registry.keep_alive(policy)

    def prune(self, now: float) -> None:
        """Forget idle rate-limit state: memory follows active users, not all ever seen."""
        self.limits.prune(now)

    def store_stats(self) -> StoreStats:
        return self.store.stats()

    # --- sockets ------------------------------------------------------------------------

    @property
    def flusher(self) -> Flusher:
        """Writes out the sockets' queued frames once per loop iteration."""
        return self.delivery.flusher

    def admit_guest(self, address: str) -> None:
        """A guest socket from `address` may open: within the cap of open guest sockets per
        address, and the address's allowance of sockets opened (each one's presence costs
        the room's members two frames, so one that loops must be bounded); else
        rate_limited."""
        key = guest_key(address)
        cap = self.max_guests_per_address
        if cap > 0 and self.registry.guests_open(key) >= cap:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many guest connections open from here", retry_after=1.0
            )
        self._spend_key(key, Action.GUEST_SOCKET)
        self.registry.add_guest(key)

    def release_guest(self, key: str) -> None:
        """A guest socket admitted by `admit_guest` is gone (or never opened)."""
        self.registry.release_guest(key)

    def attach(self, conn: Connection) -> None:
        self.registry.attach(conn)

    def detach(self, conn: Connection) -> None:
        if self.registry.detach(conn):
            self.delivery.unsubscribe_all(conn)

    def _recheck_session(self, conn: Connection, code: CloseCode) -> None:
        """The account's sessions ended while this socket's handshake ran: close it unless
        its session is a later one (signed in again since, or the one that was kept)."""
        task = asyncio.get_running_loop().create_task(self._close_if_ended(conn, code))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _close_if_ended(self, conn: Connection, code: CloseCode) -> None:
        assert conn.token_hash is not None
        try:
            alive = await self.store.token_user(conn.token_hash, time.time())
        except StoreUnavailable:
            conn.close(WSCloseCode.TRY_AGAIN_LATER, "storage unavailable")  # it signs in again
            return
        if alive is None:
            close_signed_out(conn, code)

    def last_seq(self, room: str) -> int:
        """The last message of the room keyed `room` this node delivered (0: none yet)."""
        return self.delivery.last_seq(room)

    def after_delivered(self, room: str, seq: int, then: Callable[[], None]) -> None:
        """Call `then` once this node has delivered the room keyed `room` up to `seq`."""
        self.delivery.after_delivered(room, seq, then)

    # --- access -----------------------------------------------------------------

    async def visible_room(self, who: Identity, ref: str) -> RoomRecord:
        """The room `who` calls `ref` (core/roomnames.py) if they may use it; not_found
        exactly as for a missing room."""
        if who.guest and ref != GENERAL:
            raise ProtocolError(ErrorCode.FORBIDDEN, "guests may only use the general room")
        try:
            record = await self.store.visible_room(ref, who.username)
        except StoreUnavailable:
            raise _unavailable() from None
        if record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no room {ref!r}")
        if record.kind == DM:
            self._dm_members[record.room] = record.members
        if first_use_counts(record):  # from now on it outranks later rooms of its name
            try:
                await self.store.add_member(record.room, who.username)
            except StoreUnavailable:
                raise _unavailable() from None
        return record

    async def may_use(self, conn: Connection, ref: str) -> str:
        """`visible_room` for a socket, remembered until the user leaves or is removed
        (`AccessCut` makes every node forget): a socket asks the store about a room once,
        not on every send. The room's key."""
        key = conn.key_of(ref)
        if key is None:
            key = (await self.visible_room(conn, ref)).room
            conn.allow(ref, key)
        return key

    async def hello_rooms(self, conn: Connection) -> tuple[list[tuple[str, RoomRecord]], bool]:
        """What a socket's `hello` says: the rooms the user sees (as `rooms_of`) and
        whether they are an admin, in one read. The records are kept for the socket's
        first join, which then reads nothing (a reconnect joins right after `hello`): the
        cut mark is taken before the read, so that join checks what changed since, as if
        it had read the room itself (docs/architecture.md, the resume path)."""
        mark = self.delivery.cut_mark()
        try:
            rooms, admin = await self.store.rooms_and_role(conn.username)
        except StoreUnavailable:
            raise _unavailable() from None
        seen = references(rooms)
        conn.hello_rooms = (mark, dict(seen))
        return seen, admin

    def _hello_room(self, conn: Connection, ref: str) -> tuple[RoomRecord, int] | None:
        """The room `hello` read for `ref` and the cut mark taken before that read, once
        (the socket's first join); None when the store must be asked: a room `hello` did
        not show, a first use to record, or any room lost by anyone on this node since
        (cuts are rare, and a removal's trace expires: the mark itself never does)."""
        seen, conn.hello_rooms = conn.hello_rooms, None
        record = seen[1].get(ref) if seen is not None else None
        if seen is None or record is None or first_use_counts(record):
            return None
        if self.delivery.cut_mark() != seen[0]:
            return None
        if record.kind == DM:
            self._dm_members[record.room] = record.members
        return record, seen[0]

    async def rooms_of(self, who: Identity) -> list[tuple[str, RoomRecord]]:
        """The rooms `who` sees, each with what they call it, by that reference."""
        try:
            return references(await self.store.list_rooms(who.username))
        except StoreUnavailable:
            raise _unavailable() from None

    async def create_room(self, who: Identity, name: str, private: bool) -> RoomRecord:
        """A new room `who` owns; conflict only when `who` sees a room of that name (a
        private room hidden from them never says it exists). The caller spends the
        allowance (before it reads the body)."""
        try:
            record = await self.store.create_room(name, private, who.username)
        except StoreUnavailable:
            raise _unavailable() from None
        if record is None:
            raise ProtocolError(ErrorCode.CONFLICT, f"room {name!r} exists")
        return record

    async def members(self, who: Identity, ref: str) -> list[str]:
        record = await self.visible_room(who, ref)
        try:
            return await self.store.members(record.room)
        except StoreUnavailable:
            raise _unavailable() from None

    async def add_member(self, who: Identity, room: RoomRecord, username: str) -> str:
        """`who` makes user `username` a member of `room` (found with `visible_room`: the
        caller spends the allowance and checks access before it reads the body); their
        name as the store spells it, or not_found. Nobody is added to a DM."""
        if room.kind == DM:
            raise ProtocolError(ErrorCode.FORBIDDEN, "nobody is added to a direct message")
        invitee = await self._user(username)
        await self._member_change(MemberChange(room.room, invitee, "invited", who.username))
        return invitee

    async def remove_member(self, who: Identity, ref: str, username: str) -> None:
        """`who` leaves the room they call `ref` (`username` is theirs) or removes
        `username` from it (its owner only). On every node the user's sockets lose the
        room at once; a private room is not_found to them from then on, a public one they
        may join again."""
        room = await self.visible_room(who, ref)
        if room.kind == DM:
            raise ProtocolError(ErrorCode.FORBIDDEN, "nobody leaves a direct message")
        member = await self._user(username)
        leaving = member == who.username
        if not leaving and who.username != room.owner and not await self.is_admin(who):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "only the room's owner or an admin removes members"
            )
        change = MemberChange(room.room, member, "left" if leaving else "removed", who.username)
        if not await self._member_change(change) and room.private:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{member} is not a member of {ref!r}")
        if not room.private:
            # A private room's `member` event cuts access where it is delivered (in order,
            # and read back from the store if the broker lost it); a public room has none.
            self.broker.publish_event(AccessCut(room.room, member))

    async def is_admin(self, who: Identity) -> bool:
        """Whether `who` is a server admin now (a guest never is)."""
        if who.guest:
            return False
        try:
            return await self.admin.is_admin(who.username)
        except StoreUnavailable:
            raise _unavailable() from None

    async def _user(self, username: str) -> str:
        """The registered spelling of `username`, or not_found."""
        try:
            user = await self.store.find_user(username)
        except StoreUnavailable:
            raise _unavailable() from None
        if user is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {username!r}")
        return user.username

    async def _member_change(self, change: MemberChange) -> bool:
        """Store a membership change and publish its event; whether an event was stored
        (only a private room's or a DM's membership has events; nothing changed: none)."""
        try:
            event = await self.store.change_member(change)
        except StoreUnavailable:
            raise _unavailable() from None
        except UnknownRoom:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no room {change.room!r}") from None
        if event is None:
            return False
        self.broker.publish_stored(event)
        return True

    async def open_dm(self, who: Identity, usernames: list[str]) -> tuple[RoomRecord, bool]:
        """The DM of `who` and `usernames` (created, or the one they have: the same set of
        people always gets the same room)."""
        if who.guest:
            raise ProtocolError(ErrorCode.FORBIDDEN, "guests have no direct messages")
        people = {who.username.lower(): who.username}
        for name in usernames:
            found = await self._user(name)
            people[found.lower()] = found
        try:
            # the caller first: the record comes back as its first member sees it
            others = sorted(p for p in people.values() if p != who.username)
            record, created = await self.store.open_dm([who.username, *others])
        except StoreUnavailable:
            raise _unavailable() from None
        self._dm_members[record.room] = record.members
        return record, created

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
        known = self._hello_room(conn, ref)
        if known is not None:
            record, mark = known
        else:
            mark = self.delivery.cut_mark()
            record = await self.visible_room(conn, ref)
        # `joined` first, then the replay, then what was buffered meanwhile: the resume
        # path (docs/architecture.md).
        joined = await self._subscribe(conn, ref, record, mark)
        conn.send(encode(Joined(ref, joined.last_seq, joined.online, reply_id(request_id))))
        await self.delivery.go_live(conn, joined, since)

    async def _subscribe(
        self, conn: Connection, ref: str, record: RoomRecord, mark: int
    ) -> Subscribed:
        """Subscribe `conn` to the room `record` (which `ref` meant when the cut mark was
        `mark`). When the user lost that room meanwhile (the cut missed this socket), ask
        the store again: still out, the join undoes itself and is refused as if it came
        after the cut; `ref` meaning another room now (a private room lost, a public one
        of the same name left), the join is of that room."""
        while True:
            conn.allow(ref, record.room, joining=True)
            joined = await self.delivery.subscribe(conn, ref, record)
            if not self.delivery.cut_since(record.room, conn.username, mark):
                return joined
            mark = self.delivery.cut_mark()
            try:
                fresh = await self.visible_room(conn, ref)
            except ProtocolError:
                self._undo_join(conn, joined)
                raise
            if fresh.room == record.room:
                return joined
            self._undo_join(conn, joined)
            record = fresh

    def _undo_join(self, conn: Connection, joined: Subscribed) -> None:
        self.delivery.unsubscribe(conn, joined.room, announce=not joined.came)
        conn.forget(joined.room)

    def join_plain(self, conn: Connection) -> None:
        """A plain-text socket's one room: `general`, joined when it opens. That counts as a
        join of the account's; a guest's socket spent its address's allowance of guest
        sockets at the handshake instead (`admit_guest`)."""
        if not conn.guest:
            self.spend(conn, Action.JOIN)
        self.delivery.subscribe_plain(conn)

    def leave(self, conn: Connection, ref: str) -> None:
        """A client's leave frame."""
        self.spend(conn, Action.LEAVE)
        room = conn.key_of(ref)
        if room is not None:
            self.delivery.unsubscribe(conn, room)

    def check_send(self, who: Identity, text: str, attachments: Sequence[str] = ()) -> None:
        """The synchronous checks of a send: text (empty only with attachments), the
        attachments' ids, then the sender's rate. Whether the sender uploaded them is the
        store's to check, in the send's transaction."""
        refusal = None if text == "" and attachments else text_refusal(text, MAX_TEXT_CHARS)
        if refusal is not None:
            raise refusal
        for file_id in attachments:
            if not _FILE_ID.search(file_id):
                raise ProtocolError(ErrorCode.NOT_FOUND, f"no file {file_id!r}")
        # `spend`, written out: this runs for every send
        key = who.limit_key if isinstance(who, Connection) else who.username
        retry_after = self._sends.check(key, time.monotonic())
        if retry_after:
            why = self.limits.refusal(_SEND)
            raise ProtocolError(ErrorCode.RATE_LIMITED, why, retry_after=retry_after)

    def submit(
        self,
        who: Identity,
        room: str,
        text: str,
        client_id: str | None,
        on_done: Callable[[asyncio.Future[Stored]], None] | None = None,
        reply_to: int | None = None,
        attachments: Sequence[str] = (),
    ) -> asyncio.Future[Stored]:
        """Queue a message for the store. When it is committed it is published (if new),
        then `on_done` runs (the ack): one callback per message, not two. Checks are the
        caller's (`check_send`, and `check_reply` for a `reply_to`). The same attachment
        twice counts once."""
        if self.draining:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down")
        files = tuple(dict.fromkeys(attachments))
        future = self.store.append_soon(room, who.username, text, client_id, reply_to, files)
        self._inflight.add(future)
        future.add_done_callback(partial(self._committed, time.perf_counter(), on_done))
        return future

    def submit_then(
        self,
        who: Identity,
        room: str,
        text: str,
        client_id: str | None,
        on_done: Callable[[Appended], None],
        reply_to: int | None = None,
        attachments: Sequence[str] = (),
    ) -> None:
        """`submit` without a future: `on_done` gets (message, created) or the exception,
        once, after the COMMIT (or at once when refused), called from the store's settling
        of the whole batch: no future and no loop callback per send (`_answered`)."""
        if self.draining:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down")
        files = tuple(dict.fromkeys(attachments)) if attachments else ()
        self._unanswered += 1
        answer = BatchAnswer(self._each_sink, (time.perf_counter(), on_done))
        self.store.append_then(room, who.username, text, client_id, reply_to, files, answer)

    def submit_all(
        self, who: Identity, sends: Sequence[QueuedSend], then: Callable[[Answered], None]
    ) -> None:
        """`submit_then` for several sends of `who` (each the key of its room and its
        frame; no replies), queued for the store in one call: a socket's sends of one
        read. Once a batch has committed some of them, the new ones are published, then
        `then` gets each one's (frame, result), in their order: one call for them all.
        All are refused alike while shutting down."""
        if self.draining:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "server is shutting down")
        self._unanswered += len(sends)
        self.store.append_all_then(who.username, sends, self._sink(then))

    def _sink(self, then: Callable[[Answered], None]) -> Sink:
        """Where the store hands the answers of sends queued now: one sink per call, whose
        sends were queued, and so are committed, together (the time they waited is taken
        once for all)."""
        return partial(self._answered, time.perf_counter(), then)

    def _answered_each(self, answered: Answered) -> None:
        """The sends of `submit_then` a batch answered (all of them: one sink), in their
        order: each is published if new, then its `on_done` runs, send by send (a plain-text
        socket's lines and error lines keep the order of its sends)."""
        committed = time.perf_counter()
        for (started, on_done), result in answered:
            try:
                if not isinstance(result, BaseException):
                    self._published(committed - started, *result)
                on_done(result)
            except Exception:  # one send's failure leaves the others answered
                log.exception("answering a send failed")
        self._answers_done(len(answered))

    def _answered(
        self, started: float, then: Callable[[Answered], None], answered: Answered
    ) -> None:
        """Sends queued at `started` that a batch answered, in their order: the new ones
        are published, then `then` answers them."""
        ok = [result for _, result in answered if not isinstance(result, BaseException)]
        new = [msg for msg, created in ok if created]
        metrics.ACKS.observe_all(time.perf_counter() - started, len(ok), len(new))
        try:
            self._publish_new(new)
        except Exception:  # the sends are stored: they are answered all the same
            log.exception("publishing sends failed")
        try:
            then(answered)
        except Exception:  # as the loop would for a callback: the batch goes on
            log.exception("answering sends failed")
        self._answers_done(len(answered))

    def _answers_done(self, count: int) -> None:
        self._unanswered -= count
        if not self._unanswered and self._all_answered is not None:
            self._all_answered.set()

    def _published(self, waited: float, msg: MessageEvent, created: bool) -> None:
        """One send committed after `waited` seconds: count its ack time, and publish it
        if it is new (`_publish_new` for one message: no lists built for it)."""
        metrics.ACKS.observe(waited, created=created)
        if created:
            self.broker.publish_stored(msg)
            if msg.mentions or msg.room in self._dm_members:  # else nobody to notify
                self._notify(msg)

    def _publish_new(self, msgs: Sequence[MessageEvent]) -> None:
        """Messages just stored, in their order: to every node, then to the people they
        are for (`_notify`: sockets that have not joined their rooms)."""
        self.broker.publish_stored_all(msgs)
        dms = self._dm_members
        for msg in msgs:
            if msg.mentions or msg.room in dms:  # else nobody to notify
                self._notify(msg)

    def _committed(
        self,
        started: float,
        on_done: Callable[[asyncio.Future[Stored]], None] | None,
        future: asyncio.Future[Stored],
    ) -> None:
        self._inflight.discard(future)
        if not future.cancelled() and future.exception() is None:
            self._published(time.perf_counter() - started, *future.result())
        if on_done is not None:
            on_done(future)

    def _notify(self, msg: Message) -> None:
        """The people a message is for (mentioned, or in its DM) hear of it on their sockets
        that have not joined its room."""
        people = self._dm_members.get(msg.room, ())
        if not msg.mentions and not people:
            return
        users = [u for u in dict.fromkeys((*msg.mentions, *people)) if u != msg.username]
        if not users:
            return
        if people:  # a DM: everyone calls it by its key
            self.broker.publish_event(Notified(msg.room, msg.seq, msg.username, msg.text, users))
            return
        task = asyncio.get_running_loop().create_task(self._notify_named(msg, users))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _notify_named(self, msg: Message, users: list[str]) -> None:
        """Notify `users` of `msg` in a room they may call by different names
        (core/roomnames.py): each hears of it as their room list names it."""
        refs: dict[str, str] = {}
        for user in users:
            try:
                visible = await self.store.rooms_named(name_of(msg.room), user)
            except StoreUnavailable:
                continue  # a notify is a courtesy: without the store, none
            record = next((r for r in visible if r.room == msg.room), None)
            if record is not None:  # else: removed meanwhile
                refs[user] = ref_of(record, visible)
        if refs:
            notified = Notified(msg.room, msg.seq, msg.username, msg.text, list(refs), refs)
            self.broker.publish_event(notified)

    async def check_reply(self, room: str, ref: str, reply_to: int | None) -> None:
        """A reply must answer a message of its room (deleted or not): else not_found."""
        if reply_to is None:
            return
        try:
            found = await self.store.message(room, reply_to)
        except StoreUnavailable:
            raise _unavailable() from None
        if found is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no message {reply_to} in {ref!r}")

    async def send(
        self,
        who: Identity,
        room: str,
        text: str,
        client_id: str | None,
        ref: str | None = None,
        reply_to: int | None = None,
        attachments: Sequence[str] = (),
    ) -> tuple[Message, bool]:
        """Store and publish to the room keyed `room`, which `who` calls `ref` (default: the
        key); returns once committed: (the message as `who` sees it, created). Checks are
        the caller's."""
        try:
            stored, created = await self.submit(
                who, room, text, client_id, reply_to=reply_to, attachments=attachments
            )
        except Exception as exc:
            raise store_error(exc, ref or room) from None
        msg = as_message(stored)  # (the store's is an event, which REST has no `type` for)
        if msg.room != room:  # a resent client_id: the message as first stored, elsewhere
            return msg, created
        return as_seen(msg, ref or room), created

    async def history(self, who: Identity, query: MessageQuery) -> list[Message]:
        """A page of the room `who` calls `query.room`, in those words."""
        self.spend(who, Action.HISTORY)
        record = await self.visible_room(who, query.room)
        page = await read_page(self.store, dataclasses.replace(query, room=record.room))
        if record.room == query.room:
            return page
        return [as_seen(msg, query.room) for msg in page]

    async def search(
        self, who: Identity, text: str, ref: str | None, limit: int
    ) -> list[SearchHit]:
        """The newest messages holding every word of `text` (core/search.py) from the rooms
        `who` may read now, or from the room they call `ref`, each named as they name its
        room and carrying where the words matched."""
        self.spend(who, Action.HISTORY)
        room = None if ref is None else (await self.visible_room(who, ref)).room
        words = query_words(text)
        if not words:  # only separators (quotes, `*`, ...): nothing can match
            return []
        try:
            found = await self.store.search(who.username, words, room, limit)
        except StoreUnavailable:
            raise _unavailable() from None
        if ref is not None:
            names = {room: ref}
        else:  # how the user calls each room (a room removed from them since: left out)
            names = {record.room: name for name, record in await self.rooms_of(who)}
        return [
            SearchHit(
                **msgspec.structs.asdict(as_seen(msg, names[msg.room])),
                matches=match_ranges(msg.text, words),
            )
            for msg in found
            if msg.room in names
        ]

    async def typing(self, conn: Connection, ref: str) -> None:
        self.spend(conn, Action.TYPING)
        room = await self.may_use(conn, ref)
        if self.typists.allow(room, conn.username, time.monotonic()):
            self.broker.publish_event(TypingSignal(room, conn.username))

    async def change(self, who: Identity, frame: Change, conn: Connection | None = None) -> Changed:
        """An edit, delete, reaction or topic (contract v2), spent like a send; committed and
        published before this returns. `conn`: the socket it came from, if any."""
        self.spend(who, Action.SEND)
        _check_change(frame)
        if conn is not None:
            room = await self.may_use(conn, frame.room)
        else:
            room = (await self.visible_room(who, frame.room)).room
        # an admin deletes any message and sets any topic (the store audits it)
        moderator = isinstance(frame, Delete | SetTopic) and await self.is_admin(who)
        try:
            changed = await self.store.change(_request(frame, room, who.username, moderator))
        except UnknownTarget:
            target = getattr(frame, "target", None)
            raise ProtocolError(
                ErrorCode.NOT_FOUND, f"no message {target} in {frame.room!r}"
            ) from None
        except NotAllowed as exc:
            raise ProtocolError(ErrorCode.FORBIDDEN, str(exc)) from None
        except Exception as exc:
            raise store_error(exc, frame.room) from None
        if changed.created and changed.event is not None:
            self.broker.publish_stored(changed.event)
        return changed

    async def message(self, who: Identity, ref: str, seq: int) -> Message:
        """Message `seq` of the room `who` calls `ref`, as it is now, in their words."""
        record = await self.visible_room(who, ref)
        try:
            found = await self.store.message(record.room, seq)
        except StoreUnavailable:
            raise _unavailable() from None
        if found is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no message {seq} in {ref!r}")
        return as_seen(found, ref)

    async def read(self, who: Identity, ref: str, seq: int, conn: Connection | None = None) -> None:
        """`who` has read the room they call `ref` up to `seq` (from socket `conn`, if any):
        the marker moves forward only, to the room's last seq at most, committed before
        this returns; then every other socket of the user's, on every node, hears it.
        Guests have no account to keep a marker in: forbidden."""
        self.spend(who, Action.READ)
        if who.guest:
            raise ProtocolError(ErrorCode.FORBIDDEN, "guests have no read markers")
        if conn is not None:
            room = await self.may_use(conn, ref)
        else:
            room = (await self.visible_room(who, ref)).room
        # named before the commit, so that on one node the events go out in commit order
        ref = await self._reference(who, ref, room)
        try:
            marker = await self.store.mark_read(room, who.username, seq)
        except StoreUnavailable:
            raise _unavailable() from None
        if marker is None:  # not forward: nothing changed, nobody to tell
            return
        socket = 0 if conn is None else conn.id
        node = self.registry.node
        self.broker.publish_event(ReadMarked(who.username, room, ref, marker, node, socket))

    async def _reference(self, who: Identity, ref: str, room: str) -> str:
        """What `who` calls the room keyed `room`, which they just called `ref`: a bare
        name always means the room they call so; `name~tag` may name a room they call by
        its bare name (core/roomnames.py)."""
        if name_of(ref) == ref:
            return ref
        try:
            seen = await self.store.rooms_named(name_of(ref), who.username)
        except StoreUnavailable:  # the marker is stored: name it as the client did
            return ref
        record = next((r for r in seen if r.room == room), None)
        return ref if record is None else ref_of(record, seen)

    async def follow_audit(self, every: float = 1.0) -> None:
        """Close this node's sockets of accounts banned (4003) or whose password was reset
        (4001) by `parley admin`, another process with no broker to tell the nodes: each
        node reads the audit log's new entries every `every` seconds (an indexed range,
        usually empty). Runs until cancelled."""
        cursor = None
        while True:
            try:
                if cursor is None:
                    newest = await self.store.audit_log(limit=1)
                    cursor = _AuditCursor(newest[0].id if newest else 0)
                read = await self.store.audit_log(after=cursor.after, limit=AUDIT_READ)
            except StoreUnavailable:
                read = []  # the next round tries again
            for entry in cursor.new(read) if cursor is not None else ():
                if entry.actor != CLI_ACTOR:
                    continue  # the node that acted told every node through the broker
                if entry.action in _CLI_SIGN_OUTS:
                    self.registry.sign_out_user(entry.target, None, _CLI_SIGN_OUTS[entry.action])
                elif entry.action in _CLI_ROLES:
                    self.delivery.on_event(RoleChanged(entry.target, _CLI_ROLES[entry.action]))
            await asyncio.sleep(every)

    async def revoke(self, token_hash: str) -> None:
        self.broker.publish_event(TokenRevoked(token_hash))

    async def revoke_user(self, username: str, keep: str | None = None) -> None:
        """Close, on every node, the sockets of every session of `username` but `keep`."""
        self.broker.publish_event(UserTokensRevoked(username, keep))


def _check_change(frame: Change) -> None:
    """What decoding cannot check: the text's bounds, an emoji's length in code points."""
    if isinstance(frame, Edit):
        refusal = text_refusal(frame.text, MAX_TEXT_CHARS)
        if refusal is not None:
            raise refusal
    elif isinstance(frame, React) and (
        len(frame.emoji) > MAX_EMOJI_CHARS
        or text_refusal(frame.emoji, MAX_EMOJI_CHARS) is not None  # nothing visible
        or any(unicodedata.category(c) == "Cc" for c in frame.emoji)
    ):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"emoji must be 1 to {MAX_EMOJI_CHARS} characters, visible, no control characters",
        )


class _AuditCursor:
    """The audit entries a node has acted on. PostgreSQL numbers an entry when it is
    written, not when it commits, so an entry can appear below one already read: the
    last AUDIT_LOOKBACK ids are read again each round, and only those not seen are new."""

    def __init__(self, start: int) -> None:
        self.start = start  # the entries up to it were there before the node: not acted on
        self.last = start
        self.seen: set[int] = set()

    @property
    def after(self) -> int:
        return max(self.last - AUDIT_LOOKBACK, self.start)

    def new(self, entries: list[AuditEntry]) -> list[AuditEntry]:
        fresh = [entry for entry in entries if entry.id not in self.seen]
        self.last = max([self.last, *(entry.id for entry in fresh)])
        self.seen = {i for i in self.seen | {e.id for e in fresh} if i > self.after}
        return fresh


def _request(frame: Change, room: str, username: str, moderator: bool) -> ChangeRequest:
    """The store's request for a change frame, in the room keyed `room` (an empty
    client_id: an HTTP request's, which has none); `moderator`: by an admin."""
    client_id = frame.client_id or None
    if isinstance(frame, Edit):
        return EditRequest(room, username, client_id, frame.target, frame.text)
    if isinstance(frame, Delete):
        return DeleteRequest(room, username, client_id, frame.target, moderator)
    if isinstance(frame, React):
        return ReactRequest(room, username, client_id, frame.target, frame.emoji, frame.on)
    assert isinstance(frame, SetTopic)
    return TopicRequest(room, username, client_id, frame.topic, moderator)


def _unavailable() -> ProtocolError:
    return ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry")


def store_error(exc: BaseException, room: str) -> ProtocolError:
    """What a failed append means to the client."""
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UnknownRoom):
        return ProtocolError(ErrorCode.NOT_FOUND, f"no room {room!r}")
    if isinstance(exc, UnknownFile):
        return ProtocolError(ErrorCode.NOT_FOUND, f"no file {exc.args[0]!r} of yours")
    if not isinstance(exc, StoreUnavailable):
        log.exception("append failed", exc_info=exc)
    return ProtocolError(ErrorCode.UNAVAILABLE, "storage unavailable; retry")


def limit_key(who: Identity) -> str:
    """Whose allowances an action spends: the account's, or a guest socket's address's."""
    return who.limit_key if isinstance(who, Connection) else who.username
