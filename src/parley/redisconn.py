"""Redis connections that the broker and presence share: a client that fails fast, a pub/sub
subscription that reconnects with backoff and says when it has (re)subscribed, and a way to
stop background tasks for sure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "REDIS_DOWN",
    "RedisSubscription",
    "connect_redis",
    "stop_tasks",
]

log = logging.getLogger("parley.redis")

BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 2.0

REDIS_DOWN: Final = (RedisError, OSError)


def connect_redis(url: str, *, retries: int = 1) -> Redis:
    """A client that fails fast instead of retrying inside redis-py (we reconnect ourselves).

    Command clients retry once, at once: after a Redis restart the pooled connection is dead
    and only a fresh one can tell whether Redis is really away. A pub/sub client must not
    retry at all: redis-py would resubscribe silently, and we must know to catch up.
    """
    client: Redis = Redis.from_url(
        url,
        retry=Retry(NoBackoff(), retries),
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        health_check_interval=5,
    )
    return client


async def stop_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel and wait; cancel again a task that swallowed it (a redis-py timeout may turn a
    cancellation into TimeoutError on Python 3.11, which the reconnect loops then retry)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning at exit


class RedisSubscription:
    """One pub/sub connection kept subscribed to `channels`, reconnecting with backoff.

    `on_message(channel, data)` gets each message; `on_subscribed()` runs after
    every successful (re)subscribe, once the server has confirmed it.
    """

    def __init__(
        self,
        url: str,
        channels: Sequence[bytes],
        on_message: Callable[[bytes, bytes], None],
        on_subscribed: Callable[[], Awaitable[None]],
    ) -> None:
        self.url = url
        self.channels = list(channels)
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.subscribed = asyncio.Event()
        self.connects = 0
        self._quiet = False  # a failed attempt was logged already; say nothing until it works

    async def run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            client = connect_redis(self.url, retries=0)
            pubsub = client.pubsub()
            try:
                await self._subscribe(pubsub)
                self.connects += 1
                if self.connects > 1:
                    log.info("redis: subscribed again to %s", self.url)
                backoff = BACKOFF_MIN
                self._quiet = False
                self.subscribed.set()
                await self.on_subscribed()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        try:
                            self.on_message(msg["channel"], msg["data"])
                        except Exception:  # the sink's bug must not end the subscription
                            log.exception("redis: handling a message failed")
            except REDIS_DOWN as exc:
                if not self._quiet:
                    log.warning("redis: no subscription (%s); reconnecting", exc)
                    self._quiet = True
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(*self.channels)
        confirmed = 0
        while confirmed < len(self.channels):
            msg = await pubsub.get_message(timeout=5.0)
            if msg is None:
                raise TimeoutError("no subscribe confirmation")
            if msg["type"] == "subscribe":
                confirmed += 1
