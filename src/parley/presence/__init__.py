"""Who is online in a room: in-process (one node) and Redis (several)."""

from parley.presence.base import PresenceSink, PresenceTracker
from parley.presence.memory import MemoryPresence

__all__ = ["MemoryPresence", "PresenceSink", "PresenceTracker", "open_presence"]


def open_presence(redis_url: str | None) -> PresenceTracker:
    if redis_url:
        from parley.presence.redis import RedisPresence

        return RedisPresence(redis_url)
    return MemoryPresence()
