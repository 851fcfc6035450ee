"""Who is subscribed to which room on this node, and who is online there.

Sans-I/O: the hub never writes to a socket. It keeps three kinds of subscriber
per room and answers the adapter's questions:

- *live* parley.v1 connections get every event as soon as it is delivered;
- *replaying* connections (a `join` with `since` whose catch-up from the store
  is still running) get live events buffered, to be flushed after the replay;
- *plain* connections (the tutorial's no-subprotocol mode) get messages only.

A connection whose user calls the room by another reference than its key (a name shared
with another room they see, core/roomnames.py) is also listed in `aliases`: its frames
name the room differently, so the adapter builds them apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Hub", "RoomSubscribers"]

C = TypeVar("C", bound=Hashable)


@dataclass(slots=True)
class RoomSubscribers(Generic[C]):
    live: set[C] = field(default_factory=set)
    replaying: dict[C, list[bytes]] = field(default_factory=dict)
    plain: set[C] = field(default_factory=set)
    users: Counter[str] = field(default_factory=Counter)
    aliases: dict[C, str] = field(default_factory=dict)  # connection -> its reference

    def empty(self) -> bool:
        return not (self.live or self.replaying or self.plain)


class Hub(Generic[C]):
    def __init__(self) -> None:
        self.rooms: dict[str, RoomSubscribers[C]] = {}

    def subscribe(
        self, conn: C, user: str, room: str, *, plain: bool = False, alias: str | None = None
    ) -> bool:
        """Add `conn` (replaying, unless plain), whose frames call the room `alias` if given.
        True when `user` just came online here."""
        subs = self.rooms.setdefault(room, RoomSubscribers())
        if plain:
            subs.plain.add(conn)
        else:
            subs.replaying[conn] = []
        if alias is not None:
            subs.aliases[conn] = alias
        subs.users[user] += 1
        return subs.users[user] == 1

    def go_live(self, conn: C, room: str) -> list[bytes]:
        """End `conn`'s replay; returns the frames buffered meanwhile, in order."""
        subs = self.rooms.get(room)
        if subs is None or conn not in subs.replaying:
            return []
        buffered = subs.replaying.pop(conn)
        subs.live.add(conn)
        return buffered

    def unsubscribe(self, conn: C, user: str, room: str) -> bool:
        """Remove `conn`. True when that was `user`'s last connection in the room here."""
        subs = self.rooms.get(room)
        if subs is None or not self._discard(subs, conn):
            return False
        subs.aliases.pop(conn, None)
        subs.users[user] -= 1
        gone = subs.users[user] <= 0
        if gone:
            del subs.users[user]
        if subs.empty():
            del self.rooms[room]
        return gone

    def is_subscribed(self, conn: C, room: str) -> bool:
        subs = self.rooms.get(room)
        return subs is not None and (
            conn in subs.live or conn in subs.replaying or conn in subs.plain
        )

    def deliver(
        self, room: str, frame: bytes, framed_as: Callable[[str], bytes] | None = None
    ) -> RoomSubscribers[C] | None:
        """Buffer `frame` for replaying connections (`framed_as(alias)` for an aliased one);
        the caller writes to the rest."""
        subs = self.rooms.get(room)
        if subs is None:
            return None
        aliases = subs.aliases
        for conn, buffered in subs.replaying.items():
            alias = aliases.get(conn) if aliases else None
            buffered.append(frame if alias is None or framed_as is None else framed_as(alias))
        return subs

    def online(self, room: str) -> list[str]:
        subs = self.rooms.get(room)
        return sorted(subs.users) if subs else []

    @staticmethod
    def _discard(subs: RoomSubscribers[C], conn: C) -> bool:
        if conn in subs.live:
            subs.live.discard(conn)
        elif conn in subs.replaying:
            del subs.replaying[conn]
        elif conn in subs.plain:
            subs.plain.discard(conn)
        else:
            return False
        return True
