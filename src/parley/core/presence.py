"""Presence damping: a user who leaves a room and comes back within a grace was never gone.

Without it every leave and every join of a user's only connection is one presence frame to
each member of the room: a client that joins and leaves in a loop (or a page that reloads,
or a flaky network) makes everybody else's sockets carry its noise. With it, "went offline"
is held for `grace` seconds and dropped if the user comes back meanwhile, so the room hears
at most one "online" and one "offline" per user per grace, whatever the user does.

Sans-I/O: the caller passes the clock, asks what fell due and schedules its own timer.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PresenceGrace"]


class PresenceGrace:
    """Held "went offline" announcements, per room and user, each due `grace` seconds later."""

    __slots__ = ("_due", "_held", "grace")

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._held: dict[str, dict[str, float]] = {}  # room -> user -> deadline
        # (deadline, room, user) in deadline order, as the grace is the same for all; an entry
        # whose user came back (or left again later) is skipped when it falls due.
        self._due: deque[tuple[float, str, str]] = deque()

    @property
    def enabled(self) -> bool:
        return self.grace > 0

    def hold(self, room: str, user: str, now: float) -> float:
        """`user`'s last connection left `room`: hold the announcement. Returns its deadline."""
        deadline = now + self.grace
        self._held.setdefault(room, {})[user] = deadline
        self._due.append((deadline, room, user))
        return deadline

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
        """(room, user) whose grace ran out by `now`: announce them offline now."""
        out: list[tuple[str, str]] = []
        while self._due and self._due[0][0] <= now:
            deadline, room, user = self._due.popleft()
            users = self._held.get(room)
            if users is not None and users.get(user) == deadline:
                self.back(room, user)
                out.append((room, user))
        return out

    def next_deadline(self) -> float | None:
        """When `due` next has something (perhaps a skipped entry); None: nothing held."""
        while self._due:
            deadline, room, user = self._due[0]
            if self._held.get(room, {}).get(user) == deadline:
                return deadline
            self._due.popleft()
        return None

    def lingering(self, room: str) -> list[str]:
        """Users of `room` whose "offline" is held: the room still sees them online."""
        return list(self._held.get(room, ()))
