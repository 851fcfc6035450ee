"""A map whose entries are forgotten `window` seconds after they were last set.

What a race needs remembered for a while (a sign-out a handshake may have missed, a removal
a join may have missed), and no longer: no timer, the caller passes the clock, and old
entries go when the map is next touched. Plain data, no I/O.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["ExpiringMap"]

K = TypeVar("K")
V = TypeVar("V")


class ExpiringMap(Generic[K, V]):
    def __init__(self, window: float) -> None:
        self.window = window
        self._entries: dict[K, tuple[float, V]] = {}  # in the order they were last set

    def __len__(self) -> int:
        return len(self._entries)

    def set(self, key: K, value: V, now: float) -> None:
        self._forget_old(now)
        self._entries.pop(key, None)  # set again: now the newest, so the order stays by time
        self._entries[key] = (now, value)

    def get(self, key: K, now: float) -> V | None:
        self._forget_old(now)
        found = self._entries.get(key)
        return None if found is None else found[1]

    def _forget_old(self, now: float) -> None:
        """Drop what is older than the window; one comparison when nothing is."""
        horizon = now - self.window
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] >= horizon:
                break
            del entries[oldest]
