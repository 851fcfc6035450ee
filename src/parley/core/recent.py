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
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

from parley.protocol import DeleteEvent, EditEvent, MessageEvent, ReactionEvent, RoomEvent

__all__ = ["RECENT_EVENTS", "RECENT_ROOMS", "RecentEvents"]

RECENT_EVENTS: Final = 256  # events kept per room
RECENT_ROOMS: Final = 64  # rooms kept: the ones that had an event last
_CHANGES_A_ROW: Final = (EditEvent, DeleteEvent, ReactionEvent)

F = TypeVar("F")


class _Window(Generic[F]):
    """A room's latest events, and beside each its frame once made (None until then).

    Two deques side by side, not an object per event: `add` runs once per message
    delivered on the node, and an object built per event cost as much as the rest of it.
    """

    __slots__ = ("events", "frames")

    def __init__(self, size: int) -> None:
        self.events: deque[RoomEvent] = deque(maxlen=size)
        self.frames: deque[F | None] = deque(maxlen=size)


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
        self._windows: OrderedDict[str, _Window[F]] = OrderedDict()
        self._newest: str | None = None  # the room that had the last event (the dict's last)

    def add(self, event: RoomEvent, frame: F | None = None) -> None:
        """The feed delivered `event` (the next of its room, or the first after a jump);
        `frame`: its frame, if the caller made it already."""
        changes_a_row = type(event) is not MessageEvent and isinstance(event, _CHANGES_A_ROW)
        window = self._window_for(event.room, event.seq, changes_a_row)
        window.events.append(event)
        window.frames.append(frame)

    def extend(
        self, room: str, messages: Sequence[MessageEvent], frames: Sequence[F | None]
    ) -> None:
        """`add` of each of `messages`, the next messages of `room` in seq order (a batch
        of sends), with their frames: in one step."""
        window = self._window_for(room, messages[0].seq, False)
        window.events.extend(messages)
        window.frames.extend(frames)

    def _window_for(self, room: str, seq: int, restart: bool) -> _Window[F]:
        """`room`'s window, now the newest, ready for its event `seq`: emptied after a
        jump, or when `restart` (the event changes an older row); the oldest room's goes
        past `rooms`."""
        window = self._windows.get(room)
        if window is None:
            window = self._windows[room] = _Window(self.size)
            if len(self._windows) > self.rooms:
                self._windows.popitem(last=False)
        else:
            if room != self._newest:
                self._windows.move_to_end(room)
            events = window.events
            if events and (restart or events[-1].seq + 1 != seq):
                events.clear()  # start again here
                window.frames.clear()
        self._newest = room
        return window

    def frames(self, room: str, after: int, upto: int) -> list[F] | None:
        """The frames of the room's events `after` < seq <= `upto`, if the window holds every
        one of them; else None (ask the store)."""
        window = self._windows.get(room)
        if window is None or not window.events:
            return None
        events, frames = window.events, window.frames
        first = events[0].seq
        last = events[-1].seq
        if after < first - 1 or upto > last:
            return None
        out: list[F] = []
        frame_of = self.frame_of
        for i in range(after + 1 - first, upto + 1 - first):
            frame = frames[i]
            if frame is None:
                frame = frames[i] = frame_of(events[i])
            out.append(frame)
        return out
