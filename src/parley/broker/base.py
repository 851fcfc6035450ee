"""The fan-out interface: how a stored event (a message, an edit...) or an ephemeral event
reaches every node."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

import msgspec

from parley.protocol import RoomEvent

__all__ = [
    "AccessCut",
    "AnyEvent",
    "Broker",
    "BrokerEventHandler",
    "ClusterEvent",
    "Notified",
    "ReadMarked",
    "RoleChanged",
    "TokenRevoked",
    "TypingSignal",
    "UserBanned",
    "UserTokensRevoked",
]


class ClusterEvent(msgspec.Struct, frozen=True, tag_field="kind"):
    """An ephemeral event that every node must see (not stored)."""


class BrokerEventHandler(Protocol):
    """What a node does with what the broker delivers (server/delivery.py `Delivery`)."""

    def on_stored(self, event: RoomEvent) -> None:
        """A committed event of a room's log (a message, an edit, a reaction...), from this
        node or another; maybe late, doubled or reordered."""

    def on_stored_all(self, events: Sequence[RoomEvent]) -> None:
        """`on_stored` for each of `events`, in their order (this node's batch of sends)."""

    def on_event(self, event: ClusterEvent) -> None:
        """An ephemeral event, from this node or another."""

    def resync_from_store(self) -> None:
        """The broker may have lost deliveries (it reconnected; or now and then, to be
        sure): read from the store what was not delivered yet. Returns at once."""


class Broker(abc.ABC):
    """Publishes after COMMIT; delivery may be late, doubled or reordered (the feed copes)."""

    @abc.abstractmethod
    async def start(self, handler: BrokerEventHandler) -> None:
        """Deliver to `handler` from now on, until `close`."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def publish_stored(self, event: RoomEvent) -> None:
        """Hand a committed event of a room's log to every node (this one included)."""

    def publish_stored_all(self, events: Sequence[RoomEvent]) -> None:
        """`publish_stored` for each of `events`, in their order (one call for a batch)."""
        for event in events:
            self.publish_stored(event)

    @abc.abstractmethod
    def publish_event(self, event: ClusterEvent) -> None:
        """Hand an ephemeral event to every node (this one included)."""


class TypingSignal(ClusterEvent, tag="typing", frozen=True):
    room: str
    username: str


class TokenRevoked(ClusterEvent, tag="revoked", frozen=True):
    token_hash: str


class UserTokensRevoked(ClusterEvent, tag="revoked_user", frozen=True):
    """Every session of `username` but `keep` (None: all) ended: close their sockets."""

    username: str
    keep: str | None = None


class UserBanned(ClusterEvent, tag="banned", frozen=True):
    """An admin banned `username` (their sessions are deleted): close their sockets with
    4003 (CloseCode.BANNED)."""

    username: str


class RoleChanged(ClusterEvent, tag="role", frozen=True):
    """An admin granted (`admin`) or revoked `username`'s server-admin role: their open
    parley.v1 sockets hear it at once (an `account` frame)."""

    username: str
    admin: bool


class ReadMarked(ClusterEvent, tag="read", frozen=True):
    """`username`'s read marker of the room keyed `room` moved to `seq`: every socket of
    theirs hears it but the one that moved it (socket `socket` of node `node`; none for
    HTTP). `ref` is what the user calls the room, for sockets that never named it."""

    username: str
    room: str
    ref: str
    seq: int
    node: str = ""
    socket: int = 0


class Notified(ClusterEvent, tag="notify", frozen=True):
    """Message `seq` of the room keyed `room` is for `users` (they are mentioned, or in the
    DM): their sockets that have not joined the room hear of it, under what each user
    calls it (`refs`; the key when missing: a DM)."""

    room: str
    seq: int
    username: str
    text: str
    users: list[str]
    refs: dict[str, str] = msgspec.field(default_factory=dict)


class AccessCut(ClusterEvent, tag="cut", frozen=True):
    """`username` is no longer a member of the room keyed `room` (removed, or left): their
    sockets lose it at once (what they knew of their access is forgotten)."""

    room: str
    username: str


AnyEvent = (
    TypingSignal
    | TokenRevoked
    | UserTokensRevoked
    | UserBanned
    | RoleChanged
    | ReadMarked
    | Notified
    | AccessCut
)
