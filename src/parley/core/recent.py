"""The last events of each room delivered on this node, as the store holds them now: what
a `join` with a recent `since` replays, without a store query per socket.

After a reconnect storm thousands of sockets ask for nearly the same short range of the
same room; each one read from the store cost a query, a thread hand-off and the decoding
of every row again. The window holds the events in the order the feed (core/feed.py)
delivered them, with no gap, and answers only for a range it holds whole; anything else
is the store's to answer.

A message row in the store is the message *as it is now* (edited text, tombstone,
reactions), and a delete also blanks the edits of its target. So an event that changes
an older row (an edit, delete or reaction) empties its room's window, which then starts
again at that event: the window never holds a row the store has changed since.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from parley.protocol import DeleteEvent, EditEvent, ReactionEvent, RoomEvent

__all__ = ["RECENT_EVENTS", "RECENT_ROOMS", "RecentEvents"]

RECENT_EVENTS: Final = 256  # events kept per room
RECENT_ROOMS: Final = 64  # rooms kept: the ones that had an event last
_CHANGES_A_ROW: Final = (EditEvent, DeleteEvent, ReactionEvent)

F = TypeVar("F")


class _Entry(Generic[F]):
    """An event and, once asked for, its frame."""

    __slots__ = ("event", "frame")

    def __init__(self, event: RoomEvent, frame: F | None) -> None:
        self.event = event
        self.frame = frame


class RecentEvents(Generic[F]):
    """Per room, the latest events (at most `size`, in `rooms` rooms), with the frame
    `frame_of` makes of each (made once, when first needed)."""

    def __init__(
        self,
        frame_of: Callable[[RoomEvent], F],
        size: int = RECENT_EVENTS,
        rooms: int = RECENT_ROOMS,
    ) -> None:
        self.frame_of = frame_of
        self.size = size
        self.rooms = rooms
        self._windows: OrderedDict[str, deque[_Entry[F]]] = OrderedDict()

    def add(self, event: RoomEvent, frame: F | None = None) -> None:
        """The feed delivered `event` (the next of its room, or the first after a jump);
        `frame`: its frame, if the caller made it already."""
        room = event.room
        window = self._windows.get(room)
        if window is None:
            window = self._windows[room] = deque(maxlen=self.size)
            if len(self._windows) > self.rooms:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(room)
            if window and (
                window[-1].event.seq + 1 != event.seq or isinstance(event, _CHANGES_A_ROW)
            ):
                window.clear()  # a jump, or an older row changed: start again here
        window.append(_Entry(event, frame))

    def frames(self, room: str, after: int, upto: int) -> list[F] | None:
        """The frames of the room's events `after` < seq <= `upto`, if the window holds every
        one of them; else None (ask the store)."""
        window = self._windows.get(room)
        if not window:
            return None
        first = window[0].event.seq
        last = window[-1].event.seq
        if after < first - 1 or upto > last:
            return None
        out: list[F] = []
        frame_of = self.frame_of
        for i in range(after + 1 - first, upto + 1 - first):
            entry = window[i]
            if entry.frame is None:
                entry.frame = frame_of(entry.event)
            out.append(entry.frame)
        return out

    def forget(self, room: str) -> None:
        """Drop the room's window (its events may have changed where the feed did not see)."""
        self._windows.pop(room, None)
