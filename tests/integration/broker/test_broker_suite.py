"""The Broker and presence contracts, on the in-process implementations and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from parley.broker import (
    Broker,
    ClusterEvent,
    MemoryBroker,
    TokenRevoked,
    TypingSignal,
    UserTokensRevoked,
)
from parley.broker.redis import RedisBroker
from parley.presence import MemoryPresence
from parley.presence.redis import RedisPresence
from parley.protocol import Message
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(90)

WAIT = 15.0  # an upper bound for things that normally take milliseconds


class Recorder:
    """A node as the broker and the presence tracker see it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.events: list[ClusterEvent] = []
        self.presence: list[tuple[str, str, bool]] = []
        self.resyncs = 0
        self._changed = asyncio.Event()

    def on_message(self, msg: Message) -> None:
        self.messages.append(msg)
        self._changed.set()

    def on_event(self, event: ClusterEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def on_presence(self, room: str, username: str, online: bool) -> None:
        self.presence.append((room, username, online))
        self._changed.set()

    def resync_from_store(self) -> None:
        self.resyncs += 1
        self._changed.set()

    async def until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        async def wait() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), within)


def msg(seq: int, room: str = "general", text: str | None = None) -> Message:
    return Message(room, seq, "ann", text or f"m{seq}", "2026-11-25T13:31:20.123Z", f"c{seq}")


@asynccontextmanager
async def started(broker: Broker, sink: Recorder) -> AsyncIterator[Broker]:
    await broker.start(sink)
    try:
        yield broker
    finally:
        await broker.close()


# --- one node: both implementations ------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make_broker(request: pytest.FixtureRequest) -> Callable[[], Broker]:
    if request.param == "memory":
        return MemoryBroker
    server: RedisServer = request.getfixturevalue("redis_server")
    return lambda: RedisBroker(server.url)


async def test_a_node_gets_its_own_messages_once_in_order(
    make_broker: Callable[[], Broker],
) -> None:
    sink = Recorder()
    async with started(make_broker(), sink) as broker:
        for seq in range(1, 51):
            broker.publish_message(msg(seq))
        broker.publish_event(TypingSignal("general", "ann"))
        await sink.until(lambda: len(sink.messages) >= 50 and len(sink.events) >= 1)
        await asyncio.sleep(0.2)  # a late echo would show up now
    assert [m.seq for m in sink.messages] == list(range(1, 51))
    assert sink.messages[0] == msg(1)
    assert sink.events == [TypingSignal("general", "ann")]


async def test_revoking_a_users_sessions_reaches_every_node(
    make_broker: Callable[[], Broker],
) -> None:
    """Password change (keep this session) and sign-out-everywhere (keep none): two nodes
    on Redis; the memory broker is one node and delivers to itself."""
    events = [UserTokensRevoked("Ann", "kept-token-hash"), UserTokensRevoked("bea")]
    sinks = [Recorder(), Recorder()]
    brokers = [make_broker() for _ in sinks]
    for broker, sink in zip(brokers, sinks, strict=True):
        await broker.start(sink)
    try:
        for event in events:
            brokers[0].publish_event(event)
        for sink in sinks if isinstance(brokers[0], RedisBroker) else sinks[:1]:
            await sink.until(lambda s=sink: len(s.events) >= 2)
            assert sink.events == events
    finally:
        for broker in brokers:
            await broker.close()


# --- several nodes: Redis -------------------------------------------------------------------


async def test_messages_and_events_reach_every_node(redis_server: RedisServer) -> None:
    sinks = [Recorder() for _ in range(3)]
    brokers = [RedisBroker(redis_server.url) for _ in sinks]
    for broker, sink in zip(brokers, sinks, strict=True):
        await broker.start(sink)
    try:
        for seq in range(1, 201):
            brokers[seq % 3].publish_message(msg(seq, text="ünïcødé ✓" * (seq % 3)))
        brokers[1].publish_event(TypingSignal("general", "bea"))
        brokers[2].publish_event(TokenRevoked("abc123"))
        for sink in sinks:
            await sink.until(lambda s=sink: len(s.messages) >= 200 and len(s.events) >= 2)
        await asyncio.sleep(0.2)
    finally:
        for broker in brokers:
            await broker.close()
    for sink in sinks:
        assert sorted(m.seq for m in sink.messages) == list(range(1, 201))  # each exactly once
        assert sorted(sink.events, key=repr) == [
            TokenRevoked("abc123"),
            TypingSignal("general", "bea"),
        ]
        assert next(m for m in sink.messages if m.seq == 5).text == "ünïcødé ✓" * 2
    # one publisher's messages arrive in its order
    from_one = [m.seq for m in sinks[0].messages if m.seq % 3 == 1]
    assert from_one == sorted(from_one)


