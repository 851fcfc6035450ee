"""Rate limits as plain objects: callers pass the clock, so tests need no sleeping."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "ALLOWANCES",
    "Action",
    "ActionLimits",
    "Allowance",
    "FailureThrottle",
    "RateLimiter",
    "SignInThrottle",
    "TokenBucket",
    "guest_key",
]


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
    """At most `limit` failures per key within `window` seconds (a sliding log); 0: no limit."""

    limit: int
    window: float
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> float:
        """0.0 when an attempt is allowed now, else seconds to wait."""
        if self.limit <= 0:
            return 0.0
        log = self._recent(key, now)
        if log is None or len(log) < self.limit:
            return 0.0
        return log[0] + self.window - now

    def fail(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        self.failures.setdefault(key, deque()).append(now)
        self._recent(key, now)

    def forget(self, key: str, at: float) -> None:
        """Take back one failure recorded at `at` (an attempt that turned out not to fail)."""
        log = self.failures.get(key)
        if log is None:
            return
        with contextlib.suppress(ValueError):
            log.remove(at)
        if not log:
            del self.failures[key]

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


@dataclass(slots=True)
class SignInThrottle:
    """Password guesses, limited as OWASP advises: a guesser at one address cannot lock the
    owner out (only guessing from many addresses, past the per-name ceiling, can).

    Three sliding windows: per (name, address) `per_pair` failures (the tight one), per
    name `per_name` (a ceiling against guessing from many addresses) and per address
    `per_address` (against spraying many names). An attempt is reserved as a failure
    *before* the password is checked, so concurrent guesses cannot all pass the check
    while the first ones are still hashing; a success takes its reservation back and
    clears its (name, address) pair. `per_pair == 0` turns all three off.
    """

    per_pair: int = 5
    per_name: int = 50
    per_address: int = 20
    window: float = 60.0
    pairs: FailureThrottle = field(init=False)
    names: FailureThrottle = field(init=False)
    addresses: FailureThrottle = field(init=False)

    def __post_init__(self) -> None:
        on = self.per_pair > 0
        self.pairs = FailureThrottle(self.per_pair, self.window)
        self.names = FailureThrottle(self.per_name if on else 0, self.window)
        self.addresses = FailureThrottle(self.per_address if on else 0, self.window)

    def reserve(self, name: str, address: str, now: float) -> float:
        """0.0: the attempt is allowed and counted as a failure from `now` on; else the
        seconds to wait (nothing is counted)."""
        keys = self._keys(name, address)
        wait = max(t.retry_after(k, now) for t, k in keys)
        if wait == 0.0:
            for throttle, key in keys:
                throttle.fail(key, now)
        return wait

    def release(self, name: str, address: str, at: float) -> None:
        """The attempt reserved at `at` was not a guess after all (never checked)."""
        for throttle, key in self._keys(name, address):
            throttle.forget(key, at)

    def succeed(self, name: str, address: str, at: float) -> None:
        """The right password: the reservation is taken back and the pair starts afresh.

        The per-name ceiling keeps others' failures: the owner signing in must not hand a
        distributed guesser a fresh allowance."""
        self.release(name, address, at)
        self.pairs.clear(self._pair(name, address))

    def prune(self, now: float) -> None:
        for throttle in (self.pairs, self.names, self.addresses):
            throttle.prune(now)

    def _keys(self, name: str, address: str) -> tuple[tuple[FailureThrottle, str], ...]:
        return (
            (self.pairs, self._pair(name, address)),
            (self.names, name),
            (self.addresses, address),
        )

    @staticmethod
    def _pair(name: str, address: str) -> str:
        return f"{name}\x00{address}"


class Action(StrEnum):
    """What a client may do only so often: each WebSocket frame type and each HTTP write."""

    SEND = "send"  # WebSocket, plain-text and REST sends share one allowance
    JOIN = "join"
    LEAVE = "leave"
    HISTORY = "history"  # WebSocket history and GET .../messages share one allowance
    TYPING = "typing"
    READ = "read"  # WebSocket read frames and POST .../read share one allowance
    CREATE_ROOM = "create_room"
    INVITE = "invite"
    UPLOAD = "upload"  # POST /api/files
    GUEST_SOCKET = "guest_socket"  # a guest socket opened, counted per client address


@dataclass(frozen=True, slots=True)
class Allowance:
    """A burst of `count` actions, earned back evenly over `period` seconds; 0: unlimited."""

    count: int
    period: float
    refusal: str  # the error message

    def scaled(self, scale: float) -> Allowance:
        """`scale` times as generous (at least one action); 0 or less turns it off."""
        count = 0 if scale <= 0 else max(1, round(self.count * scale))
        return Allowance(count, self.period, self.refusal)


# Generous on purpose: these stop floods, not people. A user's tabs reconnecting at once join
# every room they see (the web client does), so joins allow hundreds; a client paging back
# through history at full speed gets 4 pages a second after a burst of 120; typing is sent
# at most every 3 s per room by the web client, and a client that sends one per keystroke
# stays under 6 a second; a client marks rooms read as messages scroll past, in bursts when
# it catches up on many rooms. The send allowance is `--rate-limit`, per 10 s.
ALLOWANCES: Final[Mapping[Action, Allowance]] = MappingProxyType(
    {
        Action.SEND: Allowance(30, 10.0, "sending too fast"),
        Action.JOIN: Allowance(500, 60.0, "joining rooms too fast"),
        Action.LEAVE: Allowance(500, 60.0, "leaving rooms too fast"),
        Action.HISTORY: Allowance(120, 30.0, "asking for history too fast"),
        Action.TYPING: Allowance(60, 10.0, "sending typing too fast"),
        Action.READ: Allowance(300, 60.0, "marking read too fast"),
        Action.CREATE_ROOM: Allowance(30, 3600.0, "creating rooms too fast"),
        Action.INVITE: Allowance(200, 3600.0, "inviting too fast"),
        Action.UPLOAD: Allowance(100, 600.0, "uploading too fast"),
        Action.GUEST_SOCKET: Allowance(2000, 60.0, "too many guest connections from here"),
    }
)


class ActionLimits:
    """A token bucket per action and key (a user, or a guest's address): spending one
    action's allowance never touches another's, and one key's never another key's."""

    __slots__ = ("_limiters", "_refusals")

    def __init__(self, allowances: Mapping[Action, Allowance]) -> None:
        self._limiters = {
            action: RateLimiter(a.count, a.period) for action, a in allowances.items()
        }
        self._refusals = {action: a.refusal for action, a in allowances.items()}

    @classmethod
    def scaled(cls, sends_per_10s: int, scale: float) -> ActionLimits:
        """The defaults times `scale` (0: off), with `sends_per_10s` as the send allowance
        (0: off), whatever the scale: `--rate-limit` and `--action-limits`."""
        table = {action: a.scaled(scale) for action, a in ALLOWANCES.items()}
        table[Action.SEND] = Allowance(sends_per_10s, 10.0, ALLOWANCES[Action.SEND].refusal)
        return cls(table)

    def check(self, action: Action, key: str, now: float) -> float:
        """Spend one `action` of `key`'s: 0.0 when allowed, else `retry_after` seconds."""
        limiter = self._limiters.get(action)
        return 0.0 if limiter is None else limiter.check(key, now)

    def limiter(self, action: Action) -> RateLimiter:
        """`action`'s own limiter (one without an allowance: off), for a caller that
        spends it often: `limiter(a).check(key, now)` is `check(a, key, now)`."""
        limiter = self._limiters.get(action)
        if limiter is None:
            limiter = self._limiters[action] = RateLimiter(0)
        return limiter

    def refusal(self, action: Action) -> str:
        return self._refusals.get(action, "too fast")

    def prune(self, now: float) -> None:
        for limiter in self._limiters.values():
            limiter.prune(now)

    def tracked(self, action: Action) -> int:
        """How many keys hold a bucket for `action`: the memory `prune` gives back."""
        limiter = self._limiters.get(action)
        return 0 if limiter is None else len(limiter.buckets)


def guest_key(address: str) -> str:
    """Whose allowances a guest spends: every guest socket from one client address alike
    (a fresh socket must not bring a fresh allowance)."""
    return f"guest@{address}"
