"""How long an HTTP connection may take over its request head, and how many connections a
client address may hold before it has signed in. Sans-I/O: the caller passes the clock,
and does the closing.

A connection's life, as the head timeout sees it:

    HEAD --head parsed--> BUSY --response--> IDLE --first byte--> HEAD ...
                            \\--101 upgrade--> UPGRADED (a WebSocket: no HTTP timeouts)

The head deadline runs in HEAD only: from the connect, and on a kept-alive connection
from the first byte of the next request (the wait before that byte is the keep-alive
timeout's). Body bytes and pipelined requests arrive in BUSY and start no deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

__all__ = ["Admission", "HeadClock", "Phase", "UnauthenticatedCap"]

C = TypeVar("C", bound=Hashable)


class Phase(Enum):
    HEAD = "head"  # waiting for a request head (or the rest of one): the deadline runs
    BUSY = "busy"  # a request is being handled, its body read, or pipelined heads wait
    IDLE = "idle"  # kept alive between requests
    UPGRADED = "upgraded"  # a WebSocket now: its own ping/pong keepalive governs it


class HeadClock:
    """One HTTP connection's place in its request cycle and its head deadline.

    `header_timeout` 0 keeps the phases (the cap needs them) but sets no deadline.
    """

    __slots__ = ("answers", "deadline", "header_timeout", "heads", "partial", "phase")

    def __init__(self, header_timeout: float, now: float) -> None:
        self.header_timeout = header_timeout
        self.phase = Phase.HEAD
        self.heads = 0  # request heads parsed on this connection
        self.answers = 0  # responses started on it
        self.partial = False  # some bytes of the awaited head have come
        self.deadline = self._from(now)

    def _from(self, now: float) -> float | None:
        return now + self.header_timeout if self.header_timeout > 0 else None

    def received(self, now: float, heads: int) -> None:
        """Bytes came in; `heads`: the request heads parsed so far, these bytes included."""
        phase = self.phase
        if phase is Phase.UPGRADED:
            return
        if heads > self.heads:
            self.heads = heads
            self.phase, self.deadline, self.partial = Phase.BUSY, None, False
        elif phase is Phase.IDLE:
            self.phase, self.deadline, self.partial = Phase.HEAD, self._from(now), True
        elif phase is Phase.HEAD:
            self.partial = True

    def answered(self, heads: int) -> None:
        """A response started; once every parsed head has one, the connection is idle.
        `heads` as for `received` (a declined upgrade's tail is parsed without new bytes)."""
        if self.phase is Phase.UPGRADED:
            return
        self.heads = max(self.heads, heads)
        self.answers += 1
        if self.answers >= self.heads:
            self.phase, self.deadline = Phase.IDLE, None

    def upgraded(self) -> None:
        self.phase, self.deadline = Phase.UPGRADED, None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """`admitted`: take the new connection; `evict`: close this idle one to make room."""

    admitted: bool
    evict: C | None = None


class UnauthenticatedCap(Generic[C]):
    """At most `limit` connections per client address that have not signed in; 0: no cap.

    Past the cap, the oldest of that address's connections that is idle between requests
    makes room (closing an idle kept-alive connection is always allowed in HTTP, and
    clients open another), so a crowd behind one NAT address loading the page is not
    refused; only when all of them are busy or awaiting a head is the newest refused.
    """

    __slots__ = ("limit", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting: dict[str, dict[C, None]] = {}  # key -> its connections, oldest first

    def admit(self, key: str, conn: C, idle: Callable[[C], bool]) -> Admission[C]:
        """Count `conn` against `key`; `idle` tells which counted ones may be evicted."""
        if self.limit <= 0:
            return Admission(True)
        conns = self.waiting.setdefault(key, {})
        evict = None
        if len(conns) >= self.limit:
            evict = next((c for c in conns if idle(c)), None)
            if evict is None:
                return Admission(False)
            del conns[evict]
        conns[conn] = None
        return Admission(True, evict)

    def release(self, key: str, conn: C) -> None:
        """It signed in, or closed: it no longer counts."""
        conns = self.waiting.get(key)
        if conns is None:
            return
        conns.pop(conn, None)
        if not conns:
            del self.waiting[key]

    def count(self, key: str) -> int:
        return len(self.waiting.get(key, ()))
