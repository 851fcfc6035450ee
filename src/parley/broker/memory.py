"""In-process broker: one node, delivery is a direct call in publish order.

Nothing is ever lost on the way, so it never asks its handler to resync from the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.broker.base import Broker, BrokerEventHandler, ClusterEvent
from parley.protocol import RoomEvent

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    def __init__(self) -> None:
        self._handler: BrokerEventHandler | None = None

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    def publish_stored(self, event: RoomEvent) -> None:
        if self._handler is not None:
            self._handler.on_stored(event)

    def publish_stored_all(self, events: Sequence[RoomEvent]) -> None:
        if self._handler is not None:
            self._handler.on_stored_all(events)

    def publish_event(self, event: ClusterEvent) -> None:
        if self._handler is not None:
            self._handler.on_event(event)
