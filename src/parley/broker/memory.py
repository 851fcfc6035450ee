"""In-process broker: one node, delivery is a direct call in publish order."""

from __future__ import annotations

from parley.broker.base import Broker, BrokerSink, ClusterEvent
from parley.protocol import Message

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    def __init__(self) -> None:
        self._sink: BrokerSink | None = None

    async def start(self, sink: BrokerSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._sink = None

    def publish_message(self, msg: Message) -> None:
        if self._sink is not None:
            self._sink.on_message(msg)

    def publish_event(self, event: ClusterEvent) -> None:
        if self._sink is not None:
            self._sink.on_event(event)
