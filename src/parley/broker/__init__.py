"""Fan-out between nodes: in-process (one node) and Redis (several)."""

from parley.broker.base import (
    AccessCut,
    AnyEvent,
    Broker,
    BrokerEventHandler,
    ClusterEvent,
    Notified,
    ReadMarked,
    RoleChanged,
    TokenRevoked,
    TypingSignal,
    UserBanned,
    UserTokensRevoked,
)
from parley.broker.memory import MemoryBroker

__all__ = [
    "AccessCut",
    "AnyEvent",
    "Broker",
    "BrokerEventHandler",
    "ClusterEvent",
    "MemoryBroker",
    "Notified",
    "ReadMarked",
    "RoleChanged",
    "TokenRevoked",
    "TypingSignal",
    "UserBanned",
    "UserTokensRevoked",
    "open_broker",
]


def open_broker(redis_url: str | None) -> Broker:
    if redis_url:
        from parley.broker.redis import RedisBroker

        return RedisBroker(redis_url)
    return MemoryBroker()
