"""Redis presence: who is online in a room across several nodes.

Each node keeps, per room, a Redis set of "NODE/USER" entries and a key
`parley:presence:node:NODE` that expires after `NODE_TTL` unless the node's heartbeat
renews it. An entry counts only while its node's key lives, so the users of a node that
dies drop out within `NODE_TTL + 2 * HEARTBEAT + 1` seconds (26 s): a key seen gone is
given one more heartbeat, for a Redis that restarted empty is refilled by the nodes'
heartbeats, and its users must not flap offline meanwhile. Changes are announced on a
pub/sub channel; every node then re-reads the room and tells its clients what changed.
The heartbeat also re-reads every room, which repairs missed announcements and re-creates
everything after a Redis restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Iterable
from typing import Final

from redis.asyncio import Redis

from parley.presence.base import PresenceSink, PresenceTracker
from parley.redisconn import REDIS_DOWN, RedisSubscription, connect_redis, stop_tasks

__all__ = ["RedisPresence"]

log = logging.getLogger("parley.presence")

CHANNEL: Final = b"parley:presence"
HEARTBEAT: Final = 5.0
NODE_TTL: Final = 15  # seconds a node's entries count after its last heartbeat
LOAD_WAIT: Final = 2.0  # how long `online` waits for Redis before answering from local state
FLUSH_WAIT: Final = 2.0  # how long `close` waits for pending writes, then for its own


def _room_key(room: str) -> str:
    return f"parley:presence:room:{room}"


def _node_key(node: str) -> str:
    return f"parley:presence:node:{node}"


class RedisPresence(PresenceTracker):
    def __init__(self, url: str) -> None:
        self.url = url
        self.node = secrets.token_hex(8)
        self._sink: PresenceSink | None = None
        self._redis: Redis | None = None
        self._local: dict[str, set[str]] = {}  # room -> users online on this node
        self._view: dict[
            str, dict[str, set[str]]
        ] = {}  # room -> user -> nodes, where we have users
        self._loaded: set[str] = set()  # rooms whose other nodes' users have been read
        self._ops: asyncio.Queue[tuple[bool, str, str]] = asyncio.Queue()
        # one write at a time: a re-assertion read before a `went` must not land after its SREM
        self._writing = asyncio.Lock()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: RedisSubscription | None = None
        self._keep_until = 0.0  # after a reconnect, nobody is dropped before this (loop time)
        self._alive_at: dict[str, float] = {}  # other node -> when its key was last seen

    async def start(self, sink: PresenceSink) -> None:
        self._sink = sink
        self._redis = connect_redis(self.url)
        self._subscription = RedisSubscription(
            self.url, [CHANNEL], self._announced, self._resubscribed
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscription.run(), name="parley-presence-subscriber"),
            loop.create_task(self._writer(), name="parley-presence-writer"),
            loop.create_task(self._refresher(), name="parley-presence-refresher"),
            loop.create_task(self._heartbeat(), name="parley-presence-heartbeat"),
        ]

    async def close(self) -> None:
        """Leave the cluster: this node's users go offline for the others now, not in 26 s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), FLUSH_WAIT)
        await stop_tasks(self._tasks)
        self._tasks = []
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(*REDIS_DOWN):
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.delete(_node_key(self.node))
                    for room, users in self._local.items():
                        pipe.srem(_room_key(room), *(f"{self.node}/{u}" for u in users))
                        pipe.publish(CHANNEL, room.encode())
                    await asyncio.wait_for(pipe.execute(), FLUSH_WAIT)
            with contextlib.suppress(Exception):
                await redis.aclose()
        self._sink = None

    # --- what this node reports -------------------------------------------------------

    def came(self, room: str, username: str) -> None:
        self._local.setdefault(room, set()).add(username)
        nodes = self._view.setdefault(room, {}).setdefault(username, set())
        newly = not nodes
        nodes.add(self.node)
        if newly:
            self._tell(room, username, True)
        self._ops.put_nowait((True, room, username))

    def went(self, room: str, username: str) -> None:
        users = self._local.get(room)
        if users is None or username not in users:
            return
        users.discard(username)
        view = self._view.get(room, {})
        nodes = view.get(username, set())
        nodes.discard(self.node)
        if not nodes:
            view.pop(username, None)
            self._tell(room, username, False)
        if not users:  # nobody here cares about this room any more
            del self._local[room]
            self._view.pop(room, None)
            self._loaded.discard(room)
        self._ops.put_nowait((False, room, username))

    async def online(self, room: str, here: Iterable[str]) -> list[str]:
        if room not in self._loaded:
            with contextlib.suppress(TimeoutError, *REDIS_DOWN):
                await asyncio.wait_for(self._refresh([room], quiet=True), LOAD_WAIT)
        return sorted(set(self._view.get(room, {})) | set(here))

    async def flush(self) -> None:
        """Return once every `came` and `went` so far is written to Redis (and announced)."""
        await self._ops.join()

    def _tell(self, room: str, username: str, online: bool) -> None:
        if self._sink is not None:
            self._sink.on_presence(room, username, online)

    # --- Redis ----------------------------------------------------------------------

    async def _writer(self) -> None:
        """Apply came/went to Redis in order, then announce the room."""
        while True:
            add, room, username = await self._ops.get()
            try:
                while True:
                    redis = self._redis
                    if redis is None:
                        return
                    try:
                        async with self._writing, redis.pipeline(transaction=False) as pipe:
                            member = f"{self.node}/{username}"
                            if add:
                                pipe.set(_node_key(self.node), b"1", ex=NODE_TTL)
                                pipe.sadd(_room_key(room), member)
                            else:
                                pipe.srem(_room_key(room), member)
                            pipe.publish(CHANNEL, room.encode())
                            await pipe.execute()
                        break
                    except REDIS_DOWN:
                        await asyncio.sleep(1.0)  # the heartbeat re-asserts everything anyway
            finally:
                self._ops.task_done()

    def _announced(self, channel: bytes, data: bytes) -> None:
        room = data.decode(errors="replace")
        if room in self._local:
            self._dirty.add(room)
            self._wake.set()

    async def _resubscribed(self) -> None:
        """After (re)connecting: re-assert our entries, then re-read every room we care about.

        Redis may have restarted empty: until every node's heartbeat has re-asserted its
        entries, a user missing from Redis is not taken for gone.
        """
        if self._subscription is not None and self._subscription.connects > 1:
            self._keep_until = asyncio.get_running_loop().time() + HEARTBEAT + 1.0
        with contextlib.suppress(*REDIS_DOWN):
            await self._assert_entries(announce=True)
        self._dirty.update(self._local)
        self._wake.set()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._assert_entries(announce=False)
            except REDIS_DOWN as exc:
                log.debug("presence heartbeat failed: %s", exc)
                continue
            except Exception:
                log.exception("presence heartbeat failed")
                continue
            self._dirty.update(self._local)
            self._wake.set()

    async def _assert_entries(self, *, announce: bool) -> None:
        redis = self._redis
        if redis is None:
            return
        async with self._writing, redis.pipeline(transaction=False) as pipe:
            pipe.set(_node_key(self.node), b"1", ex=NODE_TTL)
            for room, users in self._local.items():
                if users:
                    pipe.sadd(_room_key(room), *(f"{self.node}/{u}" for u in users))
                    if announce:
                        pipe.publish(CHANNEL, room.encode())
            await pipe.execute()

    async def _refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            rooms = [room for room in self._dirty if room in self._local]
            self._dirty.clear()
            if not rooms:
                continue
            try:
                await self._refresh(rooms)
            except REDIS_DOWN as exc:
                log.debug("presence refresh failed: %s", exc)
            except Exception:  # a bug must not end presence for this node
                log.exception("presence refresh failed")

    def _still_counted(self, nodes: set[str], alive: set[str], now: float) -> set[str]:
        """Of the nodes a user was online on, and whose entry is gone, those that still count.

        An entry gone while its node's key lives is a departure. Gone with the key too, it
        may be a Redis that restarted empty (every node re-asserts its entries within a
        heartbeat) or a node that died: the user counts until a heartbeat has passed since
        the node was last seen alive. So is everyone, just after we reconnected."""
        if now < self._keep_until:
            return nodes - {self.node}
        return {
            n
            for n in nodes - {self.node} - alive
            if now - self._alive_at.get(n, -math.inf) < HEARTBEAT + 1.0
        }

    async def _refresh(self, rooms: list[str], *, quiet: bool = False) -> None:
        """Read who is online in `rooms` on the other live nodes; tell our clients the changes.

        `quiet`: a room's first read for a `joined` answer, which lists everyone already.
        """
        redis = self._redis
        if redis is None:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.smembers(_room_key(room))
            replies: list[set[bytes]] = list(await pipe.execute())
        entries: dict[str, list[tuple[str, str]]] = {}
        nodes = {n for room in rooms for ns in self._view.get(room, {}).values() for n in ns}
        nodes.discard(self.node)
        for room, members in zip(rooms, replies, strict=True):
            pairs = []
            for raw in members:
                node, _, user = raw.decode(errors="replace").partition("/")
                if node != self.node and user:
                    pairs.append((node, user))
                    nodes.add(node)
            entries[room] = pairs
        order = sorted(nodes)
        alive_flags = await redis.mget([_node_key(n) for n in order]) if order else []
        alive = {n for n, flag in zip(order, alive_flags, strict=True) if flag is not None}
        now = asyncio.get_running_loop().time()
        for node in alive:
            self._alive_at[node] = now
        if len(self._alive_at) > 4096:  # nodes that died long ago
            self._alive_at = {n: t for n, t in self._alive_at.items() if now - t < 3600}
        stale: dict[str, list[str]] = {}
        for room in rooms:
            local = self._local.get(room)
            if local is None and not quiet:
                continue  # everyone here left while we were reading
            view: dict[str, set[str]] = {u: {self.node} for u in local or ()}
            for node, user in entries[room]:
                if node in alive:
                    view.setdefault(user, set()).add(node)
                else:
                    stale.setdefault(room, []).append(f"{node}/{user}")
            before = self._view.get(room, {})
            for user, had in before.items():
                if user not in view and (kept := self._still_counted(had, alive, now)):
                    view[user] = kept
            first = room not in self._loaded
            self._view[room] = view
            self._loaded.add(room)
            if quiet and first:
                continue
            for user in sorted(set(view) - set(before)):
                self._tell(room, user, True)
            for user in sorted(set(before) - set(view)):
                self._tell(room, user, False)
        if stale:  # entries of dead nodes: tidy up
            async with redis.pipeline(transaction=False) as pipe:
                for room, dead in stale.items():
                    pipe.srem(_room_key(room), *dead)
                await pipe.execute()
