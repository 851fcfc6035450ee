"""Presence damping: a user who flaps in and out of a room is not announced every time.

Without it every leave and every join of a user's only connection is one presence frame to
each member of the room: a client that joins and leaves in a loop (or a flaky network) makes
everybody else's sockets carry its noise. With it, a user's first "went offline" is
announced at once (so a real departure is seen at once), and opens a quiet period of
`grace` seconds: a further "went offline" within it is held until the period ends, and
dropped if the user comes back meanwhile. So the room hears at most one "offline", one
"online" and one held "offline" per user per grace, whatever the user does.

Sans-I/O: the caller passes the clock, asks what fell due and schedules its own timer.
"""

from __future__ import annotations

import heapq
from collections import deque

__all__ = ["PresenceGrace"]


class PresenceGrace:
    """Per room and user: the quiet period after an announced "offline", and the held
    "offline" announcements, each due when its quiet period ends."""

    __slots__ = ("_due", "_held", "_quiet", "_quiet_order", "grace")

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._held: dict[str, dict[str, float]] = {}  # room -> user -> deadline
        # a heap of (deadline, room, user); an entry whose user came back (or was held
        # again) is skipped when it falls due.
        self._due: list[tuple[float, str, str]] = []
        self._quiet: dict[tuple[str, str], float] = {}  # (room, user) -> end of quiet period
        self._quiet_order: deque[tuple[float, str, str]] = deque()

    @property
    def enabled(self) -> bool:
        return self.grace > 0

    def hold(self, room: str, user: str, now: float) -> float | None:
        """`user`'s last connection left `room`. None: announce it now (a quiet period
        starts); else the deadline until which the announcement is held."""
        self._forget_quiet(now)
        quiet_until = self._quiet.get((room, user))
        if quiet_until is None:
            self._start_quiet(room, user, now)
            return None
        self._held.setdefault(room, {})[user] = quiet_until
        heapq.heappush(self._due, (quiet_until, room, user))
        return quiet_until

    def back(self, room: str, user: str) -> bool:
        """`user` joined `room` again. True when a held "offline" was cancelled: the room
        was never told the user left, so it must not be told the user came."""
        users = self._held.get(room)
        if users is None or users.pop(user, None) is None:
            return False
        if not users:
            del self._held[room]
        return True

    def due(self, now: float) -> list[tuple[str, str]]:
        """(room, user) whose held "offline" fell due by `now`: announce them now (each
        starts a new quiet period)."""
        out: list[tuple[str, str]] = []
        while self._due and self._due[0][0] <= now:
            deadline, room, user = heapq.heappop(self._due)
            users = self._held.get(room)
            if users is not None and users.get(user) == deadline:
                self.back(room, user)
                out.append((room, user))
        self._forget_quiet(now)
        for room, user in out:
            self._start_quiet(room, user, now)
        return out

    def next_deadline(self) -> float | None:
        """When `due` next has something; None: nothing held."""
        while self._due:
            deadline, room, user = self._due[0]
            if self._held.get(room, {}).get(user) == deadline:
                return deadline
            heapq.heappop(self._due)
        return None

    @property
    def remembered(self) -> int:
        """Quiet periods kept (each a user who left a room within the grace)."""
        return len(self._quiet)

    def lingering(self, room: str) -> list[str]:
        """Users of `room` whose "offline" is held: the room still sees them online."""
        return list(self._held.get(room, ()))

    def _start_quiet(self, room: str, user: str, now: float) -> None:
        until = now + self.grace
        self._quiet[room, user] = until
        self._quiet_order.append((until, room, user))

    def _forget_quiet(self, now: float) -> None:
        """Quiet periods that ended: memory follows the users who flap now, not all ever."""
        order = self._quiet_order
        while order and order[0][0] <= now:
            until, room, user = order.popleft()
            if self._quiet.get((room, user)) == until:
                del self._quiet[room, user]
