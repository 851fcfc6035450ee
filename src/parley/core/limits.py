"""Rate limits as plain objects: callers pass the clock, so tests need no sleeping."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["FailureThrottle", "RateLimiter", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens, refilled evenly over `period` seconds."""

    capacity: float
    period: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float) -> float:
        """Take one token. Returns 0.0 on success, else seconds until one is available."""
        rate = self.capacity / self.period
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.capacity / self.period >= self.capacity


@dataclass(slots=True)
class RateLimiter:
    """One token bucket per key; `per_period == 0` turns limiting off."""

    per_period: int
    period: float = 10.0
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def check(self, key: str, now: float) -> float:
        """0.0 when allowed, else `retry_after` seconds."""
        if self.per_period <= 0:
            return 0.0
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.per_period, self.period, updated=now)
        return bucket.take(now)

    def prune(self, now: float) -> None:
        """Forget full buckets so idle users cost no memory."""
        for key in [k for k, b in self.buckets.items() if b.full(now)]:
            del self.buckets[key]


@dataclass(slots=True)
class FailureThrottle:
    """At most `limit` failures per key within `window` seconds (a sliding log)."""

    limit: int
    window: float
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> float:
        """0.0 when an attempt is allowed now, else seconds to wait."""
        log = self._recent(key, now)
        if log is None or len(log) < self.limit:
            return 0.0
        return log[0] + self.window - now

    def fail(self, key: str, now: float) -> None:
        self.failures.setdefault(key, deque()).append(now)
        self._recent(key, now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose failures all slid out of the window."""
        for key in list(self.failures):
            self._recent(key, now)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        log = self.failures.get(key)
        if log is None:
            return None
        while log and log[0] <= now - self.window:
            log.popleft()
        if not log:
            del self.failures[key]
            return None
        return log
