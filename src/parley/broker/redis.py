"""Redis broker: committed messages and cluster events over Redis pub/sub.

Every node publishes on two channels and subscribes to both. A publish is
handed to this node's handler at once and queued for Redis; one background task
sends the queue in order (pipelined), retrying with backoff while Redis is
away. Payloads are msgpack (msgspec) behind the publishing node's id, so a
node skips its own echoes.

Pub/sub is at-most-once: while a subscriber is disconnected, what was
published is gone. So after every (re)subscribe, and every `RESYNC_EVERY`
seconds as a safety net, the broker calls its handler's `resync_from_store()`
(broker/base.py `BrokerEventHandler`): the node reads from the store whatever it
has not delivered yet. The per-room feed drops what it sees twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Final

import msgspec
from redis.asyncio import Redis

from parley.broker.base import AnyEvent, Broker, BrokerEventHandler, ClusterEvent
from parley.protocol import RoomEvent
from parley.redisconn import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    REDIS_DOWN,
    RedisSubscription,
    connect_redis,
    stop_tasks,
)

__all__ = ["RedisBroker"]

log = logging.getLogger("parley.broker")

MESSAGES: Final = b"parley:messages"
EVENTS: Final = b"parley:events"
NODE_ID_BYTES: Final = 8
MAX_PENDING: Final = 100_000  # queued publishes kept while Redis is away; the oldest go first
BATCH: Final = 512
RESYNC_EVERY: Final = 5.0
START_WAIT: Final = 5.0  # how long start() waits for the first subscription


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        self.url = url
        self.node_id = secrets.token_bytes(NODE_ID_BYTES)
        self._handler: BrokerEventHandler | None = None
        self._outbox: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: RedisSubscription | None = None
        self._msg_encoder = msgspec.msgpack.Encoder()
        self._msg_decoder = msgspec.msgpack.Decoder(RoomEvent)
        self._event_decoder = msgspec.msgpack.Decoder(AnyEvent)
        self.dropped = 0  # publishes given up because the outbox overflowed

    async def start(self, handler: BrokerEventHandler) -> None:
        self._handler = handler
        self._subscription = RedisSubscription(
            self.url, [MESSAGES, EVENTS], self._received, self._resync
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscription.run(), name="parley-redis-subscriber"),
            loop.create_task(self._publisher(), name="parley-redis-publisher"),
            loop.create_task(self._resync_timer(), name="parley-redis-resync"),
        ]
        try:
            await asyncio.wait_for(self._subscription.subscribed.wait(), START_WAIT)
        except TimeoutError:
            log.warning(
                "redis: not reachable at %s yet; serving this node alone meanwhile", self.url
            )

    async def close(self) -> None:
        if self._tasks:
            # give queued publishes a moment to leave
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), 2.0)
        await stop_tasks(self._tasks)
        self._tasks = []
        self._handler = None

    @property
    def connected(self) -> bool:
        return self._subscription is not None and self._subscription.subscribed.is_set()

    # --- publishing ---------------------------------------------------------------

    def publish_stored(self, event: RoomEvent) -> None:
        if self._handler is not None:
            self._handler.on_stored(event)
        self._enqueue(MESSAGES, self._msg_encoder.encode(event))

    def publish_stored_all(self, events: Sequence[RoomEvent]) -> None:
        try:
            if self._handler is not None:
                self._handler.on_stored_all(events)
        finally:  # the other nodes hear of them all the same
            for event in events:
                self._enqueue(MESSAGES, self._msg_encoder.encode(event))

    def publish_event(self, event: ClusterEvent) -> None:
        if self._handler is not None:
            self._handler.on_event(event)
        self._enqueue(EVENTS, self._msg_encoder.encode(event))

    def _enqueue(self, channel: bytes, payload: bytes) -> None:
        if self._outbox.qsize() >= MAX_PENDING:
            self._outbox.get_nowait()
            self._outbox.task_done()
            self.dropped += 1  # other nodes catch up from the store on their next resync
        self._outbox.put_nowait((channel, self.node_id + payload))

    async def _publisher(self) -> None:
        client = connect_redis(self.url)
        try:
            while True:
                batch = [await self._outbox.get()]
                while len(batch) < BATCH and not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
                await self._send(client, batch)
                for _ in batch:
                    self._outbox.task_done()
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _send(self, client: Redis, batch: list[tuple[bytes, bytes]]) -> None:
        """Publish in order; on failure retry the whole batch (the feed drops doubles)."""
        backoff = BACKOFF_MIN
        while True:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
                return
            except REDIS_DOWN as exc:
                log.debug("redis: publish failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    # --- receiving ------------------------------------------------------------------

    def _received(self, channel: bytes, data: bytes) -> None:
        handler = self._handler
        if handler is None or data[:NODE_ID_BYTES] == self.node_id:
            return  # our own publish: the handler had it already
        payload = data[NODE_ID_BYTES:]
        try:
            if channel == MESSAGES:
                handler.on_stored(self._msg_decoder.decode(payload))
            elif channel == EVENTS:
                handler.on_event(self._event_decoder.decode(payload))
        except msgspec.DecodeError:
            log.warning("redis: undecodable payload on %r ignored", channel)

    async def _resync(self) -> None:
        handler = self._handler
        if handler is not None:
            try:
                handler.resync_from_store()
            except Exception:
                log.exception("redis: resync failed")

    async def _resync_timer(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY)
            if self.connected:
                await self._resync()
