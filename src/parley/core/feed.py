"""Per-room ordering of published events (messages, edits...) on one node: no gap, no
duplicate.

A broker may deliver a room's messages late, twice or out of order (several
nodes publish; Redis pub/sub may drop while reconnecting). The feed remembers
the last seq it delivered per room; a message that would leave a gap is held
and the adapter is told which range to read from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.protocol import RoomEvent

__all__ = ["Feed", "Gap"]


@dataclass(frozen=True, slots=True)
class Gap:
    room: str
    first: int  # the first missing seq
    last: int  # the last missing seq


@dataclass(slots=True)
class Feed:
    last_seq: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[int, RoomEvent]] = field(default_factory=dict)

    def floor(self, room: str, seq: int) -> int:
        """Record that everything up to `seq` is known (read from the store); returns the floor."""
        current = max(self.last_seq.get(room, 0), seq)
        self.last_seq[room] = current
        return current

    def advance(self, msg: RoomEvent) -> bool:
        """Take `msg` if it is the next of its room with nothing held back there (most
        events): True, and it is deliverable now. False: nothing changed, `accept` it."""
        return self.advance_run(msg.room, msg.seq, msg.seq)

    def advance_run(self, room: str, first: int, last: int) -> bool:
        """`advance` for the events `first` to `last` of `room`, all of them in order."""
        if room in self.held or self.last_seq.get(room, first - 1) != first - 1:
            return False
        self.last_seq[room] = last
        return True

    def accept(self, msg: RoomEvent) -> tuple[list[RoomEvent], Gap | None]:
        """The messages now deliverable in order, and a gap to fill if one opened."""
        last = self.last_seq.get(msg.room)
        if last is None or msg.seq == last + 1:
            self.last_seq[msg.room] = msg.seq
            if msg.room not in self.held:  # nothing held back: most messages
                return [msg], None
            return [msg, *self._release(msg.room)], None
        if msg.seq <= last:
            return [], None
        held = self.held.setdefault(msg.room, {})
        held[msg.seq] = msg
        return [], Gap(msg.room, last + 1, min(held) - 1)

    def pending_gap(self, room: str) -> Gap | None:
        """The gap still open in `room`, if any (used to retry a failed fill)."""
        held = self.held.get(room)
        if not held:
            return None
        return Gap(room, self.last_seq.get(room, 0) + 1, min(held) - 1)

    def _release(self, room: str) -> list[RoomEvent]:
        held = self.held.get(room)
        out: list[RoomEvent] = []
        if not held:
            return out
        nxt = self.last_seq[room] + 1
        while nxt in held:
            out.append(held.pop(nxt))
            nxt += 1
        self.last_seq[room] = nxt - 1
        if not held:
            del self.held[room]
        return out
