"""Who is subscribed to which room on this node, and who is online there.

Sans-I/O: the hub never writes to a socket. It keeps three kinds of subscriber
per room and answers the adapter's questions:

- *live* parley.v1 connections get every event as soon as it is delivered;
- *replaying* connections (a `join` with `since` whose catch-up from the store
  is still running) get live events buffered, to be flushed after the replay;
- *plain* connections (the tutorial's no-subprotocol mode) get messages only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
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

    def empty(self) -> bool:
        return not (self.live or self.replaying or self.plain)


class Hub(Generic[C]):
    def __init__(self) -> None:
        self.rooms: dict[str, RoomSubscribers[C]] = {}

    def subscribe(self, conn: C, user: str, room: str, *, plain: bool = False) -> bool:
        """Add `conn` (replaying, unless plain). True when `user` just came online here."""
        subs = self.rooms.setdefault(room, RoomSubscribers())
        if plain:
            subs.plain.add(conn)
        else:
            subs.replaying[conn] = []
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

    def deliver(self, room: str, frame: bytes) -> RoomSubscribers[C] | None:
        """Buffer `frame` for replaying connections; the caller writes to the rest."""
        subs = self.rooms.get(room)
        if subs is None:
            return None
        for buffered in subs.replaying.values():
            buffered.append(frame)
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
