"""The one storage interface; SQLite and PostgreSQL implement it and pass one test suite."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from parley.core.roomnames import name_of, resolve
from parley.protocol import File, Message, MessageEvent, RoomEvent
from parley.protocol.fields import TAG_CHARS

if TYPE_CHECKING:  # (batch.py imports this module)
    from parley.store.batch import Answering, QueuedSend, Sink

__all__ = [
    "Appended",
    "AuditEntry",
    "ChangeRequest",
    "Changed",
    "DeleteRequest",
    "EditRequest",
    "FileRecord",
    "Invite",
    "MemberChange",
    "MessageQuery",
    "NewerSchema",
    "NotAllowed",
    "QuotaExceeded",
    "ReactRequest",
    "Refused",
    "Registration",
    "RoomRecord",
    "SignUp",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "Stored",
    "TopicRequest",
    "UnknownFile",
    "UnknownRoom",
    "UnknownTarget",
    "UnknownUser",
    "UserRecord",
    "UserSummary",
    "dm_tag",
    "new_tag",
    "utc_timestamp",
]


class StoreUnavailable(Exception):
    """The database cannot be reached; nothing was written."""


class NewerSchema(StoreUnavailable):
    """The database was migrated by a newer Parley: this one would not know its tables."""


class UnknownRoom(Exception):
    """A message was sent to a room that does not exist."""


class UnknownTarget(Exception):
    """The seq a change points at is not a message of the room (or one deleted): not_found."""


class UnknownFile(Exception):
    """An attachment that is no file its sender uploaded (or one removed since): not_found."""


class QuotaExceeded(Exception):
    """The upload would take its uploader's stored files past their quota."""


class NotAllowed(Exception):
    """The user may not make this change (someone else's message, not the owner): forbidden."""


class UnknownUser(Exception):
    """No account has that name: not_found."""


class Refused(Exception):
    """An admin action that would break a rule (banning or revoking yourself, the last
    admin, banning an admin): conflict, and nothing changed. The message says why."""


class Registration(StrEnum):
    """Who may create an account with POST /api/register."""

    OPEN = "open"  # anyone
    INVITE = "invite"  # whoever holds a valid invite code
    CLOSED = "closed"  # nobody (`parley admin create-user` still works)