async def test_after_a_redis_restart_nodes_resync_and_publish_again(
    redis_server: RedisServer,
) -> None:
    a_sink, b_sink = Recorder(), Recorder()
    a, b = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    await a.start(a_sink)
    await b.start(b_sink)
    try:
        assert a_sink.resyncs >= 1  # right after the first subscribe
        a.publish_message(msg(1))
        await b_sink.until(lambda: len(b_sink.messages) == 1)
        resyncs_before = b_sink.resyncs

        redis_server.stop()
        a.publish_message(msg(2))  # queued while Redis is away
        await asyncio.sleep(0.5)
        redis_server.start()

        # B re-subscribes and asks its node to catch up from the store
        await b_sink.until(lambda: b_sink.resyncs > resyncs_before)
        a.publish_message(msg(3))
        await b_sink.until(lambda: 3 in {m.seq for m in b_sink.messages})
        # 2 may have reached Redis before B was back (B's node reads it from the store), never twice
        assert [m.seq for m in b_sink.messages] in ([1, 3], [1, 2, 3])
        assert [m.seq for m in a_sink.messages] == [1, 2, 3]  # locally, at once
    finally:
        await a.close()
        await b.close()


async def test_a_node_starts_while_redis_is_down(redis_server: RedisServer) -> None:
    redis_server.stop()
    sink = Recorder()
    broker = RedisBroker(redis_server.url)
    await broker.start(sink)  # gives up waiting after a few seconds, keeps trying
    try:
        broker.publish_message(msg(1))
        assert [m.seq for m in sink.messages] == [1]
        redis_server.start()
        await sink.until(lambda: sink.resyncs >= 1)
    finally:
        await broker.close()


# --- presence ---------------------------------------------------------------------------


async def test_memory_presence_is_this_nodes_users() -> None:
    sink = Recorder()
    presence = MemoryPresence()
    await presence.start(sink)
    presence.came("general", "ann")
    assert await presence.online("general", ["ann"]) == ["ann"]
    presence.went("general", "ann")
    assert sink.presence == [("general", "ann", True), ("general", "ann", False)]
    await presence.close()


@asynccontextmanager
async def presence_nodes(
    url: str, count: int
) -> AsyncIterator[list[tuple[RedisPresence, Recorder]]]:
    nodes = [(RedisPresence(url), Recorder()) for _ in range(count)]
    for tracker, sink in nodes:
        await tracker.start(sink)
    try:
        yield nodes
    finally:
        for tracker, _ in nodes:
            await tracker.close()


async def test_presence_is_cluster_wide(redis_server: RedisServer) -> None:
    async with presence_nodes(redis_server.url, 2) as [(a, a_sink), (b, b_sink)]:
        a.came("general", "ann")
        assert a_sink.presence == [("general", "ann", True)]  # at once, locally
        await asyncio.wait_for(a._ops.join(), WAIT)  # A has written it to Redis
        assert await b.online("general", []) == ["ann"]  # what a joiner on B is told
        b.came("general", "bob")
        assert await b.online("general", ["bob"]) == ["ann", "bob"]
        await a_sink.until(lambda: ("general", "bob", True) in a_sink.presence)

        b.came("general", "ann")  # ann opens a second connection, on B: not news
        await asyncio.sleep(0.3)
        a.went("general", "ann")  # ann leaves A but is still on B: still online
        await asyncio.sleep(0.3)
        assert ("general", "ann", False) not in b_sink.presence
        assert await b.online("general", ["ann", "bob"]) == ["ann", "bob"]

        b.went("general", "ann")  # now she is gone everywhere
        await b_sink.until(lambda: ("general", "ann", False) in b_sink.presence)
        assert await b.online("general", ["bob"]) == ["bob"]


async def test_users_of_a_dead_node_drop_out_within_30s(redis_server: RedisServer) -> None:
    async with presence_nodes(redis_server.url, 1) as [(b, b_sink)]:
        doomed = RedisPresence(redis_server.url)
        await doomed.start(Recorder())
        b.came("general", "bob")
        doomed.came("general", "dan")
        await b_sink.until(lambda: ("general", "dan", True) in b_sink.presence)
        # the node dies: its tasks stop, nothing is cleaned up in Redis
        for task in doomed._tasks:
            task.cancel()
        await b_sink.until(lambda: ("general", "dan", False) in b_sink.presence, within=30)
        assert await b.online("general", ["bob"]) == ["bob"]


async def test_presence_comes_back_after_a_redis_restart(redis_server: RedisServer) -> None:
    async with presence_nodes(redis_server.url, 2) as [(a, a_sink), (b, _)]:
        a.came("general", "ann")
        b.came("general", "bob")
        await a_sink.until(lambda: ("general", "bob", True) in a_sink.presence)
        redis_server.stop()
        redis_server.start()  # empty: every entry is gone until the nodes re-assert them
        c = RedisPresence(redis_server.url)
        await c.start(Recorder())
        try:
            c.came("general", "cid")

            async def sees_everyone() -> None:
                while await c.online("general", ["cid"]) != ["ann", "bob", "cid"]:
                    c._loaded.discard("general")  # read Redis again, not the cached view
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(sees_everyone(), 20)
        finally:
            await c.close()
