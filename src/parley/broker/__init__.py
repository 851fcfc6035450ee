"""Fan-out between nodes: in-process (one node) and Redis (several)."""

from parley.broker.base import (
    AnyEvent,
    Broker,
    BrokerEventHandler,
    ClusterEvent,
    ReadMarked,
    TokenRevoked,
    TypingSignal,
    UserTokensRevoked,
)
from parley.broker.memory import MemoryBroker

__all__ = [
    "AnyEvent",
    "Broker",
    "BrokerEventHandler",
    "ClusterEvent",
    "MemoryBroker",
    "ReadMarked",
    "TokenRevoked",
    "TypingSignal",
    "UserTokensRevoked",
    "open_broker",
]


def open_broker(redis_url: str | None) -> Broker:
    if redis_url:
        from parley.broker.redis import RedisBroker

        return RedisBroker(redis_url)
    return MemoryBroker()
