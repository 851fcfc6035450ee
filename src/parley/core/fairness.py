"""Fair sharing of a scarce worker between clients: one queue per key, served in turn."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Jobs queued per key (a client address) and handed out round-robin between keys.

    A key with a thousand jobs waiting gets one turn, then every other key with work gets
    one, so a newcomer waits for at most one job of each other key, not for a whole flood.
    `max_waiting` bounds the jobs one key may have queued (0: no bound).
    """

    def __init__(self, max_waiting: int = 0) -> None:
        self.max_waiting = max_waiting
        self._queues: dict[str, deque[T]] = {}  # insertion order is the turn order

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def waiting(self, key: str) -> int:
        queue = self._queues.get(key)
        return len(queue) if queue else 0

    def push(self, key: str, job: T) -> bool:
        """Queue `job` for `key`; False (nothing queued) when `key` already has its fill."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        elif 0 < self.max_waiting <= len(queue):
            return False
        queue.append(job)
        return True

    def pop(self) -> T | None:
        """The next job: the first key's oldest; that key then goes to the back of the turn."""
        key = next(iter(self._queues), None)
        if key is None:
            return None
        queue = self._queues.pop(key)
        job = queue.popleft()
        if queue:
            self._queues[key] = queue
        return job
