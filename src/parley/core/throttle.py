"""How often a user's typing reaches a room (sans-I/O: the caller passes the clock).

A client sends `typing` on every key press; the room hears it at most once a second per
user, which is all a "typing..." indicator needs.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TYPING_EVERY", "TypingThrottle"]

TYPING_EVERY: Final = 1.0  # at most one typing event per user and room per second
FORGET_AFTER: Final = 5.0  # an entry older than this can no longer hold anything back
PRUNE_ABOVE: Final = 10_000  # entries kept before the stale ones are forgotten


class TypingThrottle:
    """At most one typing event per user and room every `every` seconds."""

    __slots__ = ("_every", "_seen")

    def __init__(self, every: float = TYPING_EVERY) -> None:
        self._every = every
        self._seen: dict[tuple[str, str], float] = {}  # (room, user) -> when it last passed

    def allow(self, room: str, username: str, now: float) -> bool:
        """True if `username`'s typing in `room` at `now` goes out (and counts from now)."""
        key = (room, username)
        every = self._every
        if now - self._seen.get(key, -every) < every:
            return False
        self._seen[key] = now
        if len(self._seen) > PRUNE_ABOVE:  # memory follows who types now, not who ever did
            self._seen = {k: t for k, t in self._seen.items() if now - t < FORGET_AFTER}
        return True

    def __len__(self) -> int:
        """How many (room, user) pairs are remembered."""
        return len(self._seen)
