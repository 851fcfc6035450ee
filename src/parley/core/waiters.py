"""Things to do once a room's feed has delivered up to a seq, in the order they were asked.

A plain-text socket's error line must come after the lines of the messages it sent before
(docs/protocol.md "Plain-text mode"). On one node the fan-out of a committed message runs
before its sender hears back; through Redis it comes later, so the error waits here for
the feed to pass its sender's last stored message. Plain data, no I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["SeqWaiters"]


class SeqWaiters:
    """Callbacks keyed by (room, seq), released once that room's feed reaches the seq."""

    def __init__(self) -> None:
        # Empty when nothing waits: the delivery tests it (a dict, no call) per event.
        self.waiting: dict[str, list[tuple[int, int, Callable[[], None]]]] = {}
        self._order = itertools.count()  # ties keep the order they were asked in

    def __bool__(self) -> bool:
        return bool(self.waiting)

    def add(self, room: str, seq: int, then: Callable[[], None]) -> None:
        heapq.heappush(self.waiting.setdefault(room, []), (seq, next(self._order), then))

    def due(self, room: str, delivered: int) -> list[Callable[[], None]]:
        """The callbacks of `room` waiting for a seq up to `delivered`, oldest ask first
        among equal seqs; they are forgotten here."""
        heap = self.waiting.get(room)
        ready: list[Callable[[], None]] = []
        while heap and heap[0][0] <= delivered:
            ready.append(heapq.heappop(heap)[2])
        if heap is not None and not heap:
            del self.waiting[room]
        return ready
