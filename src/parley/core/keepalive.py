"""When to ping a socket and when to give up on it, as a pure function of the clock.

One sweep over all sockets every `tick` replaces a timer per socket: an idle socket
costs two floats instead of a scheduled callback, and a busy one costs nothing extra
(any frame from the client counts as a sign of life, a pong included).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["KeepalivePolicy", "Verdict"]


class Verdict(Enum):
    KEEP = "keep"
    PING = "ping"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class KeepalivePolicy:
    """Ping a socket silent for `interval` seconds; drop it if `timeout` passes unanswered."""

    interval: float
    timeout: float

    @property
    def tick(self) -> float:
        """How often to sweep: late by at most a quarter of the shorter period."""
        return max(0.05, min(self.interval, self.timeout) / 4)

    def verdict(self, now: float, heard_at: float, pinged_at: float | None) -> Verdict:
        """`heard_at`: the client's last frame; `pinged_at`: our last ping, if any."""
        if pinged_at is not None and pinged_at > heard_at:  # a ping is out, unanswered
            return Verdict.DROP if now - pinged_at >= self.timeout else Verdict.KEEP
        if now - heard_at >= self.interval:
            return Verdict.PING
        return Verdict.KEEP
