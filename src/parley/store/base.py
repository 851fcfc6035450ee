"""The one storage interface; SQLite and PostgreSQL implement it and pass one test suite."""

from __future__ import annotations

import abc
import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from parley.core.roomnames import name_of, resolve
from parley.protocol import Message
from parley.protocol.fields import TAG_CHARS

__all__ = [
    "MessageQuery",
    "RoomRecord",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "UnknownRoom",
    "UserRecord",
    "new_tag",
    "utc_timestamp",
]


class StoreUnavailable(Exception):
    """The database cannot be reached; nothing was written."""


class UnknownRoom(Exception):
    """A message was sent to a room that does not exist."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Group commit at work, since start (/metrics): writes per commit is the batch size."""

    commits: int  # transactions committed by the send path
    committed_writes: int  # sends (and other writes) those transactions stored


@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    password_hash: str


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


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """A page of history: `after` -> first `limit` above; `before` -> last `limit` below;
    neither -> the latest `limit`. Always returned in ascending seq."""

    room: str
    limit: int = 50
    after: int | None = None
    before: int | None = None


def new_tag() -> str:
    """A room's tag: random, so that it tells nothing about other rooms."""
    return secrets.token_hex(TAG_CHARS // 2)


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
    async def create_user(self, username: str, password_hash: str) -> bool:
        """False when the name is taken (compared case-insensitively)."""

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
    async def set_password(self, username: str, password_hash: str, keep_token: str | None) -> None:
        """A new password hash; in the same transaction every token of the user except
        `keep_token` is deleted (the sessions that did not prove the old password)."""

    @abc.abstractmethod
    async def delete_user_tokens(self, username: str) -> int:
        """Delete every token of the user (sign out everywhere); how many there were."""

    @abc.abstractmethod
    async def purge_expired_tokens(self, now: float) -> int:
        """Delete the tokens that expired before `now`; how many."""

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

    @abc.abstractmethod
    async def add_member(self, room: str, username: str, now: float | None = None) -> None:
        """`username` joins the room keyed `room` (no-op for a member): invited into a
        private room, or using a public one for the first time. `now` defaults to the
        database's clock (one clock for every node)."""

    @abc.abstractmethod
    async def members(self, room: str) -> list[str]: ...

    @abc.abstractmethod
    async def mark_read(self, room: str, username: str, seq: int) -> int | None:
        """Move `username`'s read marker of the room keyed `room` forward to `seq`, or to
        the room's last seq when `seq` is past it; committed on return. The marker now, or
        None when it did not move (it was there or further already)."""

    # messages
    async def append(
        self, room: str, username: str, text: str, client_id: str | None
    ) -> tuple[Message, bool]:
        """Store a message with the room's next seq, in one transaction.

        Returns (message, True) once committed; for a `(username, client_id)` seen
        before, (the first message, False) and nothing is written. Raises UnknownRoom.
        """
        return await self.append_soon(room, username, text, client_id)

    @abc.abstractmethod
    def append_soon(
        self, room: str, username: str, text: str, client_id: str | None
    ) -> asyncio.Future[tuple[Message, bool]]:
        """`append` as a future, for callers that want a callback rather than a task: both
        stores batch their sends for group commit and settle each send's future."""

    @abc.abstractmethod
    async def messages(self, query: MessageQuery) -> list[Message]: ...

    @abc.abstractmethod
    async def last_seqs(self) -> dict[str, int]:
        """Every room's last seq (a node's starting point for ordering)."""