class SignUp(StrEnum):
    """What became of a registration (`Store.register`)."""

    CREATED = "created"
    TAKEN = "taken"  # the name is taken
    CLOSED = "closed"  # registration is closed
    NO_INVITE = "no_invite"  # invite-only, and no valid unused unexpired code was given


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Group commit at work, since start (/metrics): writes per commit is the batch size."""

    commits: int  # transactions committed by the send path
    committed_writes: int  # sends (and other writes) those transactions stored


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str
    admin: bool = False
    banned: bool = False


@dataclass(frozen=True, slots=True)
class UserSummary:
    """An account as the admins' list shows it."""

    username: str
    admin: bool
    banned: bool
    created_at: str  # ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite code; times in epoch seconds. Unused while `used_by` is None."""

    code: str
    created_by: str
    created_at: float
    expires_at: float
    used_by: str | None = None
    used_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin or owner action (docs/protocol.md "Admin" lists the actions)."""

    id: int
    ts: str  # ISO 8601 UTC
    actor: str  # a username, or "@cli" for the command line
    action: str
    target: str
    room: str | None = None  # the room's key, for the actions in a room


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as one user sees it (core/roomnames.py says what they call it)."""

    room: str  # the key its messages are stored under: the name, unless that was taken
    private: bool
    owner: str | None
    last_seq: int
    name: str
    tag: str  # unique; `name~tag` is how a user names it when another room shadows it
    # When the user's membership began: for a private room, the invitation (or creation);
    # for a public room, their first use of it (math.inf when they never used it).
    since: float
    last_read: int = 0  # the user's read marker (contract v2): 0 when never set
    kind: str = "room"  # room | dm
    topic: str = ""
    unread: int = 0  # messages by others after last_read, not deleted
    mentions: int = 0  # those of them that mention the user
    members: tuple[str, ...] = ()  # a DM's people, sorted (empty for other rooms)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file: its bytes are stored once per content (`sha256`), its thumbnail's
    too (`thumb`: the thumbnail's sha256, images only). `created_at`: epoch seconds."""

    id: str
    sha256: str
    name: str
    type: str
    size: int
    width: int | None
    height: int | None
    thumb: str | None
    uploader: str
    created_at: float

    def as_file(self) -> File:
        """What a client sees of it (contract v2 File)."""
        if self.width is None or self.height is None:
            return File(self.id, self.name, self.type, self.size)
        return File(self.id, self.name, self.type, self.size, self.width, self.height)


# --- changes: the events other than messages (contract v2), each stored with the room's
# next seq, idempotent by (username, client_id) like a send.


@dataclass(frozen=True, slots=True)
class EditRequest:
    """`username` replaces the text of their message `target`."""

    room: str
    username: str
    client_id: str | None
    target: int
    text: str


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """`username` takes message `target` back: its author, the room's owner, or anyone
    when `moderator` (an admin)."""

    room: str
    username: str
    client_id: str | None
    target: int
    moderator: bool = False


@dataclass(frozen=True, slots=True)
class ReactRequest:
    room: str
    username: str
    client_id: str | None
    target: int
    emoji: str
    on: bool


@dataclass(frozen=True, slots=True)
class TopicRequest:
    """The room's owner (or anyone when `moderator`) sets its topic."""

    room: str
    username: str
    client_id: str | None
    topic: str
    moderator: bool = False


ChangeRequest = EditRequest | DeleteRequest | ReactRequest | TopicRequest


@dataclass(frozen=True, slots=True)
class Changed:
    """What a change did: `event` is None when it changed nothing (a reaction the user
    already had); `seq` is what its ack carries (the event's, else the room's last seq);
    `created` is False for a (username, client_id) seen before."""

    event: RoomEvent | None
    seq: int
    created: bool


@dataclass(frozen=True, slots=True)
class MemberChange:
    """`username`'s membership of the room changes (`change`: invited | left | removed),
    by `by`."""

    room: str
    username: str
    change: str
    by: str


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """A page of history: `after` -> first `limit` above; `before` -> last `limit` below;
    neither -> the latest `limit`. Always returned in ascending seq."""

    room: str
    limit: int = 50
    after: int | None = None
    before: int | None = None


# A stored send: (the message, created). The message comes as its live event, ready to
# publish (a resend's too), so nothing copies it field by field on the way out.
Stored = tuple[MessageEvent, bool]
Appended = Stored | BaseException  # a send's answer (`Store.append_then`)


def new_tag() -> str:
    """A room's tag: random, so that it tells nothing about other rooms."""
    return secrets.token_hex(TAG_CHARS // 2)


def dm_tag(members: list[str]) -> str:
    """A DM's tag: the same set of people (in any order or case) always gets the same one."""
    joined = "\n".join(sorted({m.lower() for m in members}))
    return hashlib.sha256(joined.encode()).hexdigest()[:TAG_CHARS]


def utc_timestamp(now: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T13:31:20.123Z."""
    moment = now or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Store(abc.ABC):
    """Durable state. Every write is committed before its coroutine returns."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued writes, then disconnect."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Counts of the write path since start."""

    # users and sessions
    @abc.abstractmethod
    async def create_user(self, username: str, password_hash: str, *, admin: bool = False) -> bool:
        """False when the name is taken (compared case-insensitively). The first account
        of the server is an admin, decided in the transaction that creates it (two first
        accounts at once make one admin); so is any account created with `admin`."""

    @abc.abstractmethod
    async def register(
        self, username: str, password_hash: str, invite: str | None, now: float
    ) -> SignUp:
        """`create_user` under the registration mode, read in the same transaction: open
        creates; closed refuses; invite needs `invite` to be a code unused and unexpired
        at `now` (epoch seconds), used up by this account in that transaction."""

    @abc.abstractmethod
    async def find_user(self, username: str) -> UserRecord | None:
        """Case-insensitive lookup; the record carries the registered spelling."""

    @abc.abstractmethod
    async def create_token(self, token_hash: str, username: str, expires_at: float) -> None: ...

    @abc.abstractmethod
    async def token_user(self, token_hash: str, now: float) -> str | None:
        """The user of a live token, or None when unknown, revoked or expired."""

    @abc.abstractmethod
    async def delete_token(self, token_hash: str) -> None: ...

    @abc.abstractmethod
    async def set_password(
        self,
        username: str,
        password_hash: str,
        keep_token: str | None,
        actor: str | None = None,
    ) -> None:
        """A new password hash; in the same transaction every token of the user except
        `keep_token` is deleted (the sessions that did not prove the old password). Set
        by someone else (`actor`: an admin's reset): audited as "reset_password"."""

    @abc.abstractmethod
    async def delete_user_tokens(self, username: str) -> int:
        """Delete every token of the user (sign out everywhere); how many there were."""

    @abc.abstractmethod
    async def purge_expired_tokens(self, now: float) -> int:
        """Delete the tokens that expired before `now`; how many."""

    # admin (docs/protocol.md "Admin"): each change is audited in its own transaction,
    # and changes nothing when it is refused. `actor` is a username or "@cli".
    @abc.abstractmethod
    async def list_users(self, query: str, after: str | None, limit: int) -> list[UserSummary]:
        """Accounts whose name holds `query` (ignoring case), ordered by name ignoring
        case, after the name `after` when given; at most `limit`."""

    @abc.abstractmethod
    async def set_admin(self, actor: str, username: str, admin: bool) -> bool:
        """Grant or revoke the admin role; whether it changed. Raises UnknownUser;
        Refused: revoking yourself or the last admin, granting a banned account."""

    @abc.abstractmethod
    async def set_banned(self, actor: str, username: str, banned: bool) -> bool:
        """Ban (every session of the account ends in the same transaction) or unban;
        whether it changed. Raises UnknownUser; Refused: yourself, or an admin."""

    @abc.abstractmethod
    async def registration(self) -> Registration: ...

    @abc.abstractmethod
    async def set_registration(self, actor: str, mode: Registration) -> bool:
        """Whether it changed."""

    @abc.abstractmethod
    async def create_invite(self, actor: str, code: str, now: float, expires_at: float) -> Invite:
        """A new invite code made by `actor` at `now`."""

    @abc.abstractmethod
    async def invites(self) -> list[Invite]:
        """Every invite code, newest first."""

    @abc.abstractmethod
    async def delete_invite(self, actor: str, code: str) -> bool:
        """False when there is no such code."""

    @abc.abstractmethod
    async def audit_log(
        self, before: int | None = None, limit: int = 50, after: int | None = None
    ) -> list[AuditEntry]:
        """Entries with id below `before` (or above `after`), at most `limit`: newest
        first, or oldest first with `after` (a node following the log)."""

    # rooms
    @abc.abstractmethod
    async def create_room(
        self,
        name: str,
        private: bool,
        owner: str,
        *,
        tag: str | None = None,
        now: float | None = None,
    ) -> RoomRecord | None:
        """None when `owner` sees a room of that name already. Rooms hidden from the owner
        do not count (they must not betray themselves): the new room then gets a key of its
        own. The owner becomes its first member. `tag` and `now` default to a random tag
        and the clock (tests pass them)."""

    async def visible_room(self, ref: str, username: str) -> RoomRecord | None:
        """The room `ref` (`name` or `name~tag`) means to `username`; None when they see
        no such room, exactly as when none exists (never leak)."""
        return resolve(ref, await self.rooms_named(name_of(ref), username))

    @abc.abstractmethod
    async def rooms_named(self, name: str, username: str) -> list[RoomRecord]:
        """The rooms called `name` that `username` may see."""

    @abc.abstractmethod
    async def list_rooms(self, username: str) -> list[RoomRecord]:
        """Public rooms and the private rooms `username` belongs to."""

    async def rooms_and_role(self, username: str) -> tuple[list[RoomRecord], bool]:
        """`list_rooms` and whether `username` is an admin now: what `hello` says. Both
        at once; a store that can, in one read (a reconnect storm asks it per socket)."""
        rooms, user = await asyncio.gather(self.list_rooms(username), self.find_user(username))
        return rooms, user is not None and user.admin

    @abc.abstractmethod
    async def add_member(self, room: str, username: str, now: float | None = None) -> None:
        """`username` joins the room keyed `room` (no-op for a member): invited into a
        private room, or using a public one for the first time. `now` defaults to the
        database's clock (one clock for every node)."""

    @abc.abstractmethod
    async def members(self, room: str) -> list[str]: ...

    @abc.abstractmethod
    async def change_member(self, change: MemberChange) -> RoomEvent | None:
        """Invite (add) or take out (left, removed) a member, in one transaction with the
        `member` event it stores in a private room or DM (a public room has no member
        events: None). None too when nothing changed (already in, or not a member).
        Raises UnknownRoom."""

    @abc.abstractmethod
    async def open_dm(
        self, members: list[str], now: float | None = None
    ) -> tuple[RoomRecord, bool]:
        """The DM of exactly `members` (registered spellings; the caller is one of them):
        created with them as members (True) or the one they already have (False). The
        record is as `members[0]` sees it. Its key is `dm~<dm_tag(members)>`."""

    @abc.abstractmethod
    async def mark_read(self, room: str, username: str, seq: int) -> int | None:
        """Move `username`'s read marker of the room keyed `room` forward to `seq`, or to
        the room's last seq when `seq` is past it; committed on return. The marker now, or
        None when it did not move (it was there or further already)."""

    # messages and the other events
    async def append(
        self,
        room: str,
        username: str,
        text: str,
        client_id: str | None,
        reply_to: int | None = None,
        attachments: tuple[str, ...] = (),
    ) -> Stored:
        """Store a message with the room's next seq, in one transaction, with the users it
        mentions (`@name` of a user who may read the room, not the author) and the
        counters of unread messages.

        Returns (message, True) once committed; for a `(username, client_id)` seen
        before, (the first message, False) and nothing is written. Raises UnknownRoom.
        `reply_to` is the caller's to check (`message`): messages are never removed.
        `attachments`: ids of files `username` uploaded (distinct), else UnknownFile; the
        message carries them (`Message.attachments`) until it is deleted.
        """
        return await self.append_soon(room, username, text, client_id, reply_to, attachments)

    @abc.abstractmethod
    def append_soon(
        self,
        room: str,
        username: str,
        text: str,
        client_id: str | None,
        reply_to: int | None = None,
        attachments: tuple[str, ...] = (),
    ) -> asyncio.Future[Stored]:
        """`append` as a future, for callers that want a callback rather than a task: both
        stores batch their sends for group commit and settle each send's future."""

    @abc.abstractmethod
    def append_then(
        self,
        room: str,
        username: str,
        text: str,
        client_id: str | None,
        reply_to: int | None,
        attachments: tuple[str, ...],
        answer: Answering,
    ) -> None:
        """`append_soon` for a caller that only wants a callback: `answer` (store/batch.py)
        gets (message, created) or the exception, exactly once, after the COMMIT (or at
        once if the send is refused before). Both stores call it while settling the batch,
        with no future and no loop callback per send; a `BatchAnswer` is called once per
        batch with all of its sink's sends."""

    @abc.abstractmethod
    def append_all_then(self, username: str, sends: Sequence[QueuedSend], sink: Sink) -> None:
        """`append_then` for several sends of `username` (no replies): each is (the key of
        its room, its `Send` frame), stored with the frame's text, client_id and
        attachments (one named twice counts once), and answered as a `BatchAnswer` of
        `sink` whose token is the frame. One call for a socket's sends of one read; stored
        in their order."""

    @abc.abstractmethod
    async def change(self, request: ChangeRequest) -> Changed:
        """Store an edit, delete, reaction or topic event with the room's next seq and
        apply it to the message (or room) in the same transaction. Raises UnknownTarget
        (not a message of the room, or a deleted one), NotAllowed, UnknownRoom."""

    @abc.abstractmethod
    async def messages(self, query: MessageQuery) -> list[Message]:
        """A page of the room's messages as they are now; other events are skipped (the
        page's seqs may have holes)."""

    @abc.abstractmethod
    async def message(self, room: str, seq: int) -> Message | None:
        """Message `seq` of the room keyed `room` as it is now; None if no message has it."""

    @abc.abstractmethod
    async def events(self, room: str, after: int, limit: int) -> list[RoomEvent]:
        """The room's events with seq > `after`, ascending, at most `limit`: messages as
        they are now (a replay applies the later events again: applying is idempotent)."""

    @abc.abstractmethod
    async def search(
        self, username: str, words: list[str], room: str | None, limit: int
    ) -> list[Message]:
        """At most `limit` messages, newest first, holding every one of `words` (folded,
        core/search.py `query_words`) as the prefix of one of their words, from the rooms
        `username` may read now (public rooms, private rooms and DMs they are a member
        of), only the room keyed `room` when given. Deleted messages never match; an
        edited one matches its current text only. No words: no messages."""

    @abc.abstractmethod
    async def last_seqs(self) -> dict[str, int]:
        """Every room's last seq (a node's starting point for ordering)."""

    # files (contract v2): stored once per content, readable through the messages that
    # carry them; uploads no message carries are purged after a while.
    @abc.abstractmethod
    async def add_file(
        self, record: FileRecord, content: Path, thumb: Path | None, quota: int
    ) -> None:
        """Store an upload: the bytes of the finished, synced temporary file `content`
        (and of `thumb`, the thumbnail's) under their sha256s, unless stored already, and
        the record, in one transaction. The temporary files are moved or left to the
        caller to delete. QuotaExceeded when the uploader's files would then add up to
        more than `quota` bytes (0: no quota)."""

    @abc.abstractmethod
    async def readable_file(self, file_id: str, username: str) -> FileRecord | None:
        """The file, when `username` uploaded it or may read now a room holding a
        message (not deleted) that carries it; else None, as for a missing file."""

    @abc.abstractmethod
    async def read_blob(self, sha256: str, offset: int, length: int) -> bytes:
        """At most `length` bytes of stored content `sha256` from `offset` (fewer at its
        end); b"" past the end or when it is gone."""

    @abc.abstractmethod
    async def purge_files(self, before: float) -> int:
        """Remove the files no message carries (none ever did, or theirs were deleted)
        uploaded before `before` (epoch seconds), with their bytes unless another file
        has the same content; how many files. Safe with several nodes doing it at once."""
